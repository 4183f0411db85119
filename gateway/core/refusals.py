"""The refusal catalogue: every answer the gateway gives itself, as values.

Each refusal is its status, its JSON ``error`` code, a fixed description (never client or claim
data) and the access log's ``auth.reason``. Rendering one as an HTTP response is the server's
job (`gateway.server.render`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from gateway.core.cors import PREFLIGHT_VARY
from gateway.core.errors import AuthError, InsufficientScope, KeysUnavailable
from gateway.core.keep import keep
from gateway.core.target import TargetError

__all__ = [
    "BAD_HOST_REDIRECT",
    "EXPECTATION_FAILED",
    "INTERNAL_ERROR",
    "NOT_ORIGIN_FORM",
    "REQUEST_TIMEOUT",
    "TRANSFER_ENCODING_ON_HTTP10",
    "UNPARSEABLE",
    "UNSUPPORTED_TRANSFER_CODING",
    "Refusal",
    "auth_throttled",
    "claim_mismatch",
    "cors_refused",
    "from_auth_error",
    "from_target_error",
    "method_not_allowed",
    "not_found",
    "parser_refusal",
    "payload_too_large",
    "rate_limit_unavailable",
    "too_many_requests",
    "upstream_failed",
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
    return _NOT_FOUND


@functools.lru_cache(maxsize=256)  # the routes' method sets: bounded by the config
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
    return _PAYLOAD_TOO_LARGE


def too_many_requests(headers: dict[str, str]) -> Refusal:
    """429: the route's rate limit is spent (``headers``: Retry-After and the RateLimit fields)."""
    return Refusal(
        429, "too_many_requests", "Too many requests; retry later", "rate_limited", headers
    )


def auth_throttled(retry_after: float) -> Refusal:
    """429 before any token work: this client IP sent too many invalid tokens lately."""
    return Refusal(
        429,
        "too_many_requests",
        "Too many invalid access tokens from this address; retry later",
        "auth_throttled",
        {"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def cors_refused(reason: str) -> Refusal:
    """403 for a CORS preflight the route's policy does not allow (its origin, method or
    headers): no CORS fields, so the browser blocks the request it was asking about."""
    return Refusal(
        403, "forbidden", "This cross-origin request is not allowed", reason,
        {"Vary": PREFLIGHT_VARY},
    )  # fmt: skip


def rate_limit_unavailable() -> Refusal:
    """503: the route's limit cannot be checked (its counters are unreachable) and the route
    says ``on_backend_error: deny``."""
    return Refusal(
        503,
        "temporarily_unavailable",
        "The request cannot be rate-limited right now; retry later",
        "rate_limit_unavailable",
        {"Retry-After": "1"},
    )


def claim_mismatch() -> Refusal:
    """403: the token is valid and has the scopes, but a path segment the route binds to a claim
    (``bind: {tenant: tenant_id}``) names something the claim does not (another tenant). No
    challenge: another token of the same client would not help, and the body names neither the
    claim nor the segment."""
    return _CLAIM_MISMATCH


def from_auth_error(exc: AuthError, resource_metadata: str | None = None) -> Refusal:
    """401/400/403/503 with the RFC 6750 challenge; ``resource_metadata``: the configured
    RFC 9728 metadata URL, which every challenge then names (never anything from the request)."""
    if isinstance(exc, KeysUnavailable):
        return Refusal(
            503,
            "temporarily_unavailable",
            exc.description,
            exc.reason,
            {"Retry-After": str(exc.retry_after)},
        )
    # The same challenge for the same error (the texts are the catalogue's, the scopes the
    # config's): made once, so that its response is made once too (gateway.server.wire).
    scopes = exc.needed.scopes if isinstance(exc, InsufficientScope) else None
    key = (exc.status, exc.bearer_error, exc.description, exc.reason, scopes, resource_metadata)
    refusal = _challenges.get(key)
    if refusal is None:
        refusal = keep(_challenges, key, _challenge(exc, resource_metadata), _MAX_CHALLENGES)
    return refusal


_challenges: dict[tuple[object, ...], Refusal] = {}
_MAX_CHALLENGES = 1024


def _challenge(exc: AuthError, resource_metadata: str | None) -> Refusal:
    params = [REALM]
    if exc.bearer_error is not None:
        params.append(f'error="{exc.bearer_error}"')
        params.append(f'error_description="{exc.description}"')
    if isinstance(exc, InsufficientScope):
        params.append(f'scope="{" ".join(exc.needed.scopes)}"')
    if resource_metadata is not None:
        params.append(f'resource_metadata="{resource_metadata}"')
    return Refusal(
        exc.status,
        exc.bearer_error or "unauthorized",
        exc.description,
        exc.reason,
        {"WWW-Authenticate": ", ".join(params)},
    )


def upstream_failed(*, timed_out: bool, busy: bool = False) -> Refusal:
    """502 or 504, or 503 when the gateway's own connection pool to the upstream stayed full
    (the upstream was never tried, so a retry is safe); the body never names the upstream or the
    library's error text."""
    if busy:
        return Refusal(
            503,
            "temporarily_unavailable",
            "The upstream service is busy",
            None,
            {"Retry-After": "1"},
        )
    if timed_out:
        return Refusal(504, "gateway_timeout", "The upstream service did not answer in time", None)
    return Refusal(502, "bad_gateway", "The upstream service could not be reached", None)


# The refusals that never vary: one value each (`gateway.server.wire` keeps its bytes).
_NOT_FOUND = Refusal(404, "not_found", "No route matches this path", "no_route")
_PAYLOAD_TOO_LARGE = Refusal(
    413, "payload_too_large", "The request body is too large", "body_too_large"
)
_CLAIM_MISMATCH = Refusal(
    403, "forbidden", "The access token does not grant access to this resource", "claim_mismatch"
)
_BAD_HANDSHAKE = Refusal(
    400, "bad_request", "The WebSocket handshake is not acceptable", "bad_websocket_handshake",
    {"Sec-WebSocket-Version": "13"},
)  # fmt: skip
# A target that is not origin-form (CONNECT's authority form, ``OPTIONS *``).
NOT_ORIGIN_FORM = Refusal(
    400, "bad_request", "The request target is not acceptable", "not_origin_form"
)
INTERNAL_ERROR = Refusal(
    500, "internal_error", "The gateway failed to handle this request", "error"
)
# What the HTTP parser refuses before any handler runs.
UNPARSEABLE = Refusal(400, "bad_request", "The request could not be parsed", "unparseable_request")
REQUEST_TIMEOUT = Refusal(504, "gateway_timeout", "The request took too long to handle", None)
# Framing and expectations (gateway.core.protocol).
UNSUPPORTED_TRANSFER_CODING = Refusal(
    501, "not_implemented", "Transfer codings other than chunked are not supported",
    "unsupported_transfer_coding",
)  # fmt: skip
TRANSFER_ENCODING_ON_HTTP10 = Refusal(
    400, "bad_request", "Transfer-Encoding is not allowed on an HTTP/1.0 request",
    "transfer_encoding_http10",
)  # fmt: skip
EXPECTATION_FAILED = Refusal(
    417, "expectation_failed", "The only expectation this gateway meets is 100-continue",
    "unsupported_expectation",
)  # fmt: skip
# The plain-HTTP listener cannot build an HTTPS URL from the request's Host.
BAD_HOST_REDIRECT = Refusal(400, "bad_request", "The Host header is not acceptable", "bad_host")


def websocket_handshake_refused() -> Refusal:
    """400: a request for a WebSocket upgrade that is not exactly a valid handshake (RFC 6455
    section 4.2.2 names the version the gateway speaks)."""
    return _BAD_HANDSHAKE


def parser_refusal(status: int) -> Refusal:
    """The refusal for a request the HTTP parser (or the server under it) gave up on."""
    known = {400: UNPARSEABLE, 500: INTERNAL_ERROR, 504: REQUEST_TIMEOUT}
    return known.get(status) or Refusal(status, "bad_request", "Request refused", None)
