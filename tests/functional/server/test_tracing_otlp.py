"""Tracing end to end over OTLP/HTTP: the gateway built from its config exports to a small
collector on 127.0.0.1 that decodes the real protobuf messages; a collector that refuses or is
gone costs spans and a log line, never a request or a slow shutdown."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.config import load
from gateway.server.app import create_app
from tests.conftest import GatewayTestServer, LogCapture
from tests.support import DEFAULT_GATEWAY, ENVIRON, RecordingUpstream, TestKeys, TokenFactory
from tests.support import write_config as write_files

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Collector:
    """An OTLP/HTTP traces receiver: every export request it got, decoded."""

    status: int = 200
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        return app

    async def _export(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.requests.append(message)
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(status=self.status, body=body, content_type="application/x-protobuf")

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Every span received, with its resource's attributes."""
        found = []
        for message in self.requests:
            for resource_spans in message.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    found += [(resource, span) for span in scope_spans.spans]
        return found


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` attributes as a dict of plain values."""
    result: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        value = pair.value
        kind = value.WhichOneof("value")
        assert kind is not None
        result[pair.key] = getattr(value, kind)
    return result


def tracing_config(tmp_path: Path, keys: TestKeys, upstream: str, endpoint: str) -> Path:
    tracing = (
        f"tracing:\n  endpoint: {endpoint}\n  service_name: edge-gateway\n"
        "  headers: {{x-api-key: '${{OTLP_KEY}}'}}\n"
    )
    return write_files(tmp_path, keys, upstream=upstream, gateway=DEFAULT_GATEWAY + tracing)


async def test_spans_are_exported_over_otlp_http_and_flushed_at_shutdown(
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    upstream_server: TestServer,
    tokens: TokenFactory,
    keys: TestKeys,
    recorder: RecordingUpstream,
    tmp_path: Path,
) -> None:
    """The gateway built from ``tracing:`` posts protobuf to the collector with the configured
    headers; shutting the app down flushes the batch: a server span and its client span, the
    upstream's traceparent naming the client span."""
    collector = Collector()
    receiver = await aiohttp_server(collector.app())
    upstream = str(upstream_server.make_url("")).rstrip("/")
    path = tracing_config(tmp_path, keys, upstream, str(receiver.make_url("/v1/traces")))
    config = load(path, {**ENVIRON, "OTLP_KEY": "key-for-the-collector"})
    client: Any = await aiohttp_client(GatewayTestServer(create_app(config)))
    token = tokens.good()
    response = await client.get("/orders/7?q=1", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    assert (await client.get("/orders/7")).status == 401
    await client.close()  # the app's cleanup flushes the exporter

    assert collector.headers
    assert collector.headers[0]["x-api-key"] == "key-for-the-collector"
    assert collector.headers[0]["Content-Type"] == "application/x-protobuf"
    spans = collector.spans()
    assert {resource["service.name"] for resource, _ in spans} == {"edge-gateway"}
    by_kind: dict[int, list[Span]] = {}
    for _, span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    servers, [client_span] = by_kind[Span.SPAN_KIND_SERVER], by_kind[Span.SPAN_KIND_CLIENT]
    allowed = next(
        s for s in servers if attributes(s.attributes)["http.response.status_code"] == 200
    )
    refused = next(
        s for s in servers if attributes(s.attributes)["http.response.status_code"] == 401
    )
    assert allowed.name == "GET /orders"
    assert attributes(allowed.attributes)["url.path"] == "/orders/7"
    assert attributes(refused.attributes)["gateway.auth.reason"] == "missing"
    assert client_span.parent_span_id == allowed.span_id
    assert client_span.trace_id == allowed.trace_id
    assert allowed.parent_span_id == b""
    assert client_span.status.code != Status.STATUS_CODE_ERROR
    traceparent = recorder.requests[0].headers["traceparent"]
    assert traceparent.split("-")[1:3] == [client_span.trace_id.hex(), client_span.span_id.hex()]
    wire = b"".join(message.SerializeToString() for message in collector.requests)
    assert token.encode() not in wire
    assert b"q=1" not in wire


async def test_a_collector_that_refuses_is_logged_and_requests_go_on(
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    upstream_server: TestServer,
    keys: TestKeys,
    tmp_path: Path,
    log_capture: LogCapture,
) -> None:
    """A collector answering 400 loses the batch: one ``tracing_export_failed`` event, and the
    requests were answered as usual."""
    collector = Collector(status=400)
    receiver = await aiohttp_server(collector.app())
    upstream = str(upstream_server.make_url("")).rstrip("/")
    path = tracing_config(tmp_path, keys, upstream, str(receiver.make_url("/v1/traces")))
    config = load(path, {**ENVIRON, "OTLP_KEY": "key-never-logged"})
    client: Any = await aiohttp_client(GatewayTestServer(create_app(config)))
    assert (await client.get("/orders/health")).status == 200
    await client.close()
    assert collector.requests
    [failed] = log_capture.events("tracing_export_failed")
    assert failed["gateway.tracing.spans"] == 2
    assert failed["gateway.tracing.endpoint"] == str(receiver.make_url("/v1/traces"))
    assert "key-never-logged" not in log_capture.text


async def test_a_collector_that_is_gone_never_holds_a_request_or_the_shutdown(
    aiohttp_client: AiohttpClient,
    upstream_server: TestServer,
    keys: TestKeys,
    tmp_path: Path,
    unused_port: Callable[[], int],
) -> None:
    """Nothing listens at the endpoint: requests are answered at once, and shutting down waits
    for the flush only a bounded time."""
    upstream = str(upstream_server.make_url("")).rstrip("/")
    endpoint = f"http://127.0.0.1:{unused_port()}/v1/traces"
    path = tracing_config(tmp_path, keys, upstream, endpoint)
    client: Any = await aiohttp_client(
        GatewayTestServer(create_app(load(path, {**ENVIRON, "OTLP_KEY": "k"})))
    )
    for _ in range(20):
        async with asyncio.timeout(2):
            assert (await client.get("/orders/health")).status == 200
    started = time.monotonic()
    await client.close()
    assert time.monotonic() - started < 2.0


@pytest.fixture
def unused_port() -> Callable[[], int]:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""

    def find() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    return find


@pytest.mark.slow
def test_without_tracing_opentelemetry_is_never_imported(tmp_path: Path, keys: TestKeys) -> None:
    """Building and serving the app without ``tracing:`` loads no OpenTelemetry module (import
    time and memory are paid only by those who trace)."""
    path = write_files(tmp_path, keys)
    environ = {"ACCESS_TOKEN_SECRET": ENVIRON["ACCESS_TOKEN_SECRET"]}
    script = (
        "import sys, asyncio\n"
        "from gateway.config import load\n"
        "from gateway.server.app import create_app\n"
        f"config = load({str(path)!r}, {environ!r})\n"
        "async def main():\n"
        "    create_app(config)\n"
        "asyncio.run(main())\n"
        "prefixes = ('opentelemetry', 'gateway.server.tracing')\n"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
        cwd=REPO,
    )  # fmt: skip
    assert result.stdout.strip() == "[]"
