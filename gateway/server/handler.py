"""The gateway's request handler: the decision (`gateway.core.decision`), then the proxy.

Every decision at the door is taken by `Decider.decide`, the same code `gateway explain` and
`gateway test` run offline; this module only adds the I/O: it reads the request's facts, writes
down the decision for the access log, and forwards what may go through.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from gateway.config import Config
from gateway.core.authenticator import Authenticator
from gateway.core.decision import Decider, Refuse, RequestFacts
from gateway.core.headers import ForwardingContext, request_id, upstream_headers
from gateway.core.protocol import expects_continue
from gateway.core.ratelimit import AuthFailureGuard, Counter
from gateway.core.refusals import INTERNAL_ERROR, payload_too_large, upstream_failed
from gateway.core.routes import RouteTable
from gateway.core.urls import upstream_url
from gateway.jwks.remote import RemoteKeys
from gateway.server.access import Accounting, RequestRecord
from gateway.server.aiohttp_overrides import send_continue
from gateway.server.drain import InFlight
from gateway.server.logs import get_logger
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
    """Decides each request, forwards the allowed ones, and logs and counts every one.

    `handle` is the whole per-request path: aiohttp's low-level server calls it directly (no
    router, no middleware; `gateway.server.aiohttp_overrides.GatewayRunner`). Without a router
    aiohttp never answers ``Expect: 100-continue`` itself; the door sends it once the request is
    allowed, so a refused request never gets one.
    """

    def __init__(
        self,
        policy: Policy,
        client: UpstreamClient,
        accounting: Accounting,
        in_flight: InFlight,
        *,
        hsts: str | None = None,
    ) -> None:
        self.policy = policy
        self._client = client
        self._accounting = accounting
        self._tracked = in_flight
        self._in_flight = accounting.metrics.in_flight
        # Added to every response the door answers (refusals and proxied ones alike).
        self._added: tuple[tuple[str, str], ...] = (
            (("Strict-Transport-Security", hsts),) if hsts else ()
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Handle one request (aiohttp low-level handler): decide, forward, log, count."""
        in_flight = self._in_flight
        in_flight.inc()
        started_ns = time.time_ns()
        started = time.perf_counter_ns()
        headers = request.headers
        record = RequestRecord(request_id=request_id(headers.getall("X-Request-ID", [])))
        try:
            response = await self._tracked.run(
                request, record, lambda: self._answer(request, record)
            )
        except Exception:
            _log.exception("request_failed", **{"http.request.id": record.request_id})
            response = record.refuse(INTERNAL_ERROR)
        finally:
            in_flight.dec()
        if isinstance(response, web.Response):
            if request.body_exists and not request.content.at_eof():
                # A refused request's body is never read: close rather than drain it.
                response.force_close()
            for name, value in self._added:
                response.headers[name] = value
        if "Upgrade" in headers and not response.prepared:
            # aiohttp treats the connection as upgraded; nothing after it may be read as a request.
            response.force_close()
        self._accounting.finish(
            record, started_ns=started_ns, duration_ns=time.perf_counter_ns() - started,
            client_ip=request.remote, method=request.method, status=response.status,
            user_agent=headers.get("User-Agent"),
        )  # fmt: skip
        return response

    async def _answer(self, request: web.BaseRequest, record: RequestRecord) -> web.StreamResponse:
        policy = self.policy  # one snapshot for the whole request, whatever a reload does
        request_headers = request.headers
        authorization = tuple(request_headers.getall("Authorization", ()))
        facts = RequestFacts(
            method=request.method,
            raw_target=request.raw_path,
            authorization=authorization,
            content_length=request.content_length,
            host=request_headers.get("Host"),
            headers=request_headers.items(),
            version=(request.version.major, request.version.minor),
            peer=request.remote or "",
        )
        decision = await policy.decider.decide(facts)
        record.note(decision)
        if isinstance(decision, Refuse):
            return record.refuse(decision.refusal)  # never after a 100 Continue
        added = self._added
        if decision.limit_headers:  # the RateLimit fields of a limited route, on the answer too
            added = (*added, *decision.limit_headers.items())
        if request.body_exists and expects_continue(request_headers.get("Expect"), facts.version):
            await send_continue(request)
        route, upstream, target = decision.route, decision.upstream, decision.target
        context = ForwardingContext(
            peer=request.remote or "",
            proto=request.scheme,
            host=facts.host,
            request_id=record.request_id,
            claims=decision.claims,
            authorization=authorization[0] if route.forward_token and authorization else None,
        )
        headers = upstream_headers(request_headers, context, policy.config.strip_headers)
        body_limit = route.max_body_size or policy.config.limits.max_body_size
        try:
            url = upstream_url(upstream, route, target)
            tls = policy.upstream_tls.get(upstream.name)
            outcome = await self._client.forward(
                request, upstream, url, headers, tls, body_limit=body_limit, added=added
            )
        except BodyTooLarge:
            return record.refuse(payload_too_large())
        except UpstreamFailure as exc:
            record.upstream_failure = exc.kind
            _log.warning(
                "upstream_failed",
                **{
                    "gateway.upstream.name": exc.upstream,
                    "error.type": exc.detail,
                    "http.request.id": record.request_id,
                },
            )
            refusal = upstream_failed(timed_out=exc.timed_out, busy=exc.busy)
            return record.refuse(refusal, keep_auth=True)
        record.finish_proxy(outcome)
        return outcome.response
