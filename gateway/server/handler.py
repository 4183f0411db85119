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
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.config import Config
from gateway.core.authenticator import Authenticator
from gateway.core.clientip import client_ip
from gateway.core.cors import CorsHeaders, apply_cors, request_origin, response_cors
from gateway.core.decision import Decider
from gateway.core.headers import forwarding_context, request_id, upstream_headers
from gateway.core.models import Route
from gateway.core.outcomes import Preflight, Refuse, RequestFacts
from gateway.core.protocol import expects_continue
from gateway.core.ratelimit import AuthFailureGuard, Counter
from gateway.core.refusals import INTERNAL_ERROR, Refusal, payload_too_large, upstream_failed
from gateway.core.routes import RouteTable
from gateway.core.urls import upstream_url
from gateway.jwks.remote import RemoteKeys
from gateway.server.access import Accounting, RequestRecord
from gateway.server.aiohttp_overrides import send_continue, send_whole
from gateway.server.drain import InFlight
from gateway.server.logs import get_logger
from gateway.server.metadata import MetadataEndpoint
from gateway.server.upstream import (
    RESPONSE_STARTED,
    BodyTooLarge,
    UpstreamClient,
    UpstreamFailure,
)
from gateway.server.upstream_conn import reset_transport
from gateway.server.websocket import TunnelOutcome, Tunnels, TunnelSettings, open_tunnel
from gateway.server.wire import Whole, added_fields, send, wire_for

if TYPE_CHECKING:  # imported by the app only when tracing is configured
    from gateway.server.tracing import RequestTrace, Tracing

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
    # The RFC 9728 metadata document (`protected_resource`), None when not configured.
    metadata: MetadataEndpoint | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        resource = self.config.protected_resource
        decider = Decider(
            routes=self.config.routes,
            table=self.table,
            authenticator=self.authenticator,
            max_body_size=self.config.limits.max_body_size,
            counter=self.counter,
            guard=self.guard,
            resource_metadata=resource.metadata_url if resource is not None else None,
        )
        object.__setattr__(self, "decider", decider)
        object.__setattr__(self, "metadata", MetadataEndpoint.from_config(self.config))


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
        tracing: Tracing | None = None,
    ) -> None:
        self.policy = policy
        self._tracing = tracing
        self._client = client
        self._accounting = accounting
        self._tracked = in_flight
        self._tally = accounting.metrics.tally
        self._in_flight = self._tally.counter(accounting.metrics.in_flight)
        # Open WebSocket tunnels: a shutdown closes them (1001) instead of waiting them out.
        self.tunnels = Tunnels()
        in_flight.on_drain(self.tunnels.shut_down)
        # Added to every response the door answers (refusals and proxied ones alike).
        self._added: tuple[tuple[str, str], ...] = (
            (("Strict-Transport-Security", hsts),) if hsts else ()
        )
        self._added_fields = added_fields(self._added)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Handle one request (aiohttp low-level handler): decide, forward, log, count."""
        # The in-flight gauge, as additions to its slot (gateway.server.hot_metrics).
        tally, in_flight = self._tally, self._in_flight
        tally.pending[in_flight] += 1
        if tally.eager:
            tally.changed()
        started_ns = time.time_ns()
        started = time.perf_counter_ns()
        headers = request.headers
        record = RequestRecord(request_id=request_id(headers.getall("X-Request-ID", [])))
        # The client behind trusted proxies (client.ip, per-IP limits, the failed-auth throttle).
        address = request.remote or ""
        proxies = self.policy.config.trusted_proxies
        if proxies is not None:
            address = client_ip(address, headers.getall(proxies.header.value, ()), proxies)
        # Tracing: off is this one test, and no OpenTelemetry call (gateway/server/tracing.py).
        tracing = self._tracing
        trace = None if tracing is None else tracing.start(request, started_ns, record, address)
        try:
            answer = await self._tracked.run(
                request, record, lambda: self._answer(request, record, address, trace)
            )
        except BaseException as error:
            # A streamed response holds the request: the pair would wait for the collector.
            streamed: web.StreamResponse | None = request.pop(RESPONSE_STARTED, None)
            if not isinstance(error, Exception):
                raise  # cancelled (aiohttp's test server cancels a handler whose client left)
            _log.exception("request_failed", **{"http.request.id": record.request_id})
            if streamed is not None:
                # Its status and part of its body are out: a 500 now would be read as more of
                # the body. The connection is reset, so the client sees an answer cut short.
                reset_transport(request.transport)
                streamed.force_close()
                self._account(request, record, address, trace, started_ns, started, streamed.status)
                return streamed
            answer = record.refused(INTERNAL_ERROR)
        finally:
            tally.pending[in_flight] -= 1
        if isinstance(answer, Refusal):
            # From bytes made once (`gateway.server.wire`), or else rendered as a web.Response.
            refused = wire_for(answer).whole(request.version, record.request_id, self._added_fields)
            if refused is None:
                answer = record.refuse(answer, keep_auth=True)
            else:
                record.response_bytes = len(refused.body)
                answer = refused
        if isinstance(answer, Whole):  # a refusal, or an upstream's answer read whole
            self._account(request, record, address, trace, started_ns, started, answer.status)
            # A refused request's body is never read: close rather than drain it. After a
            # request for an Upgrade, aiohttp reads nothing more from the connection.
            return await send(request, answer, close=_unread_body(request) or "Upgrade" in headers)
        response = answer
        # A whole response not yet sent: the door writes it itself (`send_whole`).
        whole = response if isinstance(response, web.Response) and not response.prepared else None
        if whole is not None:
            if _unread_body(request):
                response.force_close()
            for name, value in self._added:
                response.headers[name] = value
        if "Upgrade" in headers and not response.prepared:
            # aiohttp treats the connection as upgraded; nothing after it may be read as a request.
            response.force_close()
        self._account(request, record, address, trace, started_ns, started, response.status)
        if whole is not None:
            await send_whole(request, whole)
        else:
            request.pop(RESPONSE_STARTED, None)  # the streamed response holds the request
        return response

    def _account(
        self,
        request: web.BaseRequest,
        record: RequestRecord,
        address: str,
        trace: RequestTrace | None,
        started_ns: int,
        started: int,
        status: int,
    ) -> None:
        """The access line and the metrics (and the trace's end) of an answered request."""
        self._accounting.finish(
            record, started_ns=started_ns, duration_ns=time.perf_counter_ns() - started,
            client_ip=address or None, method=request.method, status=status,
            user_agent=request.headers.get("User-Agent"),
        )  # fmt: skip
        if trace is not None:
            trace.finish(record, status)

    async def _answer(
        self,
        request: web.BaseRequest,
        record: RequestRecord,
        address: str,
        trace: RequestTrace | None,
    ) -> web.StreamResponse | Whole | Refusal:
        policy = self.policy  # one snapshot for the whole request, whatever a reload does
        metadata = policy.metadata
        if metadata is not None:
            served = metadata.answer(request.method, request.raw_path)
            if served is not None:  # the gateway's own, under /.well-known/oauth-protected-...
                record.path, answer = served
                if isinstance(answer, Refusal):
                    return record.refused(answer)
                record.auth_result = "public"
                record.response_bytes = 0 if request.method == "HEAD" else len(metadata.body)
                return answer
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
            peer=address,
        )
        decision = await policy.decider.decide(facts)
        record.note(decision)
        if isinstance(decision, Preflight):
            return _preflight_answer(decision, record)
        # A route with a CORS policy: its fields on every answer, refusals included.
        cors = None
        if decision.route is not None and decision.route.cors is not None:
            origin = request_origin(request_headers.getall("Origin", ()))
            cors = response_cors(decision.route.cors, origin)
            if origin is not None:  # a browser's request: logged whether its page may read it
                record.cors_origin_allowed = cors is not None and bool(cors.fields)
        if isinstance(decision, Refuse):
            return _refused(record, decision.refusal, cors)  # never after a 100 Continue
        added = self._added
        if decision.limit_headers:  # the RateLimit fields of a limited route, on the answer too
            added = (*added, *decision.limit_headers.items())
        if request.body_exists and expects_continue(request_headers.get("Expect"), facts.version):
            await send_continue(request)
        route, upstream, target = decision.route, decision.upstream, decision.target
        context = forwarding_context(
            route, decision.claims, peer=request.remote or "", proto=request.scheme,
            host=facts.host, request_id=record.request_id, authorization=authorization,
        )  # fmt: skip
        headers = upstream_headers(request_headers, context, policy.config.strip_headers)
        body_limit = route.max_body_size or policy.config.limits.max_body_size
        try:
            url = upstream_url(upstream, route, target)
            tls = policy.upstream_tls.get(upstream.name)
            if decision.websocket is not None:
                if trace is not None:
                    trace.propagate(headers)
                settings = _tunnel_settings(route, policy.config)
                outcome = await open_tunnel(
                    request, self._client, decision, url, headers, tls,
                    settings=settings, tunnels=self.tunnels, added=added, cors=cors,
                )  # fmt: skip
            elif trace is None:
                outcome = await self._client.forward(
                    request, upstream, url, headers, tls, body_limit=body_limit, added=added,
                    cors=cors,
                )  # fmt: skip
            else:  # the exchange inside a client span; the upstream gets its traceparent
                outcome = await trace.forward(
                    self._client, request, upstream, url, headers, tls,
                    body_limit=body_limit, added=added, cors=cors,
                )  # fmt: skip
        except BodyTooLarge:
            return _refused(record, payload_too_large(), cors)
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
            return _refused(record, refusal, cors, keep_auth=True)
        if isinstance(outcome, TunnelOutcome):
            record.finish_tunnel(outcome)
            return outcome.response
        record.finish_proxy(outcome)
        return outcome.response


def _unread_body(request: web.BaseRequest) -> bool:
    """Whether the request has a body not read to its end: a refused request's body is never
    read, so its connection is closed rather than drained."""
    return request.body_exists and not request.content.at_eof()


def _tunnel_settings(route: Route, config: Config) -> TunnelSettings:
    """The route's WebSocket settings, gateway.yaml's limits where it says nothing."""
    websocket, limits = route.websocket, config.limits
    assert websocket is not None
    return TunnelSettings(
        idle_timeout=websocket.idle_timeout or limits.websocket_idle_timeout,
        max_message_size=websocket.max_message_size or limits.websocket_max_message_size,
        leeway=config.tokens.leeway,
    )


def _preflight_answer(decision: Preflight, record: RequestRecord) -> web.Response | Refusal:
    """A CORS preflight's answer: 204 with the route's CORS fields, or its refusal (403, none)."""
    if decision.refusal is not None:
        return record.refused(decision.refusal)
    return web.Response(status=204, headers=decision.fields)


def _refused(
    record: RequestRecord, refusal: Refusal, cors: CorsHeaders | None, *, keep_auth: bool = False
) -> web.Response | Refusal:
    """The refusal, noted; rendered here when a CORS route's fields go on it."""
    if cors is None:
        return record.refused(refusal, keep_auth=keep_auth)
    response = record.refuse(refusal, keep_auth=keep_auth)
    apply_cors(response.headers, cors)
    return response
