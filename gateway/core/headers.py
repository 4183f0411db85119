"""Pure header rules for both directions of the proxy.

Hop-by-hop headers (RFC 9110 section 7.6.1), and every header the client names in
``Connection``, are removed *before* the gateway adds its own, so ``Connection: X-Auth-Subject``
can never remove an identity header the gateway sets. Headers that would let a client tell the
upstream something the gateway never checked are removed on every route: forwarding headers
(every ``X-Forwarded-*``, ``Forwarded``), the identity headers other proxies and identity-aware
load balancers set (oauth2-proxy, Envoy, Authelia, Kong, AWS ALB, Google IAP, Cloudflare Access,
Azure Easy Auth, Pomerium), method and URL overrides, and every name that is not letters,
digits and ``-`` (a CGI or WSGI server reads ``X_Auth_Subject`` and ``X.Auth.Subject`` as
``X-Auth-Subject``). Operators add names of their own (``headers.strip`` in gateway.yaml).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.core.claim_headers import ClaimHeaders, mapped_headers
from gateway.core.models import Route
from gateway.core.tokens import Claims
from gateway.core.websocket import bearer_subprotocol

__all__ = [
    "HOP_BY_HOP_BYTES",
    "STRIPPED_HEADERS",
    "STRIPPED_PREFIXES",
    "ForwardingContext",
    "forwardable_value",
    "forwarding_context",
    "request_id",
    "response_headers",
    "upstream_headers",
]

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-authorization", "proxy-authenticate", "proxy-connection", "http2-settings",
})  # fmt: skip
HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
# Set (or recomputed) by the gateway or by the client library, never copied from the client.
_REPLACED = frozenset({"host", "content-length", "expect", "authorization", "x-request-id"})
# Client headers that upstreams trust from a proxy in front of them: never from the client.
STRIPPED_HEADERS = frozenset({
    # forwarding and client addresses
    "forwarded", "x-forwarded", "x-real-ip", "true-client-ip", "x-client-ip",
    "cf-connecting-ip", "x-cluster-client-ip", "fastly-client-ip", "x-original-host",
    # identity set by other proxies (Authelia, Apache/nginx auth modules, mTLS terminators)
    "remote-user", "remote-groups", "remote-name", "remote-email", "x-remote-user",
    "x-remote-group", "x-remote-groups", "x-remote-email", "x-client-cert", "x-client-verify",
    "x-user", "x-email",
    # method and URL overrides
    "x-http-method-override", "x-http-method", "x-method-override", "x-original-method",
    "x-original-url", "x-rewrite-url", "x-original-uri", "x-envoy-original-path",
})  # fmt: skip
STRIPPED_PREFIXES = (
    "x-forwarded-",  # X-Forwarded-For/-Host/-Proto/-User/-Email/-Groups/-Access-Token/-Client-Cert
    "x-auth-",  # the gateway's own identity headers, and oauth2-proxy's X-Auth-Request-*
    "x-amzn-oidc-",  # AWS ALB
    "x-goog-authenticated-user-",  # Google IAP
    "x-ms-client-principal",  # Azure App Service authentication
    "cf-access-",  # Cloudflare Access
    "x-pomerium-",
    "x-consumer-",  # Kong
    "x-authenticated-",  # Kong
    "x-credential-",  # Kong
    "x-ssl-client-",  # nginx/HAProxy mTLS
    "ssl-client-",
)
_TOKEN_NAME = re.compile(r"[A-Za-z0-9-]+")
# Checked per header of every request: one set instead of three.
_NEVER_COPIED = HOP_BY_HOP | _REPLACED | STRIPPED_HEADERS
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_UNENCODABLE = re.compile(r"[\ud800-\udfff]")


# Not frozen: made for every forwarded request, and a frozen dataclass's __init__ costs three
# times as much (one object.__setattr__ per field). Nothing changes it after it is made.
@dataclass(slots=True, init=False)
class ForwardingContext:
    """What the gateway knows about a request, to tell the upstream. (Made for every forwarded
    request: its ``__init__`` is written out, to be compiled with the module.)"""

    peer: str
    proto: str
    host: str | None
    request_id: str
    claims: Claims | None
    authorization: str | None = None
    claims_to_headers: ClaimHeaders = ()  # the route's; the token's issuer adds its own

    def __init__(
        self,
        *,
        peer: str,
        proto: str,
        host: str | None,
        request_id: str,
        claims: Claims | None,
        authorization: str | None = None,
        claims_to_headers: ClaimHeaders = (),
    ) -> None:
        self.peer = peer
        self.proto = proto
        self.host = host
        self.request_id = request_id
        self.claims = claims
        self.authorization = authorization
        self.claims_to_headers = claims_to_headers


def forwarding_context(
    route: Route,
    claims: Claims | None,
    *,
    peer: str,
    proto: str,
    host: str | None,
    request_id: str,
    authorization: Sequence[str],
) -> ForwardingContext:
    """What the upstream is told about a request the route forwards: the one place the route's
    settings (``forward_token``, ``claims_to_headers``) become the context, for the door and
    for the offline tools alike. ``peer`` is the TCP peer (X-Forwarded-For appends it, whatever
    ``trusted_proxies`` resolved); ``authorization``: every Authorization value the client sent."""
    return ForwardingContext(
        peer=peer,
        proto=proto,
        host=host,
        request_id=request_id,
        claims=claims,
        authorization=authorization[0] if route.forward_token and authorization else None,
        claims_to_headers=route.claims_to_headers,
    )


def request_id(client_values: list[str]) -> str:
    """Keep the client's ``X-Request-ID`` if exactly one well-formed value came, else make one."""
    if len(client_values) == 1 and _REQUEST_ID.fullmatch(client_values[0]):
        return client_values[0]
    if not _fresh_ids:
        # 128 random bits each, from the OS, made 256 at a time: one getrandom call, not one
        # per request.
        batch = os.urandom(16 * _ID_BATCH).hex()
        _fresh_ids.extend(batch[start : start + 32] for start in range(0, len(batch), 32))
    return _fresh_ids.pop()


_ID_BATCH = 256
_fresh_ids: list[str] = []
# A forked worker must not hand out the ids its parent had made and will hand out too.
os.register_at_fork(after_in_child=_fresh_ids.clear)


def forwardable_value(value: str) -> bool:
    """Whether a header value can be passed on byte for byte: a value with bytes that are not
    UTF-8 reaches Python as lone surrogates, which no writer can send back unchanged."""
    return value.isascii() or _UNENCODABLE.search(value) is None


@functools.lru_cache(maxsize=1024)
def _plain_name(name: str) -> bool:
    """Whether a header name is letters, digits and dashes (remembered: clients send the same
    few names on every request; any others take a slot of a bounded cache)."""
    return _TOKEN_NAME.fullmatch(name) is not None


def upstream_headers(
    incoming: CIMultiDictProxy[str],
    context: ForwardingContext,
    stripped: frozenset[str] = frozenset(),
) -> CIMultiDict[str]:
    """The headers the upstream receives: the client's, filtered, then the gateway's own.

    ``stripped``: more lower-case names never to forward, on top of the built-in lists.
    """
    dropped = _connection_named(incoming.getall("Connection", []))
    outgoing: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lower = name.lower()
        if (
            lower in _NEVER_COPIED
            or lower in dropped
            or lower in stripped
            or lower.startswith(STRIPPED_PREFIXES)
            or not _plain_name(name)
        ):
            continue
        if lower == "sec-websocket-protocol":
            value = _without_bearer_entries(value)
            if not value:
                continue
        outgoing.add(name, value)
    # X-Forwarded-For is rebuilt, not copied: the client's chain (unverified; upstreams read the
    # rightmost entries, the ones proxies they trust appended) plus the peer, as one header.
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
        if claims.mapped:  # names inside X-Auth-*, so never a client's header (stripped above)
            by_issuer = claims.issuer.claims_to_headers
            outgoing.extend(mapped_headers(context.claims_to_headers, by_issuer, claims.mapped))
    return outgoing


def response_headers(raw: Sequence[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    """The upstream's response headers the client may see (hop-by-hop and Connection-named ones
    removed), from the parser's raw fields, decoded once: names as latin-1 (llhttp admits only
    token characters), values as UTF-8 with surrogateescape, so bytes that are not UTF-8 are
    written back unchanged."""
    skipped = HOP_BY_HOP_BYTES
    for name, value in raw:
        if name.lower() == b"connection":  # rare: the fields it names are dropped too
            skipped = skipped | {token.strip().lower() for token in value.split(b",")}
    return CIMultiDict(
        (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
        for name, value in raw
        if name.lower() not in skipped
    )


def _without_bearer_entries(value: str) -> str:
    """A ``Sec-WebSocket-Protocol`` value without bearer-token entries: a token sent that way
    reaches an upstream only as ``Authorization`` with ``forward_token``, whatever the route
    (a tunnel's handshake builds its own list; this is the plain request's)."""
    entries = [entry.strip() for entry in value.split(",")]
    return ", ".join(entry for entry in entries if entry and not bearer_subprotocol(entry))


def _connection_named(values: Iterable[str]) -> frozenset[str]:
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )
