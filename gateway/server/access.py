"""The access log: one JSON line per request, whoever answered it.

`RequestRecord` is what the handler notes while deciding and forwarding; the middleware turns it
into an `AccessEntry` once the response is out. Requests answered below the application (parser
errors, the plain-HTTP redirect listener) build their `AccessEntry` directly. `access_record` is
pure: the entry as the access-log fields (Elastic Common Schema / OpenTelemetry names), and
`log_access` is the one place that writes them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.core.decision import AuthResult, Decision
from gateway.core.headers import request_id
from gateway.core.methods import COMMON_METHODS
from gateway.core.refusals import INTERNAL_ERROR, NOT_ORIGIN_FORM, Refusal
from gateway.server.logs import get_logger, rfc3339
from gateway.server.metrics import Metrics, status_class
from gateway.server.render import render
from gateway.server.upstream import ProxyOutcome

__all__ = [
    "ACCESS",
    "AccessEntry",
    "RequestRecord",
    "access_log_middleware",
    "access_record",
    "log_access",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RATE_LIMIT_REASONS = frozenset({"rate_limited", "auth_throttled", "rate_limit_unavailable"})
_log = get_logger()


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request so far; the door fills it in, the middleware logs it."""

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

    def refuse(self, refusal: Refusal, *, keep_auth: bool = False) -> web.Response:
        """Render a refusal, and note it (``keep_auth`` for failures after the door let it in)."""
        if not keep_auth:
            self.auth_result = "denied"
            self.auth_reason = refusal.reason
        response = render(refusal, self.request_id)
        self.response_bytes = len(response.body or b"")  # type: ignore[arg-type]
        return response

    def note(self, decision: Decision) -> None:
        """Write down what the door decided (before the refusal or the proxying)."""
        if decision.target is not None:
            self.path = decision.target.path
        if decision.route is not None:
            self.route = decision.route.path
        if decision.upstream is not None:
            self.upstream = decision.upstream.name
        if decision.claims is not None:
            self.user_id = decision.claims.subject
            self.client_id = decision.claims.client_id
        self.auth_result = decision.result.value
        self.auth_reason = decision.reason

    def finish_proxy(self, outcome: ProxyOutcome) -> None:
        """Note what the upstream exchange moved."""
        self.upstream_ns = outcome.upstream_ns
        self.request_bytes = outcome.request_bytes
        self.response_bytes = outcome.response_bytes


ACCESS = web.RequestKey("access_record", RequestRecord)


def access_log_middleware(metrics: Metrics) -> Middleware:
    """Give each request an id and a record; once answered, log one access line and count it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        with metrics.in_flight.track_inprogress():
            record, response, duration_ns = await _handle(request, handler)
        _observe(metrics, request.method, record, response.status, duration_ns)
        return response

    return middleware


async def _handle(
    request: web.Request, handler: Handler
) -> tuple[RequestRecord, web.StreamResponse, int]:
    wall_start = datetime.now(UTC)
    started = time.perf_counter_ns()
    record = RequestRecord(request_id=request_id(request.headers.getall("X-Request-ID", [])))
    request[ACCESS] = record
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPException:
        # aiohttp's router matches every origin-form path, so only a target that is not one
        # (CONNECT's authority form, OPTIONS *) gets here: the same 400 as any bad target.
        response = record.refuse(NOT_ORIGIN_FORM)
    except Exception:
        _log.exception("request_failed", **{"http.request.id": record.request_id})
        response = record.refuse(INTERNAL_ERROR)
    if request.body_exists and not request.content.at_eof() and isinstance(response, web.Response):
        # A refused request's body is never read: close rather than drain it.
        response.force_close()
    if "Upgrade" in request.headers and not response.prepared:
        # aiohttp treats the connection as upgraded; nothing after it may be read as a request.
        response.force_close()
    duration_ns = time.perf_counter_ns() - started
    entry = AccessEntry(
        started=wall_start,
        duration_ns=duration_ns,
        request_id=record.request_id,
        client_ip=request.remote,
        method=request.method,
        path=record.path,
        route=record.route,
        status=response.status,
        upstream=record.upstream,
        upstream_duration_ns=record.upstream_ns,
        request_bytes=record.request_bytes,
        response_bytes=record.response_bytes,
        user_agent=request.headers.get("User-Agent"),
        user_id=record.user_id,
        client_id=record.client_id,
        auth_result=record.auth_result,
        auth_reason=record.auth_reason,
    )
    log_access(entry)
    return record, response, duration_ns


def _observe(
    metrics: Metrics, method: str, record: RequestRecord, status: int, duration_ns: int
) -> None:
    route = record.route or "none"
    label_method = method if method in COMMON_METHODS else "other"
    metrics.requests.labels(route, label_method, status_class(status)).inc()
    metrics.request_duration.labels(route).observe(duration_ns / 1e9)
    if record.auth_result == AuthResult.DENIED.value and record.auth_reason is not None:
        metrics.auth_refusals.labels(record.auth_reason).inc()
        if record.auth_reason in RATE_LIMIT_REASONS:
            metrics.rate_limited.labels(route, record.auth_reason).inc()
    if record.auth_result == AuthResult.WOULD_DENY.value and record.auth_reason is not None:
        metrics.auth_would_deny.labels(route, record.auth_reason).inc()
    if record.upstream is not None and record.upstream_ns is not None:
        metrics.upstream_duration.labels(record.upstream).observe(record.upstream_ns / 1e9)
    if record.upstream is not None and record.upstream_failure is not None:
        metrics.upstream_failures.labels(record.upstream, record.upstream_failure).inc()


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
    """The access-log fields for one request (the query string is never logged)."""
    return {
        "@timestamp": rfc3339(entry.started),
        "log.level": "info",
        "event.action": "access",
        "http.request.id": entry.request_id,
        "client.ip": entry.client_ip,
        "http.request.method": entry.method,
        "url.path": entry.path,
        "http.route": entry.route,
        "http.response.status_code": entry.status,
        "event.duration": entry.duration_ns,
        "upstream.name": entry.upstream,
        "upstream.duration": entry.upstream_duration_ns,
        "http.request.body.bytes": entry.request_bytes,
        "http.response.body.bytes": entry.response_bytes,
        "user_agent.original": entry.user_agent,
        "user.id": entry.user_id,
        "client.id": entry.client_id,
        "auth.result": entry.auth_result,
        "auth.reason": entry.auth_reason,
    }


def log_access(entry: AccessEntry) -> None:
    """Write the access line for one request: the only place an ``access`` event is logged."""
    _log.info("access", **access_record(entry))
