"""The server's decision code as the offline tools run it: no sockets, a fixed clock, and keys
given rather than fetched. Rate limits are named but never consume quota (`OfflineCounter`).

`gateway explain`, `gateway test` and `gateway routes explain` all decide through `decider`,
with the request's facts read from headers by `request_facts`, exactly as the door reads them;
`client_address` and `forwarded_headers` are the door's client.ip and upstream headers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config import Config
from gateway.core.authenticator import Authenticator, KeySource
from gateway.core.clientip import client_ip
from gateway.core.decision import Decider
from gateway.core.headers import forwarding_context, request_id, upstream_headers
from gateway.core.models import IssuerConfig
from gateway.core.outcomes import Forward, RequestFacts
from gateway.core.ratelimit import OfflineCounter
from gateway.core.routes import RouteTable
from gateway.core.websocket import new_key
from gateway.server.websocket import handshake_headers

__all__ = ["client_address", "decider", "forwarded_headers", "request_facts"]


def decider(
    config: Config,
    *,
    clock: Callable[[], float],
    issuers: Sequence[IssuerConfig] | None = None,
    key_sources: Mapping[str, KeySource] | None = None,
) -> Decider:
    """A decider over the config's routes and its issuers (or stand-ins with other keys), with
    keys from ``key_sources`` where given, else each issuer's own keys."""
    resource = config.protected_resource
    return Decider(
        routes=config.routes,
        table=RouteTable.from_config(config.routes),
        authenticator=Authenticator(
            config.issuers if issuers is None else issuers,
            config.tokens,
            key_sources=key_sources,
            clock=clock,
            mapped_claims=config.routes.mapped_claims,
        ),
        max_body_size=config.limits.max_body_size,
        # Rate limits are shown, never counted: every bucket is full offline. The failed-auth
        # throttle is per running process, so offline it never applies.
        counter=OfflineCounter(),
        resource_metadata=resource.metadata_url if resource is not None else None,
    )


def request_facts(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    *,
    authorization: tuple[str, ...] | None = None,
    peer: str = "",
) -> RequestFacts:
    """The facts the door would read from a request with these headers (``authorization``
    replaces the headers' own Authorization values when given; ``peer``: the client address,
    as `client_address` resolves it)."""
    if authorization is None:
        authorization = tuple(v for k, v in headers if k.lower() == "authorization")
    lengths = [v.strip() for k, v in headers if k.lower() == "content-length"]
    return RequestFacts(
        method=method,
        raw_target=target,
        authorization=authorization,
        content_length=int(lengths[0]) if lengths and lengths[0].isdigit() else None,
        host=next((v for k, v in headers if k.lower() == "host"), None),
        headers=tuple(headers),
        peer=peer,
    )


def client_address(config: Config, peer: str, headers: Sequence[tuple[str, str]]) -> str:
    """The access log's ``client.ip`` for a request from TCP ``peer`` with these headers: the
    peer, or behind `trusted_proxies` the client their header names (what decisions key on)."""
    proxies = config.trusted_proxies
    if proxies is None:
        return peer
    name = proxies.header.value.lower()
    return client_ip(peer, [value for key, value in headers if key.lower() == name], proxies)


def forwarded_headers(
    config: Config, decision: Forward, headers: Sequence[tuple[str, str]], *, peer: str
) -> CIMultiDict[str]:
    """The headers the upstream receives for a forwarded request from TCP ``peer`` with these
    headers, as the door builds them (a WebSocket's: the gateway's handshake, with a fresh key;
    ``X-Request-ID``: the client's if well-formed, else a fresh one)."""
    incoming = CIMultiDictProxy(CIMultiDict(headers))
    context = forwarding_context(
        decision.route, decision.claims, peer=peer,
        proto="https" if config.tls is not None else "http", host=incoming.get("Host"),
        request_id=request_id(incoming.getall("X-Request-ID", [])),
        authorization=incoming.getall("Authorization", []),
    )  # fmt: skip
    outgoing = upstream_headers(incoming, context, config.strip_headers)
    if decision.websocket is not None:
        handshake_headers(outgoing, decision.websocket, new_key())
    return outgoing
