"""OpenTelemetry tracing (``tracing:`` in gateway.yaml): a server span per request, a client span
per upstream exchange, exported over OTLP/HTTP in the background.

Only `gateway.server.app` imports this module, and only when tracing is configured: without
``tracing:`` neither OpenTelemetry's SDK nor this module is loaded, and the door's request path
makes no tracing call at all (one ``is None`` test).

- **Context.** The client's ``traceparent``/``tracestate`` are read by `gateway.core.tracecontext`
  (several ``traceparent`` headers, or a malformed one, start a new trace); the upstream receives
  the client span's context in their place, never the client's own.
- **Sampling.** Parent-based: a request continuing a trace follows its sampled flag; a new trace
  is kept at ``sampling_ratio``. Unsampled requests still get ids (logged, and propagated) but
  record and export nothing.
- **Export.** A `BatchSpanProcessor` hands ended spans to a worker thread through a bounded queue
  (`QUEUE_SIZE`; full means dropped, never waited for): a slow or dead collector costs spans, not
  requests. Failed exports are logged (``tracing_export_failed``).
- **Nothing secret or raw.** Attributes never hold the token, ``Authorization``, the query
  string or identity claims; client-supplied text (``User-Agent``, ``Host``) is made valid
  UTF-8 (a stray byte must not fail a whole protobuf batch) and cut at `MAX_ATTRIBUTE_LENGTH`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Sequence

from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace import Span as OtelSpan
from opentelemetry.trace.span import TraceFlags, TraceState

from gateway import __version__
from gateway.config import TracingSettings
from gateway.core.cors import CorsHeaders
from gateway.core.headers import forwardable_value
from gateway.core.methods import COMMON_METHODS
from gateway.core.models import Upstream
from gateway.core.tracecontext import (
    format_traceparent,
    format_tracestate,
    parse_traceparent,
    parse_tracestate,
)
from gateway.core.urls import UpstreamTarget
from gateway.server.access import RequestRecord
from gateway.server.logs import get_logger
from gateway.server.upstream import ProxyOutcome, UpstreamClient
from gateway.server.upstream_errors import BodyTooLarge, UpstreamFailure

__all__ = ["MAX_ATTRIBUTE_LENGTH", "QUEUE_SIZE", "RequestTrace", "Tracing"]

_log = get_logger()

QUEUE_SIZE = 2048  # ended spans waiting for export; past it new ones are dropped
MAX_ATTRIBUTE_LENGTH = 1024  # longer string attributes are cut (a queued span stays small)
_EXPORT_TIMEOUT = 10.0  # seconds for one export request, retries included
_KNOWN_METHODS = frozenset(COMMON_METHODS)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Tracing:
    """The gateway's tracer and its export pipeline, built once per process from ``tracing:``.

    ``exporter`` replaces the OTLP/HTTP exporter (tests pass an in-memory one); the batching,
    sampling and limits are the same either way.
    """

    def __init__(self, settings: TracingSettings, *, exporter: SpanExporter | None = None) -> None:
        resource = Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        )
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
            resource=resource,
            shutdown_on_exit=False,  # flushed by the app's cleanup, bounded by the drain
            span_limits=SpanLimits(max_attribute_length=MAX_ATTRIBUTE_LENGTH),
        )
        if exporter is None:
            exporter = OTLPSpanExporter(
                endpoint=settings.endpoint,
                headers=dict(settings.headers),
                timeout=_EXPORT_TIMEOUT,
            )
        self._processor = BatchSpanProcessor(
            _LoggedExporter(exporter, settings.endpoint), max_queue_size=QUEUE_SIZE
        )
        self._provider.add_span_processor(self._processor)
        self._tracer = self._provider.get_tracer("gateway", __version__)

    def start(
        self, request: web.BaseRequest, started_ns: int, record: RequestRecord, client: str
    ) -> RequestTrace:
        """Open the server span of one request (continuing the client's trace if it sent a valid
        one) and write its ids into ``record`` for the access line. ``client``: the client's
        address (behind trusted proxies, the one their header names; the access line's
        ``client.ip``)."""
        headers = request.headers
        context = None
        parent = parse_traceparent(headers.getall("traceparent", ()))
        if parent is not None:
            state = parse_tracestate(headers.getall("tracestate", ()))
            remote = SpanContext(
                trace_id=parent.trace_id,
                span_id=parent.span_id,
                is_remote=True,
                # The flags defined so far (sampled, random trace id): others are not passed on.
                trace_flags=TraceFlags(
                    parent.flags & (TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
                ),
                trace_state=TraceState(list(state)) if state else None,
            )
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        method = request.method
        name = method if method in _KNOWN_METHODS else "HTTP"
        span = self._tracer.start_span(
            name, context=context, kind=SpanKind.SERVER, start_time=started_ns
        )
        if span.is_recording():
            span.set_attributes(_server_attributes(request, record.request_id, client))
        ids = span.get_span_context()
        record.trace_id = f"{ids.trace_id:032x}"
        record.span_id = f"{ids.span_id:016x}"
        return RequestTrace(self._tracer, span, name)

    def flush(self) -> bool:
        """Export every ended span now (blocking; for tests and shutdown)."""
        return self._provider.force_flush()

    async def close(self, *, within: float) -> None:
        """Flush and stop the exporter, waiting at most ``within`` seconds: the process exits on
        time even with a collector that does not answer (the rest of the spans are lost)."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def shut_down() -> None:
            try:
                self._provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop may be gone already
                    loop.call_soon_threadsafe(done.set)

        # A daemon thread, not the default executor: the interpreter joins executor threads at
        # exit, which would make a hung collector hold the process.
        threading.Thread(target=shut_down, name="gateway-tracing-shutdown", daemon=True).start()
        try:
            async with asyncio.timeout(within):
                await done.wait()
        except TimeoutError:
            _log.warning("tracing_flush_timeout", **{"gateway.tracing.timeout_s": within})


class RequestTrace:
    """One request's server span: the parent of its upstream exchange's client span."""

    __slots__ = ("_name", "_span", "_tracer")

    def __init__(self, tracer: trace.Tracer, span: OtelSpan, name: str) -> None:
        self._tracer = tracer
        self._span = span
        self._name = name  # the known method, or HTTP (HTTP semconv span names)

    async def forward(
        self,
        client: UpstreamClient,
        request: web.BaseRequest,
        upstream: Upstream,
        url: UpstreamTarget,
        headers: CIMultiDict[str],
        tls: ssl.SSLContext | None,
        *,
        body_limit: int | None,
        added: tuple[tuple[str, str], ...],
        cors: CorsHeaders | None = None,
    ) -> ProxyOutcome:
        """`UpstreamClient.forward` inside a client span, whose context the upstream receives in
        place of whatever ``traceparent``/``tracestate`` the client sent."""
        method = request.method
        span = self._tracer.start_span(
            self._name, context=trace.set_span_in_context(self._span), kind=SpanKind.CLIENT
        )
        if span.is_recording():
            span.set_attributes(_client_attributes(method, upstream, url))
        _propagate(span, headers)
        try:
            outcome = await client.forward(
                request, upstream, url, headers, tls, body_limit=body_limit, added=added,
                cors=cors,
            )  # fmt: skip
        except UpstreamFailure as exc:
            _end_failed(span, exc.kind)
            raise
        except BodyTooLarge:
            _end_failed(span, "body_too_large")
            raise
        except BaseException as exc:
            _end_failed(span, type(exc).__qualname__)
            raise
        status = outcome.response.status
        if span.is_recording():
            span.set_attribute("http.response.status_code", status)
            if status >= 400:  # a client span's error is any 4xx or 5xx (HTTP semconv)
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()
        return outcome

    def propagate(self, headers: CIMultiDict[str]) -> None:
        """Name the server span as the parent in ``headers`` (a WebSocket handshake: the tunnel
        is the request's, with no client span of its own), in place of the client's context."""
        _propagate(self._span, headers)

    def finish(self, record: RequestRecord, status: int) -> None:
        """Close the server span with what the door decided and answered."""
        span = self._span
        if span.is_recording():
            route = record.route
            if route is not None and self._name != "HTTP":
                span.update_name(f"{self._name} {route}")
            span.set_attributes(_finish_attributes(record, status))
            if status >= 500:  # a server span's error is a 5xx only (HTTP semconv)
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()


def _propagate(span: OtelSpan, headers: CIMultiDict[str]) -> None:
    """``span``'s context as the upstream's ``traceparent``/``tracestate``, replacing whatever
    the client sent (one of each, never the client's next to ours)."""
    ids = span.get_span_context()
    headers.popall("traceparent", None)
    headers.popall("tracestate", None)
    headers["traceparent"] = format_traceparent(ids.trace_id, ids.span_id, ids.trace_flags)
    state = format_tracestate(list(ids.trace_state.items()))
    if state:
        headers["tracestate"] = state


def _end_failed(span: OtelSpan, kind: str) -> None:
    if span.is_recording():
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _server_attributes(
    request: web.BaseRequest, request_id: str, client: str
) -> dict[str, str | int]:
    headers = request.headers
    version = request.version
    scheme = request.scheme
    attributes: dict[str, str | int] = {
        "url.scheme": scheme,
        "network.protocol.version": f"{version.major}.{version.minor}",
        "gateway.request.id": request_id,
        **_method_attributes(request.method),
    }
    # HTTP semconv: client.address is the client behind any intermediaries (the access line's
    # client.ip), network.peer.address the TCP peer (a trusted proxy, or the client itself).
    if client:
        attributes["client.address"] = client
    peer = request.remote
    if peer:
        attributes["network.peer.address"] = peer
    host = headers.get("Host")
    if host:
        address, port = _split_host(host)
        attributes["server.address"] = _text(address)
        attributes["server.port"] = port or _DEFAULT_PORTS.get(scheme, 0)
    user_agent = headers.get("User-Agent")
    if user_agent is not None:
        attributes["user_agent.original"] = _text(user_agent)
    return attributes


def _finish_attributes(record: RequestRecord, status: int) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "http.response.status_code": status,
        "gateway.auth.result": record.auth_result,
    }
    if record.path is not None:  # the canonical path: never the query, never raw bytes
        attributes["url.path"] = record.path
    if record.route is not None:
        attributes["http.route"] = record.route
    if record.auth_reason is not None:
        attributes["gateway.auth.reason"] = record.auth_reason
    if record.upstream is not None:
        attributes["gateway.upstream.name"] = record.upstream
    return attributes


def _client_attributes(
    method: str, upstream: Upstream, url: UpstreamTarget
) -> dict[str, str | int]:
    origin = url.origin
    scheme = origin.scheme
    return {
        **_method_attributes(method),
        "server.address": origin.host,
        "server.port": origin.port or _DEFAULT_PORTS.get(scheme, 0),
        "url.full": url.without_query,
        "network.protocol.version": "1.1",
        "gateway.upstream.name": upstream.name,
    }


def _method_attributes(method: str) -> dict[str, str | int]:
    if method in _KNOWN_METHODS:
        return {"http.request.method": method}
    # Unknown methods are one value (HTTP semconv), so that clients cannot mint new ones.
    return {"http.request.method": "_OTHER", "http.request.method_original": _text(method)}


def _split_host(host: str) -> tuple[str, int | None]:
    """``Host`` as address and port (None when it names none or an unreadable one)."""
    if host.startswith("["):
        address, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        address, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    number = int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else None
    return address, number if number is not None and number <= 65535 else None


def _text(value: str) -> str:
    """``value`` as valid UTF-8 text (bytes that were not UTF-8 become U+FFFD)."""
    if forwardable_value(value):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class _LoggedExporter(SpanExporter):
    """The exporter, with each failed export logged as one ``tracing_export_failed`` event."""

    def __init__(self, exporter: SpanExporter, endpoint: str) -> None:
        self._exporter = exporter
        self._endpoint = endpoint

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            _log.warning(
                "tracing_export_failed",
                **{"gateway.tracing.spans": len(spans), "gateway.tracing.endpoint": self._endpoint},
            )
        return result

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
