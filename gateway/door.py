"""The gateway's request handler: every decision at the door, in the spec's order, then the proxy.

Order: request target (400), route (404), method (405), credentials (401/400), token (401/503),
scopes (403), then the upstream (502/504). The first that applies answers, and nothing reaches an
upstream unless every earlier step allowed it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from gateway.access import ACCESS
from gateway.auth.authenticator import Authenticator
from gateway.auth.errors import AuthError, InsufficientScope
from gateway.auth.jwks import RemoteKeys
from gateway.config import AuthMode, Config
from gateway.headers import ForwardingContext, upstream_headers
from gateway.logging import get_logger
from gateway.paths import TargetError, canonicalize
from gateway.proxy import BodyTooLarge, UpstreamClient, UpstreamFailure, upstream_url
from gateway.refusals import (
    from_auth_error,
    from_target_error,
    from_upstream_failure,
    method_not_allowed,
    not_found,
    payload_too_large,
)
from gateway.routes import Match, RouteTable

__all__ = ["Door", "Policy"]

_log = get_logger()


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything a decision reads, built once per config; a reload swaps the whole value."""

    config: Config
    table: RouteTable
    authenticator: Authenticator
    remote_keys: RemoteKeys
    upstream_tls: Mapping[str, ssl.SSLContext]


class Door:
    """Decides each request and forwards the allowed ones."""

    def __init__(self, policy: Policy, client: UpstreamClient) -> None:
        self.policy = policy
        self._client = client

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Handle one request (aiohttp handler)."""
        record = request[ACCESS]
        policy = self.policy  # one snapshot for the whole request, whatever a reload does
        try:
            target = canonicalize(request.raw_path)
        except TargetError as exc:
            return record.refuse(from_target_error(exc))
        record.path = target.path
        match = policy.table.match(request.method, target.path)
        if match.kind is Match.NONE:
            return record.refuse(not_found())
        if match.kind is Match.PARTIAL:
            return record.refuse(method_not_allowed(match.allowed_methods))
        route = match.route
        assert route is not None
        record.route = route.path
        upstream = policy.config.routes.upstreams[route.upstream]
        record.upstream = upstream.name
        authorization = request.headers.getall("Authorization", [])
        try:
            claims = await policy.authenticator.authenticate(route, authorization, target.query)
        except InsufficientScope as exc:
            record.user_id, record.client_id = exc.subject, exc.client_id
            return record.refuse(from_auth_error(exc))
        except AuthError as exc:
            return record.refuse(from_auth_error(exc))
        record.allow(claims, public=route.auth is AuthMode.NONE)
        body_limit = route.max_body_size or policy.config.limits.max_body_size
        if request.content_length is not None and request.content_length > body_limit:
            return record.refuse(payload_too_large())
        context = ForwardingContext(
            peer=request.remote or "",
            proto=request.scheme,
            host=request.headers.get("Host"),
            request_id=record.request_id,
            claims=claims,
            authorization=authorization[0] if route.forward_token and authorization else None,
        )
        headers = upstream_headers(request.headers, context)
        try:
            url = upstream_url(upstream, route, target)
            tls = policy.upstream_tls.get(upstream.name)
            outcome = await self._client.forward(
                request, upstream, url, headers, tls, body_limit=body_limit
            )
        except BodyTooLarge:
            return record.refuse(payload_too_large())
        except UpstreamFailure as exc:
            record.upstream_failure = exc.kind
            _log.warning(
                "upstream_failed",
                **{
                    "upstream.name": exc.upstream,
                    "error.type": exc.detail,
                    "http.request.id": record.request_id,
                },
            )
            return record.refuse(from_upstream_failure(exc), keep_auth=True)
        record.finish_proxy(outcome)
        return outcome.response
