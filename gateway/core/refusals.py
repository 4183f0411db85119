"""Pure mapping from every door decision to its status, JSON body and challenge headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aiohttp import web

from gateway.core.errors import AuthError, InsufficientScope, KeysUnavailable
from gateway.core.target import TargetError
from gateway.server.upstream import UpstreamFailure

__all__ = [
    "Refusal",
    "from_auth_error",
    "from_target_error",
    "from_upstream_failure",
    "method_not_allowed",
    "not_found",
    "payload_too_large",
    "render",
]

REALM = 'Bearer realm="gateway"'


@dataclass(frozen=True, slots=True)
class Refusal:
    """A response the gateway gives itself, instead of the upstream's."""

    status: int
    error: str
    description: str
    reason: str | None
    headers: dict[str, str] = field(default_factory=dict)


def from_target_error(exc: TargetError) -> Refusal:
    """400 for a request target the gateway will not interpret."""
    return Refusal(400, "bad_request", "The request target is not acceptable", exc.problem.value)


def not_found() -> Refusal:
    """404: no route matches the path."""
    return Refusal(404, "not_found", "No route matches this path", "no_route")


def method_not_allowed(allowed: tuple[str, ...]) -> Refusal:
    """405 with ``Allow``: the path matched, the method did not."""
    return Refusal(
        405,
        "method_not_allowed",
        "This method is not allowed on this path",
        "method_not_allowed",
        {"Allow": ", ".join(allowed)},
    )


def payload_too_large() -> Refusal:
    """413: the body is larger than the route allows (refused before it is read)."""
    return Refusal(413, "payload_too_large", "The request body is too large", "body_too_large")


def from_auth_error(exc: AuthError) -> Refusal:
    """401/400/403/503 with the RFC 6750 challenge."""
    if isinstance(exc, KeysUnavailable):
        return Refusal(
            503,
            "temporarily_unavailable",
            exc.description,
            exc.reason,
            {"Retry-After": str(exc.retry_after)},
        )
    params = [REALM]
    if exc.bearer_error is not None:
        params.append(f'error="{exc.bearer_error}"')
        params.append(f'error_description="{exc.description}"')
    if isinstance(exc, InsufficientScope):
        params.append(f'scope="{" ".join(exc.needed.scopes)}"')
    return Refusal(
        exc.status,
        exc.bearer_error or "unauthorized",
        exc.description,
        exc.reason,
        {"WWW-Authenticate": ", ".join(params)},
    )


def from_upstream_failure(exc: UpstreamFailure) -> Refusal:
    """502 or 504; the body never names the upstream or the library's error text."""
    if exc.timed_out:
        return Refusal(504, "gateway_timeout", "The upstream service did not answer in time", None)
    return Refusal(502, "bad_gateway", "The upstream service could not be reached", None)


def render(refusal: Refusal, request_id: str) -> web.Response:
    """The JSON response for a refusal."""
    body = {
        "error": refusal.error,
        "error_description": refusal.description,
        "request_id": request_id,
    }
    return web.Response(
        status=refusal.status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={**refusal.headers, "Cache-Control": "no-store"},
    )
