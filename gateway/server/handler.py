"""The gateway's request handler: the decision (`gateway.core.decision`), then the proxy.

Every decision at the door is taken by `Decider.decide`, the same code `gateway explain` and
`gateway test` run offline; this module only adds the I/O: it reads the request's facts, writes
down the decision for the access log, and forwards what may go through.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from gateway.config import Config
from gateway.core.authenticator import Authenticator
from gateway.core.decision import Decider, Refuse, RequestFacts
from gateway.core.headers import ForwardingContext, upstream_headers
from gateway.core.protocol import expects_continue
from gateway.core.ratelimit import AuthFailureGuard, Counter
from gateway.core.refusals import payload_too_large, upstream_failed
from gateway.core.routes import RouteTable
from gateway.core.urls import upstream_url
from gateway.jwks.remote import RemoteKeys
from gateway.server.access import ACCESS
from gateway.server.aiohttp_overrides import send_continue
from gateway.server.logs import get_logger
from gateway.server.ratelimit import LIMIT_HEADERS
from gateway.server.upstream import BodyTooLarge, UpstreamClient, UpstreamFailure

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
    # Rate-limit counters and the failed-auth throttle (kept across reloads; None: not enforced).
    counter: Counter | None = None
    guard: AuthFailureGuard | None = None
    # The decision steps over this policy's routes and issuers (built once, with the policy).
    decider: Decider = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        decider = Decider(
            routes=self.config.routes,
            table=self.table,
            authenticator=self.authenticator,
            max_body_size=self.config.limits.max_body_size,
            counter=self.counter,
            guard=self.guard,
        )
        object.__setattr__(self, "decider", decider)


class Door:
    """Decides each request and forwards the allowed ones."""

    def __init__(self, policy: Policy, client: UpstreamClient) -> None:
        self.policy = policy
        self._client = client

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Handle one request (aiohttp handler)."""
        record = request[ACCESS]
        policy = self.policy  # one snapshot for the whole request, whatever a reload does
        authorization = tuple(request.headers.getall("Authorization", []))
        facts = RequestFacts(
            method=request.method,
            raw_target=request.raw_path,
            authorization=authorization,
            content_length=request.content_length,
            host=request.headers.get("Host"),
            headers=request.headers.items(),
            version=(request.version.major, request.version.minor),
            peer=request.remote or "",
        )
        decision = await policy.decider.decide(facts)
        record.note(decision)
        if isinstance(decision, Refuse):
            return record.refuse(decision.refusal)  # never after a 100 Continue
        if decision.limit_headers is not None:
            request[LIMIT_HEADERS] = decision.limit_headers  # added as the response is prepared
        if request.body_exists and expects_continue(facts.headers, facts.version):
            await send_continue(request)
        route, upstream, target = decision.route, decision.upstream, decision.target
        context = ForwardingContext(
            peer=request.remote or "",
            proto=request.scheme,
            host=request.headers.get("Host"),
            request_id=record.request_id,
            claims=decision.claims,
            authorization=authorization[0] if route.forward_token and authorization else None,
        )
        headers = upstream_headers(request.headers, context, policy.config.strip_headers)
        body_limit = route.max_body_size or policy.config.limits.max_body_size
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
            refusal = upstream_failed(timed_out=exc.timed_out, busy=exc.busy)
            return record.refuse(refusal, keep_auth=True)
        record.finish_proxy(outcome)
        return outcome.response
