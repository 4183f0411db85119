"""OAuth 2.0 Protected Resource Metadata (RFC 9728): the document a client reads to learn which
authorization servers issue tokens for this API and which scopes it knows.

The document is served at the well-known URL RFC 9728 section 3 forms from the resource
identifier: ``/.well-known/oauth-protected-resource`` inserted between the host and the path, so
``https://api.example.com`` is described at ``/.well-known/oauth-protected-resource`` and
``https://api.example.com/v1`` at ``/.well-known/oauth-protected-resource/v1``. Everything in it
comes from the configuration, never from the request (a client-chosen ``Host`` must not steer a
client to another authorization server).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yarl

from gateway.core.models import AuthMode, IssuerConfig, Route, path_matches
from gateway.core.urls import has_credentials, without_userinfo

__all__ = [
    "WELL_KNOWN_PATH",
    "ProtectedResource",
    "check_resource",
    "metadata_document",
    "owned_by_gateway",
]

WELL_KNOWN_PATH = "/.well-known/oauth-protected-resource"
# The URL goes into a quoted-string of WWW-Authenticate: printable ASCII without space, '"', '\'.
_QUOTABLE = re.compile(r"[!#-\[\]-~]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectedResource:
    """``protected_resource:`` in gateway.yaml. None for a list means "from the config": the
    issuers' identifiers, the scopes of the routes under the resource."""

    resource: str  # the resource identifier, exactly as clients compare it (RFC 9728 3.3)
    authorization_servers: tuple[str, ...] | None = None
    scopes_supported: tuple[str, ...] | None = None
    resource_name: str | None = None
    resource_documentation: str | None = None
    max_age: int = 300  # Cache-Control max-age of the document, in seconds

    @property
    def path(self) -> str:
        """The resource identifier's path, without a trailing slash ("" for the origin)."""
        return yarl.URL(self.resource).raw_path.rstrip("/")

    @property
    def metadata_path(self) -> str:
        """Where the document is served: the well-known path, then the resource's path."""
        return WELL_KNOWN_PATH + self.path

    @property
    def metadata_url(self) -> str:
        """The document's URL, for ``resource_metadata=`` in challenges (RFC 9728 section 5.1)."""
        return str(yarl.URL(self.resource).origin()) + self.metadata_path


def owned_by_gateway(path: str) -> bool:
    """Whether a canonical path is the gateway's to answer (the document, or a 404): every path
    that starts with the well-known path in any letter case. An upstream that folds case
    (``case_insensitive``) serves ``/.WELL-KNOWN/OAuth-Protected-Resource`` from its own
    well-known handler, and one that strips a format suffix (``ignore_suffix``) serves
    ``/.well-known/oauth-protected-resource.json`` from it: either would publish a competing
    document through a catch-all route. The canonical path is ASCII, so ``lower`` is ASCII
    folding."""
    return path.lower().startswith(WELL_KNOWN_PATH)


def check_resource(text: str) -> str:
    """A resource identifier RFC 9728 section 2 allows, that can be quoted in a challenge:
    https, a host, no query, fragment or user info (``ValueError`` says what is wrong)."""
    url = yarl.URL(text)
    if has_credentials(url):
        raise ValueError(f"'{without_userinfo(text)}' must not carry user info")
    if url.scheme != "https" or not url.host:
        raise ValueError(f"'{text}' must be an https:// URL with a host (RFC 9728 section 2)")
    if url.raw_query_string or url.raw_fragment or "#" in text:
        raise ValueError(f"'{text}' must not carry user info, a query or a fragment")
    if not _QUOTABLE.fullmatch(text) or not _QUOTABLE.fullmatch(url.raw_path or "/"):
        raise ValueError(f"'{text}' must be printable ASCII without spaces, quotes or '\\'")
    return text


def metadata_document(
    settings: ProtectedResource, issuers: Iterable[IssuerConfig], routes: Iterable[Route]
) -> dict[str, Any]:
    """The metadata (RFC 9728 section 2); lists with no element are left out (section 3.2)."""
    servers = settings.authorization_servers
    if servers is None:
        servers = tuple(issuer.issuer for issuer in issuers if _is_https_url(issuer.issuer))
    scopes = settings.scopes_supported
    if scopes is None:
        scopes = _route_scopes(settings.path or "/", routes)
    document: dict[str, Any] = {"resource": settings.resource}
    if servers:
        document["authorization_servers"] = list(servers)
    if scopes:
        document["scopes_supported"] = list(scopes)
    document["bearer_methods_supported"] = ["header"]  # a token in the query is refused (400)
    if settings.resource_name is not None:
        document["resource_name"] = settings.resource_name
    if settings.resource_documentation is not None:
        document["resource_documentation"] = settings.resource_documentation
    return document


def _is_https_url(text: str) -> bool:
    url = yarl.URL(text)
    return url.scheme == "https" and bool(url.host)


def _route_scopes(path: str, routes: Iterable[Route]) -> tuple[str, ...]:
    """The scopes of every protected route a request under ``path`` can reach: the routes at or
    below it, and the prefix routes above it."""
    scopes: set[str] = set()
    for route in routes:
        if route.auth is AuthMode.NONE:
            continue
        below = path_matches(path, route.path)
        above = not route.exact and path_matches(route.path, path)
        if below or above:
            scopes.update(route.scopes.scopes)
    return tuple(sorted(scopes))
