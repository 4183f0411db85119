"""Pure header rules for both directions of the proxy.

Hop-by-hop headers (RFC 9110 section 7.6.1), and every header the client names in
``Connection``, are removed *before* the gateway adds its own, so ``Connection: X-Auth-Subject``
can never remove an identity header the gateway sets. Headers that would let a client tell the
upstream something the gateway never checked (identity, forwarding, method or URL overrides)
are removed on every route.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.core.tokens import Claims

__all__ = [
    "ForwardingContext",
    "request_id",
    "response_headers",
    "upstream_headers",
]

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-authorization", "proxy-authenticate", "proxy-connection", "http2-settings",
})  # fmt: skip
# Set (or recomputed) by the gateway or by the client library, never copied from the client.
_REPLACED = frozenset({
    "host", "content-length", "expect", "authorization",
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
    "x-forwarded-prefix", "x-forwarded-uri", "forwarded", "x-real-ip", "x-request-id",
    "x-http-method-override", "x-http-method", "x-method-override",
    "x-original-url", "x-rewrite-url", "x-original-uri", "x-envoy-original-path",
})  # fmt: skip
_IDENTITY_PREFIX = "x-auth-"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardingContext:
    """What the gateway knows about a request, to tell the upstream."""

    peer: str
    proto: str
    host: str | None
    request_id: str
    claims: Claims | None
    authorization: str | None = None


def request_id(client_values: list[str]) -> str:
    """Keep the client's ``X-Request-ID`` if exactly one well-formed value came, else make one."""
    if len(client_values) == 1 and _REQUEST_ID.fullmatch(client_values[0]):
        return client_values[0]
    return os.urandom(16).hex()


def upstream_headers(
    incoming: CIMultiDictProxy[str], context: ForwardingContext
) -> CIMultiDict[str]:
    """The headers the upstream receives: the client's, filtered, then the gateway's own."""
    dropped = _connection_named(incoming.getall("Connection", []))
    outgoing: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        # CGI/WSGI servers (and nginx with underscores_in_headers) read X_Auth_Subject as
        # X-Auth-Subject: judge every name in its dash spelling.
        lower = name.lower().replace("_", "-")
        if lower in HOP_BY_HOP or lower in _REPLACED or lower in dropped:
            continue
        if lower.startswith(_IDENTITY_PREFIX):
            continue
        outgoing.add(name, value)
    # A client that names X-Forwarded-For in Connection asked for its chain to be dropped.
    client_chain = [] if "x-forwarded-for" in dropped else incoming.getall("X-Forwarded-For", [])
    forwarded_for = [value.strip() for value in client_chain if value.strip()]
    outgoing["X-Forwarded-For"] = ", ".join([*forwarded_for, context.peer])
    outgoing["X-Forwarded-Proto"] = context.proto
    if context.host:
        outgoing["X-Forwarded-Host"] = context.host
    outgoing["X-Request-ID"] = context.request_id
    if context.authorization is not None:
        outgoing["Authorization"] = context.authorization
    claims = context.claims
    if claims is not None:
        outgoing["X-Auth-Issuer"] = claims.issuer.issuer
        if claims.subject is not None:
            outgoing["X-Auth-Subject"] = claims.subject
        outgoing["X-Auth-Scopes"] = " ".join(sorted(claims.scopes))
        if claims.client_id is not None:
            outgoing["X-Auth-Client-Id"] = claims.client_id
    return outgoing


def response_headers(incoming: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream's response headers the client may see (hop-by-hop removed)."""
    dropped = _connection_named(incoming.getall("Connection", []))
    return CIMultiDict(
        (name, value)
        for name, value in incoming.items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in dropped
    )


def _connection_named(values: Iterable[str]) -> frozenset[str]:
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )
