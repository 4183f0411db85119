"""Tracing through real requests: a real gateway in front of the recording upstream, its spans
caught by OpenTelemetry's in-memory exporter behind the same batching pipeline as in production.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode
from pytest_aiohttp import AiohttpClient

from gateway.config import Config
from gateway.server.app import create_app
from gateway.server.tracing import Tracing
from tests.conftest import GatewayFactory, GatewayTestServer, LogCapture
from tests.functional.server.ws_support import WebSocketUpstream, websocket_routes
from tests.raw import http_request, send_raw
from tests.support import (
    DEFAULT_GATEWAY,
    DEFAULT_ROUTES,
    RecordingUpstream,
    TokenFactory,
    side_upstream_routes,
)

# Every request here, refused or failed, is freed without the cyclic collector.
pytestmark = pytest.mark.usefixtures("no_request_cycles")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SAMPLED_PARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
UNSAMPLED_PARENT = f"00-{TRACE_ID}-{PARENT_ID}-00"


def tracing_section(ratio: float = 1.0) -> str:
    """A ``tracing:`` section (the endpoint is never called: the tests' exporter replaces it)."""
    return (
        "tracing:\n  endpoint: http://127.0.0.1:9/v1/traces\n"
        f"  service_name: gateway-test\n  sampling_ratio: {ratio}\n"
    )


@dataclass
class Traced:
    """A gateway with tracing on, and what it exported."""

    client: TestClient[web.Request, web.Application]
    tracing: Tracing
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        """Every span ended so far, once the batch processor has handed them over."""
        assert self.tracing.flush()
        return list(self.exporter.get_finished_spans())

    def one(self, kind: SpanKind) -> ReadableSpan:
        """The only span of ``kind``."""
        found = [span for span in self.spans() if span.kind is kind]
        assert len(found) == 1, [span.name for span in found]
        return found[0]


TracedFactory = Callable[..., Awaitable[Traced]]


@pytest.fixture
def traced(
    aiohttp_client: AiohttpClient,
    upstream_server: TestServer,
    make_config: Callable[..., Config],
) -> Iterator[TracedFactory]:
    """Start a real gateway with tracing on in front of the recording upstream."""
    made: list[Tracing] = []

    async def start(
        *, ratio: float = 1.0, routes: str = DEFAULT_ROUTES, gateway_extra: str = ""
    ) -> Traced:
        upstream = str(upstream_server.make_url("")).rstrip("/")
        gateway = DEFAULT_GATEWAY + tracing_section(ratio) + gateway_extra
        config = make_config(upstream=upstream, routes=routes, gateway=gateway)
        assert config.tracing is not None
        exporter = InMemorySpanExporter()
        tracing = Tracing(config.tracing, exporter=exporter)
        made.append(tracing)
        client: Any = await aiohttp_client(GatewayTestServer(create_app(config, tracing=tracing)))
        return Traced(cast("TestClient[web.Request, web.Application]", client), tracing, exporter)

    yield start
    for tracing in made:
        tracing.flush()


def span_context(span: ReadableSpan) -> SpanContext:
    """The span's own context (an ended SDK span always has one)."""
    context = span.get_span_context()
    assert context is not None
    return context


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    """The span's trace id and span id as written in headers and the access line."""
    context = span_context(span)
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def traceparent(span: ReadableSpan) -> str:
    """The ``traceparent`` naming ``span`` (sampled; with the random-trace-id flag of W3C level 2
    when the SDK made the trace id)."""
    context = span_context(span)
    assert context.trace_flags.sampled
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def all_text(spans: list[ReadableSpan]) -> str:
    """Every name, attribute key and value and resource value of ``spans``, as one string."""
    parts: list[str] = []
    for span in spans:
        parts.append(span.name)
        for attributes in (span.attributes or {}, span.resource.attributes):
            parts += [key + "=" + str(value) for key, value in attributes.items()]
    return "\n".join(parts)


async def test_a_forwarded_request_has_a_server_span_and_a_client_span_under_it(
    traced: TracedFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
) -> None:
    """A new trace: the server span is a root, the client span its child, the upstream gets
    the client span's traceparent, and the access line names the server span."""
    gateway = await traced()
    response = await gateway.client.get(
        "/orders/7?expand=lines",
        headers={"Authorization": f"Bearer {tokens.good()}", "User-Agent": "probe/1.0"},
    )
    assert response.status == 200
    server, client = gateway.one(SpanKind.SERVER), gateway.one(SpanKind.CLIENT)
    assert server.parent is None
    assert client.parent is not None
    assert client.parent.span_id == span_context(server).span_id
    assert span_context(client).trace_id == span_context(server).trace_id
    assert server.name == "GET /orders"
    assert server.status.status_code is StatusCode.UNSET
    port = gateway.client.port
    assert server.attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/orders/7",
        "http.route": "/orders",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": port,
        "client.address": "127.0.0.1",
        "network.peer.address": "127.0.0.1",
        "user_agent.original": "probe/1.0",
        "network.protocol.version": "1.1",
        "gateway.request.id": recorder.last.headers["X-Request-ID"],
        "gateway.auth.result": "allowed",
        "gateway.upstream.name": "orders",
    }
    upstream_port = int(recorder.last.headers["Host"].rpartition(":")[2])
    assert client.name == "GET"
    assert client.attributes == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": upstream_port,
        "url.full": f"http://127.0.0.1:{upstream_port}/orders/7",
        "network.protocol.version": "1.1",
        "gateway.upstream.name": "orders",
        "http.response.status_code": 200,
    }
    assert recorder.last.headers.getall("traceparent") == [traceparent(client)]
    assert "tracestate" not in recorder.last.headers
    assert server.resource.attributes["service.name"] == "gateway-test"
    [line] = log_capture.events("access")
    assert (line["trace.id"], line["span.id"]) == hex_ids(server)


@pytest.mark.parametrize(
    "name", ["traceparent", "TraceParent", "TRACEPARENT"], ids=["lower", "mixed", "upper"]
)
async def test_an_incoming_trace_is_continued_and_replaced_toward_the_upstream(
    traced: TracedFactory, tokens: TokenFactory, recorder: RecordingUpstream, name: str
) -> None:
    """The server span continues the client's trace under the client's span; the upstream gets
    one traceparent (the client span's, never the client's own) and the valid tracestate."""
    gateway = await traced(ratio=0.0)  # the parent's sampled flag decides, not the ratio
    response = await gateway.client.get(
        "/orders/7",
        headers={
            "Authorization": f"Bearer {tokens.good()}",
            name: SAMPLED_PARENT,
            "tracestate": "vendor=abc, other@tenant=x y",
        },
    )
    assert response.status == 200
    server, client = gateway.one(SpanKind.SERVER), gateway.one(SpanKind.CLIENT)
    assert server.parent is not None
    assert server.parent.is_remote
    assert f"{server.parent.span_id:016x}" == PARENT_ID
    assert hex_ids(server)[0] == TRACE_ID
    _, client_span_id = hex_ids(client)
    assert recorder.last.headers.getall("traceparent") == [f"00-{TRACE_ID}-{client_span_id}-01"]
    assert recorder.last.headers.getall("tracestate") == ["vendor=abc,other@tenant=x y"]


async def test_an_unsampled_parent_is_followed_and_nothing_is_exported(
    traced: TracedFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
) -> None:
    """Sampled flag 00: no span is recorded (even at ratio 1), the trace still goes on to the
    upstream unsampled, and the access line still has the ids."""
    gateway = await traced(ratio=1.0)
    response = await gateway.client.get(
        "/orders/7",
        headers={"Authorization": f"Bearer {tokens.good()}", "traceparent": UNSAMPLED_PARENT},
    )
    assert response.status == 200
    assert gateway.spans() == []
    [forwarded] = recorder.last.headers.getall("traceparent")
    version, trace_id, span_id, flags = forwarded.split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "00")
    assert span_id != PARENT_ID
    [line] = log_capture.events("access")
    assert line["trace.id"] == TRACE_ID
    assert line["span.id"] not in {None, PARENT_ID, span_id}


async def test_root_traces_are_sampled_at_the_ratio(
    traced: TracedFactory, tokens: TokenFactory
) -> None:
    """Ratio 0 keeps no new trace; a sampled incoming trace is kept all the same."""
    gateway = await traced(ratio=0.0)
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    for _ in range(5):
        assert (await gateway.client.get("/orders/7", headers=headers)).status == 200
    assert gateway.spans() == []
    headers["traceparent"] = SAMPLED_PARENT
    assert (await gateway.client.get("/orders/7", headers=headers)).status == 200
    assert len(gateway.spans()) == 2


MALFORMED = [
    pytest.param([f"00-{TRACE_ID.upper()}-{PARENT_ID}-01"], id="upper-case-hex"),
    pytest.param([f"00-{'0' * 32}-{PARENT_ID}-01"], id="zero-trace-id"),
    pytest.param([f"00-{TRACE_ID}-{'0' * 16}-01"], id="zero-parent-id"),
    pytest.param([f"ff-{TRACE_ID}-{PARENT_ID}-01"], id="version-ff"),
    pytest.param([f"00-{TRACE_ID}-{PARENT_ID}-01-extra"], id="version-00-with-more"),
    pytest.param([f"00-{TRACE_ID}-{PARENT_ID}-1"], id="short-flags"),
    pytest.param([f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01"], id="short-trace-id"),
    pytest.param([f"00_{TRACE_ID}_{PARENT_ID}_01"], id="wrong-separator"),
    pytest.param([SAMPLED_PARENT, SAMPLED_PARENT], id="two-headers"),
    pytest.param([f"{SAMPLED_PARENT},{SAMPLED_PARENT}"], id="two-values-in-one"),
    pytest.param([SAMPLED_PARENT + "x" * 600], id="too-long"),
    pytest.param(["garbage"], id="garbage"),
]


@pytest.mark.parametrize("values", MALFORMED)
async def test_a_malformed_traceparent_starts_a_new_trace(
    traced: TracedFactory, tokens: TokenFactory, recorder: RecordingUpstream, values: list[str]
) -> None:
    """An invalid incoming context (several headers included) is not continued: a new root
    trace, and neither the client's traceparent nor its tracestate reaches the upstream."""
    gateway = await traced()
    headers: list[tuple[str, str]] = [("Authorization", f"Bearer {tokens.good()}")]
    headers += [("traceparent", value) for value in values]
    headers.append(("tracestate", "vendor=abc"))
    response = await gateway.client.get("/orders/7", headers=headers)
    assert response.status == 200
    server, client = gateway.one(SpanKind.SERVER), gateway.one(SpanKind.CLIENT)
    assert server.parent is None
    assert hex_ids(server)[0] != TRACE_ID
    assert recorder.last.headers.getall("traceparent") == [traceparent(client)]
    assert "tracestate" not in recorder.last.headers


@pytest.mark.parametrize(
    "tracestate",
    ["Vendor=abc", "vendor=abc,vendor=def", "vendor", "vendor=a=b", "x" * 600 + "=1"],
    ids=["upper-case-key", "repeated-key", "no-value", "equals-in-value", "too-long"],
)
async def test_a_malformed_tracestate_is_dropped_and_never_logged(
    traced: TracedFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    tracestate: str,
) -> None:
    """A bad tracestate is dropped whole (the trace itself goes on), and its bytes appear in no
    log line."""
    gateway = await traced()
    headers = {
        "Authorization": f"Bearer {tokens.good()}",
        "traceparent": SAMPLED_PARENT,
        "tracestate": tracestate,
    }
    assert (await gateway.client.get("/orders/7", headers=headers)).status == 200
    assert hex_ids(gateway.one(SpanKind.SERVER))[0] == TRACE_ID
    assert "tracestate" not in recorder.last.headers
    assert tracestate not in log_capture.text


REFUSALS = [
    pytest.param("/orders/7", None, 401, "missing", id="401-missing"),
    pytest.param("/orders/7", "noscope", 403, "insufficient_scope", id="403-scope"),
    pytest.param("/orders/7", "forged", 401, "bad_signature", id="401-forged"),
    pytest.param("/elsewhere", "good", 404, "no_route", id="404"),
    pytest.param("/orders/7;x=1", "good", 400, "path_parameter", id="400-target"),
]


@pytest.mark.parametrize(("path", "token", "status", "reason"), REFUSALS)
async def test_a_refused_request_has_a_server_span_and_no_client_span(
    traced: TracedFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    path: str,
    token: str | None,
    status: int,
    reason: str | None,
) -> None:
    """The refusal is traced with its auth result and reason; no client span, and the upstream
    never saw the request."""
    gateway = await traced()
    minted = {
        None: None,
        "good": tokens.good(),
        "noscope": tokens.good(scope="profile"),
        "forged": tokens.sign(tokens.claims(), key=tokens.keys.attacker, headers={"kid": "k1"}),
    }[token]
    headers = {"Authorization": f"Bearer {minted}"} if minted else {}
    response = await gateway.client.get(path, headers=headers)
    assert response.status == status
    spans = gateway.spans()
    assert [span.kind for span in spans] == [SpanKind.SERVER]
    attributes = spans[0].attributes or {}
    assert attributes["http.response.status_code"] == status
    assert attributes["gateway.auth.result"] == "denied"
    if reason is not None:
        assert attributes["gateway.auth.reason"] == reason
    assert spans[0].status.status_code is StatusCode.UNSET  # a 4xx is the client's error
    assert recorder.requests == []
    if minted:
        assert minted not in all_text(spans)


async def test_no_token_query_or_authorization_reaches_a_span(
    traced: TracedFactory, tokens: TokenFactory
) -> None:
    """Allowed, refused and forwarded-with-token requests: no span holds the token, the
    Authorization scheme, the query string or a claim value."""
    gateway = await traced()
    good = tokens.good(sub="subject-7f3a", client_id="client-9d2e")
    requests = [
        ("/orders/7?secret=query-5b1c&access=1", good),
        ("/orders/7?x=query-5b1c", tokens.good(scope="profile")),
        ("/orders/7", good + "x"),
    ]
    for path, token in requests:
        await gateway.client.get(path, headers={"Authorization": f"Bearer {token}"})
    text = all_text(gateway.spans())
    for secret in (good, "Bearer", "query-5b1c", "secret=", "subject-7f3a", "client-9d2e"):
        assert secret not in text


async def test_an_upstream_failure_marks_both_spans_as_errors(
    traced: TracedFactory, resetting_upstream: str
) -> None:
    """A 502: the client span has the failure kind as ``error.type``, the server span is an
    error with the status."""
    gateway = await traced(routes=side_upstream_routes("flaky", resetting_upstream))
    assert (await gateway.client.get("/flaky/x")).status == 502
    server, client = gateway.one(SpanKind.SERVER), gateway.one(SpanKind.CLIENT)
    assert client.status.status_code is StatusCode.ERROR
    assert (client.attributes or {})["error.type"] == "unreachable"
    assert server.status.status_code is StatusCode.ERROR
    assert (server.attributes or {})["error.type"] == "502"
    assert (server.attributes or {})["gateway.auth.result"] == "public"


async def test_other_methods_and_bytes_that_are_not_utf8_still_export(
    traced: TracedFactory, upstream_server: TestServer
) -> None:
    """A method outside the known set is ``_OTHER`` (span name ``HTTP``), and header bytes that
    are not UTF-8 (refused as ``bad_header``) are recorded as text: the batch still encodes to
    OTLP protobuf."""
    gateway = await traced(routes=side_upstream_routes("any", str(upstream_server.make_url(""))))
    response = await gateway.client.request("PROPFIND", "/any/x")
    assert response.status == 200
    raw = http_request("GET", "/any/y", [("User-Agent", "agent/\xff\xfe")], host="h\xe9:81")
    assert (await send_raw(gateway.client, raw)).status == 400
    spans = gateway.spans()
    propfind = next(s for s in spans if s.kind is SpanKind.SERVER and s.name == "HTTP")
    assert (propfind.attributes or {})["http.request.method"] == "_OTHER"
    assert (propfind.attributes or {})["http.request.method_original"] == "PROPFIND"
    refused = next(s for s in spans if (s.attributes or {}).get("http.response.status_code") == 400)
    assert (refused.attributes or {})["user_agent.original"] == "agent/\ufffd\ufffd"
    assert (refused.attributes or {})["server.address"] == "h\ufffd"
    assert (refused.attributes or {})["server.port"] == 81
    assert encode_spans(spans).SerializeToString()


async def test_with_tracing_off_trace_headers_pass_unchanged_and_the_ids_are_null(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
) -> None:
    """No ``tracing:``: the client's traceparent, tracestate and baggage reach the upstream as
    sent, and the access line's ``trace.id`` and ``span.id`` are null."""
    client = await gateway()
    sent = {
        "traceparent": SAMPLED_PARENT,
        "tracestate": "vendor=abc",
        "baggage": "tenant=7",
        "Authorization": f"Bearer {tokens.good()}",
    }
    assert (await client.get("/orders/7", headers=sent)).status == 200
    for name in ("traceparent", "tracestate", "baggage"):
        assert recorder.last.headers.getall(name) == [sent[name]]
    [line] = log_capture.events("access")
    assert (line["trace.id"], line["span.id"]) == (None, None)


async def test_a_websocket_handshake_carries_the_server_span_not_the_clients_context(
    aiohttp_client: AiohttpClient,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    make_config: Callable[..., Config],
    tokens: TokenFactory,
) -> None:
    """A tunnel has no client span: the upstream's handshake names the gateway's server span as
    its parent (one traceparent, the client's replaced), like any traced request."""
    ws = WebSocketUpstream()
    ws_server = await aiohttp_server(ws.app())
    config = make_config(
        upstream=str(ws_server.make_url("")).rstrip("/"),
        routes=websocket_routes("{upstream}"),
        gateway=DEFAULT_GATEWAY + tracing_section(),
    )
    assert config.tracing is not None
    exporter = InMemorySpanExporter()
    tracing = Tracing(config.tracing, exporter=exporter)
    client: Any = await aiohttp_client(GatewayTestServer(create_app(config, tracing=tracing)))
    headers = {"Authorization": f"Bearer {tokens.good()}", "traceparent": SAMPLED_PARENT}
    async with client.ws_connect("/ws/echo", headers=headers) as socket:
        await socket.send_str("hello")
        assert (await socket.receive_str()) == "hello"
    assert tracing.flush()
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    (handshake,) = ws.handshakes
    assert handshake.getall("traceparent") == [traceparent(server)]
    assert hex_ids(server)[0] == TRACE_ID
    assert not [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]


@pytest.mark.parametrize(
    "spellings",
    [
        ("traceparent", "TRACEPARENT"),
        ("TraceParent", "traceParent"),
        ("traceparent", "traceparent"),
    ],
    ids=["lower-upper", "mixed-mixed", "same"],
)
async def test_two_traceparent_headers_in_any_case_start_a_new_trace(
    traced: TracedFactory, tokens: TokenFactory, recorder: RecordingUpstream,
    spellings: tuple[str, str],
) -> None:  # fmt: skip
    """Header names ignore case: two spellings of traceparent are two headers (several are
    invalid), even when both carry the same valid value; no client value reaches the upstream."""
    gateway = await traced()
    headers = [("Authorization", f"Bearer {tokens.good()}"), ("tracestate", "vendor=abc")]
    headers += [(name, SAMPLED_PARENT) for name in spellings]
    # Raw bytes: aiohttp's client would merge the two spellings into one header.
    raw = http_request("GET", "/orders/7", headers)
    assert (await send_raw(gateway.client, raw)).status == 200
    server, client = gateway.one(SpanKind.SERVER), gateway.one(SpanKind.CLIENT)
    assert server.parent is None
    assert hex_ids(server)[0] != TRACE_ID
    assert recorder.last.headers.getall("traceparent") == [traceparent(client)]
    assert "tracestate" not in recorder.last.headers


async def test_tracestate_headers_in_any_case_are_one_list_and_none_without_a_parent(
    traced: TracedFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """``tracestate`` and ``TRACESTATE`` are one list, in order; without a valid traceparent
    the client's tracestate is not carried on (it belongs to the client's trace)."""
    gateway = await traced()
    auth = ("Authorization", f"Bearer {tokens.good()}")
    headers = [auth, ("TraceParent", SAMPLED_PARENT), ("tracestate", "a=1"), ("TRACESTATE", "b=2")]
    assert (await send_raw(gateway.client, http_request("GET", "/orders/7", headers))).status == 200
    assert recorder.last.headers.getall("tracestate") == ["a=1,b=2"]
    assert hex_ids(gateway.one(SpanKind.SERVER))[0] == TRACE_ID
    headers = [auth, ("TraceState", "vendor=abc")]
    assert (await gateway.client.get("/orders/7", headers=headers)).status == 200
    assert "tracestate" not in recorder.last.headers
    assert len(recorder.last.headers.getall("traceparent")) == 1


@pytest.mark.parametrize(
    ("trusted", "forwarded", "client"),
    [
        pytest.param("[127.0.0.1/32]", "203.0.113.9", "203.0.113.9", id="behind-a-trusted-proxy"),
        pytest.param("[10.0.0.0/8]", "203.0.113.9", "127.0.0.1", id="peer-not-trusted"),
        pytest.param("[127.0.0.1/32]", "198.51.100.1, 203.0.113.9", "203.0.113.9",
                     id="rightmost-untrusted"),
    ],
)  # fmt: skip
async def test_the_server_spans_client_address_is_the_access_lines_client_ip(
    traced: TracedFactory,
    tokens: TokenFactory,
    log_capture: LogCapture,
    trusted: str,
    forwarded: str,
    client: str,
) -> None:
    """HTTP semconv: ``client.address`` is the client behind the trusted proxies (as the access
    line's ``client.ip``), ``network.peer.address`` the TCP peer; a spoofed header from an
    untrusted peer changes neither."""
    gateway = await traced(gateway_extra=f"trusted_proxies: {trusted}\n")
    headers = {"Authorization": f"Bearer {tokens.good()}", "X-Forwarded-For": forwarded}
    assert (await gateway.client.get("/orders/7", headers=headers)).status == 200
    attributes = gateway.one(SpanKind.SERVER).attributes or {}
    assert attributes["client.address"] == client
    assert attributes["network.peer.address"] == "127.0.0.1"
    [line] = log_capture.events("access")
    assert line["client.ip"] == client
