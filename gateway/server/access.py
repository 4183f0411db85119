"""The access log and the request metrics: one JSON line and one count per request, whoever
answered it.

`RequestRecord` is what the door notes while deciding and forwarding; `Accounting.finish` turns
it into the access line (one dict, one orjson dump, one write: `gateway.server.logs.write_line`)
and counts it, with the metric children looked up once per label set. Requests answered below
the door (parser errors, the plain-HTTP redirect listener) build an `AccessEntry` and call
`log_access`. `access_record` is pure: an entry as the access-log fields (Elastic Common Schema
names, the gateway's own under ``gateway.``), built by `RequestRecord.access_fields` like every
access line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.core.methods import COMMON_METHODS
from gateway.core.outcomes import AuthResult, Decision
from gateway.core.refusals import Refusal
from gateway.server.hot_metrics import Observed, check_shape, observe
from gateway.server.log_fields import ECS_VERSION
from gateway.server.logs import process_id, rfc3339, rfc3339_ns, write_line
from gateway.server.metrics import Metrics, status_class
from gateway.server.render import render
from gateway.server.upstream import ProxyOutcome
from gateway.server.websocket import TunnelOutcome

__all__ = [
    "AccessEntry",
    "Accounting",
    "RequestRecord",
    "access_record",
    "log_access",
]

RATE_LIMIT_REASONS = frozenset({"rate_limited", "auth_throttled", "rate_limit_unavailable"})
_DENIED = AuthResult.DENIED.value
_WOULD_DENY = AuthResult.WOULD_DENY.value


@dataclass(slots=True, init=False)
class RequestRecord:
    """What happened to one request so far; the door fills it in, `Accounting` logs it.

    Its ``__init__`` is written out: the one dataclasses would write is Python, run for every
    request, where this one is compiled with the module (`setup.py`).
    """

    request_id: str
    path: str | None = None
    route: str | None = None
    upstream: str | None = None
    upstream_ns: int | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    upstream_failure: str | None = None  # an UpstreamFailure kind: "timeout", "busy", "tls", ...
    auth_result: str = "denied"
    auth_reason: str | None = None
    user_id: str | None = None
    client_id: str | None = None
    # A WebSocket tunnel's end: its close code and `CloseReason` value (None: not a tunnel).
    websocket_close_code: int | None = None
    websocket_close_reason: str | None = None
    # On a route with a CORS policy, for a request with Origin: whether that origin may read it.
    cors_origin_allowed: bool | None = None
    trace_id: str | None = None  # the server span's, with tracing on (gateway.server.tracing)
    span_id: str | None = None

    def __init__(
        self,
        request_id: str,
        *,
        path: str | None = None,
        route: str | None = None,
        upstream: str | None = None,
        upstream_ns: int | None = None,
        request_bytes: int = 0,
        response_bytes: int = 0,
        upstream_failure: str | None = None,
        auth_result: str = "denied",
        auth_reason: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.path = path
        self.route = route
        self.upstream = upstream
        self.upstream_ns = upstream_ns
        self.request_bytes = request_bytes
        self.response_bytes = response_bytes
        self.upstream_failure = upstream_failure
        self.auth_result = auth_result
        self.auth_reason = auth_reason
        self.user_id = user_id
        self.client_id = client_id
        self.websocket_close_code = None
        self.websocket_close_reason = None
        self.cors_origin_allowed = None
        self.trace_id = None
        self.span_id = None

    def refused(self, refusal: Refusal, *, keep_auth: bool = False) -> Refusal:
        """Note a refusal (``keep_auth`` for failures after the door let it in)."""
        if not keep_auth:
            self.auth_result = "denied"
            self.auth_reason = refusal.reason
        return refusal

    def refuse(self, refusal: Refusal, *, keep_auth: bool = False) -> web.Response:
        """Note a refusal, and render it."""
        self.refused(refusal, keep_auth=keep_auth)
        response = render(refusal, self.request_id)
        self.response_bytes = len(response.body or b"")  # type: ignore[arg-type]
        return response

    def note(self, decision: Decision) -> None:
        """Write down what the door decided (before the refusal or the proxying)."""
        if decision.target is not None:
            self.path = decision.target.path
        route = decision.route
        if route is not None:
            self.route = route.path
        if decision.upstream is not None:
            self.upstream = decision.upstream.name
        claims = decision.claims
        if claims is not None:
            self.user_id = claims.subject
            self.client_id = claims.client_id
        # `_value_` (the documented sunder name) is the member's own attribute, where `.value`
        # is a Python-level property call through enum's descriptor: about 1 % of a refusal.
        self.auth_result = decision.result._value_
        self.auth_reason = decision.reason

    def finish_proxy(self, outcome: ProxyOutcome) -> None:
        """Note what the upstream exchange moved."""
        self.upstream_ns = outcome.upstream_ns
        self.request_bytes = outcome.request_bytes
        self.response_bytes = outcome.response_bytes

    def finish_tunnel(self, outcome: TunnelOutcome) -> None:
        """Note what a WebSocket tunnel moved (message bytes each way) and how it ended."""
        self.upstream_ns = outcome.upstream_ns
        self.request_bytes = outcome.client_bytes
        self.response_bytes = outcome.upstream_bytes
        self.websocket_close_code = outcome.end.code
        self.websocket_close_reason = outcome.end.reason.value

    def access_fields(
        self,
        *,
        timestamp: str,
        duration_ns: int,
        client_ip: str | None,
        method: str | None,
        status: int,
        user_agent: str | None,
    ) -> dict[str, Any]:
        """The access-log fields for this request (the query string is never logged): the one
        place their values are written, in the order of `log_fields.ACCESS_FIELDS`."""
        fields = {
            "@timestamp": timestamp,
            "log.level": "info",
            "event.action": "access",
            "ecs.version": ECS_VERSION,
            "process.pid": process_id(),
            "http.request.id": self.request_id,
            "client.ip": client_ip,
            "http.request.method": method,
            "url.path": self.path,
            "gateway.route": self.route,
            "http.response.status_code": status,
            "event.duration": duration_ns,
            "gateway.upstream.name": self.upstream,
            "gateway.upstream.duration": self.upstream_ns,
            "http.request.body.bytes": self.request_bytes,
            "http.response.body.bytes": self.response_bytes,
            "user_agent.original": user_agent,
            "user.id": self.user_id,
            "gateway.client.id": self.client_id,
            "gateway.auth.result": self.auth_result,
            "gateway.auth.reason": self.auth_reason,
            "trace.id": self.trace_id,
            "span.id": self.span_id,
        }
        if self.cors_origin_allowed is not None:  # a browser's request on a CORS route
            fields["gateway.cors.origin_allowed"] = self.cors_origin_allowed
        if self.websocket_close_reason is not None:  # only the lines of WebSocket tunnels
            fields["gateway.websocket.close_code"] = self.websocket_close_code
            fields["gateway.websocket.close_reason"] = self.websocket_close_reason
        return fields


class Accounting:
    """Writes each request's access line and counts it in the request metrics.

    The labelled children of the per-request metrics get their slots in the metrics' `Tally`
    once per label set (the label values are bounded: route patterns from the config, common
    methods, status classes, refusal reasons, upstream names), so a request costs dict lookups
    and additions, not ``.labels()`` and ``inc`` calls.
    """

    __slots__ = (
        "_by_reason", "_by_request", "_by_upstream", "_failures", "_tally", "_would_deny",
        "metrics",
    )  # fmt: skip

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._tally = metrics.tally
        self._by_request: dict[tuple[str, str, int], tuple[int, Observed]] = {}
        self._by_reason: dict[tuple[str, str], int] = {}
        self._would_deny: dict[tuple[str, str], int] = {}
        self._by_upstream: dict[str, Observed] = {}
        self._failures: dict[tuple[str, str], int] = {}

    def finish(
        self,
        record: RequestRecord,
        *,
        started_ns: int,
        duration_ns: int,
        client_ip: str | None,
        method: str,
        status: int,
        user_agent: str | None,
    ) -> None:
        """Log the access line for one answered request (``started_ns``: `time.time_ns` when it
        arrived) and count it."""
        write_line(
            record.access_fields(
                timestamp=rfc3339_ns(started_ns), duration_ns=duration_ns, client_ip=client_ip,
                method=method, status=status, user_agent=user_agent,
            )
        )  # fmt: skip
        tally = self._tally
        pending = tally.pending
        route = record.route or "none"
        key = (route, method, status // 100)
        slots = self._by_request.get(key)
        if slots is None:
            slots = self._request_slots(route, method, status)
        pending[slots[0]] += 1
        observe(pending, slots[1], duration_ns / 1e9)
        reason = record.auth_reason
        if reason is not None:
            if record.auth_result == _DENIED:
                refused = self._by_reason.get((route, reason))
                if refused is None:
                    refused = tally.counter(self.metrics.auth_refusals.labels(route, reason))
                    self._by_reason[(route, reason)] = refused
                pending[refused] += 1
                if reason in RATE_LIMIT_REASONS:  # rare: no slot of its own
                    self.metrics.rate_limited.labels(route, reason).inc()
            elif record.auth_result == _WOULD_DENY:
                would = self._would_deny.get((route, reason))
                if would is None:
                    would = tally.counter(self.metrics.auth_would_deny.labels(route, reason))
                    self._would_deny[(route, reason)] = would
                pending[would] += 1
        if record.websocket_close_reason is not None:
            self.metrics.websocket_tunnels.labels(route, record.websocket_close_reason).inc()
        upstream = record.upstream
        if upstream is not None:
            if record.upstream_ns is not None:
                upstream_took = self._by_upstream.get(upstream)
                if upstream_took is None:
                    upstream_took = tally.histogram(self.metrics.upstream_duration.labels(upstream))
                    self._by_upstream[upstream] = upstream_took
                observe(pending, upstream_took, record.upstream_ns / 1e9)
            kind = record.upstream_failure
            if kind is not None:
                failures = self._failures.get((upstream, kind))
                if failures is None:
                    failures = tally.counter(self.metrics.upstream_failures.labels(upstream, kind))
                    self._failures[(upstream, kind)] = failures
                pending[failures] += 1
        if tally.eager:
            tally.changed()

    def count_unparsed(self, status: int, reason: str) -> None:
        """Count a request answered below the door (aiohttp's parser refused it; its access line
        is written by `log_access`): route ``none``, method ``other`` (none was read), and a
        refusal under its reason, so that a flood of malformed requests shows in the metrics
        as it does in the access log."""
        metrics = self.metrics
        metrics.requests.labels("none", "other", status_class(status)).inc()
        metrics.request_duration.labels("none").observe(0.0)
        metrics.auth_refusals.labels("none", reason).inc()

    def _request_slots(self, route: str, method: str, status: int) -> tuple[int, Observed]:
        # Other methods share one label (their names are not kept) and so one key.
        label_method = method if method in COMMON_METHODS else "other"
        key = (route, label_method, status // 100)
        slots = self._by_request.get(key)
        if slots is None:
            requests = self.metrics.requests.labels(route, label_method, status_class(status))
            duration = self.metrics.request_duration.labels(route)
            check_shape(requests, duration)
            slots = (self._tally.counter(requests), self._tally.histogram(duration))
            self._by_request[key] = slots
        return slots


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessEntry:
    """What happened to one request, gathered while it was handled.

    The defaults describe a request refused before routing (a parser error, a redirect), so
    those callers name only what they know.
    """

    started: datetime
    request_id: str
    client_ip: str | None
    status: int
    duration_ns: int = 0
    method: str | None = None
    path: str | None = None
    route: str | None = None
    upstream: str | None = None
    upstream_duration_ns: int | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    user_agent: str | None = None
    user_id: str | None = None
    client_id: str | None = None
    auth_result: str = "denied"
    auth_reason: str | None = None


def access_record(entry: AccessEntry) -> dict[str, Any]:
    """The access-log fields for a request answered below the door."""
    record = RequestRecord(
        request_id=entry.request_id, path=entry.path, route=entry.route,
        upstream=entry.upstream, upstream_ns=entry.upstream_duration_ns,
        request_bytes=entry.request_bytes, response_bytes=entry.response_bytes,
        auth_result=entry.auth_result, auth_reason=entry.auth_reason,
        user_id=entry.user_id, client_id=entry.client_id,
    )  # fmt: skip
    return record.access_fields(
        timestamp=rfc3339(entry.started), duration_ns=entry.duration_ns,
        client_ip=entry.client_ip, method=entry.method, status=entry.status,
        user_agent=entry.user_agent,
    )  # fmt: skip


def log_access(entry: AccessEntry) -> None:
    """Write the access line for a request answered below the door (a parser error, a
    redirect)."""
    write_line(access_record(entry))
