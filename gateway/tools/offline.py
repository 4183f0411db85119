"""The server's decision code as the offline tools run it: no sockets, a fixed clock, and keys
given rather than fetched. Rate limits are named but never consume quota (`OfflineCounter`).

`gateway explain`, `gateway test` and `gateway routes explain` all decide through `decider`,
with the request's facts read from headers by `request_facts`, exactly as the door reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from gateway.config import Config
from gateway.core.authenticator import Authenticator, KeySource
from gateway.core.decision import Decider, RequestFacts
from gateway.core.models import IssuerConfig
from gateway.core.ratelimit import OfflineCounter
from gateway.core.routes import RouteTable

__all__ = ["decider", "request_facts"]


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
) -> RequestFacts:
    """The facts the door would read from a request with these headers (``authorization``
    replaces the headers' own Authorization values when given)."""
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
    )
