"""Serving the RFC 9728 protected-resource metadata on the public listener.

When ``protected_resource`` is configured the gateway owns every path under
``/.well-known/oauth-protected-resource``: the document's own path answers GET and HEAD (no
token needed: it is how a client learns where to get one), other methods there get 405, and
every other path under the prefix is a 404 from the gateway, so no upstream can publish a
competing document through a catch-all route. Paths are compared in canonical form, as routes
are, so ``/.well-known/%6Fauth-protected-resource`` is the same path; the prefix is owned in every
letter case and with anything appended (`owned_by_gateway`), the spellings upstreams that fold
case or strip a ``.json`` suffix route to their own well-known handler.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from aiohttp import web

from gateway.config import Config
from gateway.core.refusals import Refusal, method_not_allowed, not_found
from gateway.core.resource_metadata import metadata_document, owned_by_gateway
from gateway.core.target import TargetError, canonicalize

__all__ = ["MetadataEndpoint"]

_ALLOWED = ("GET", "HEAD")


@dataclass(frozen=True, slots=True)
class MetadataEndpoint:
    """The metadata document of one config, ready to send."""

    path: str
    body: bytes
    cache_control: str

    @classmethod
    def from_config(cls, config: Config) -> MetadataEndpoint | None:
        """The endpoint, or None when ``protected_resource`` is not configured."""
        settings = config.protected_resource
        if settings is None:
            return None
        document = metadata_document(settings, config.issuers, config.routes.routes)
        return cls(
            path=settings.metadata_path,
            body=orjson.dumps(document),
            cache_control=f"public, max-age={settings.max_age}",
        )

    def answer(self, method: str, raw_target: str) -> tuple[str, web.Response | Refusal] | None:
        """For a request under the well-known prefix: its canonical path and the document (or
        the refusal: 405 on the document's path, 404 elsewhere under the prefix); None for
        every other request, which the door decides as usual."""
        # A cheap test first: a canonical path under the prefix has a segment starting with '.',
        # which the raw target spells as "/." or with an escape.
        if "/." not in raw_target and "%" not in raw_target:
            return None
        try:
            path = canonicalize(raw_target).path
        except TargetError:
            return None  # the decision refuses it as for any other path
        if not owned_by_gateway(path):
            return None
        if path != self.path:
            return path, not_found()
        if method not in _ALLOWED:
            return path, method_not_allowed(_ALLOWED)
        response = web.Response(
            body=self.body,
            content_type="application/json",
            headers={"Cache-Control": self.cache_control},
        )
        return path, response
