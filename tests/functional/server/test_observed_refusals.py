"""Every kind of refusal, as the logs, the spans and the metrics see it: the route label and the
span's name and ``http.route`` are route patterns (or ``none``), never the request's path, and
no token, query string or credential reaches a log line, a span or a metric.

One real gateway (tracing on, a CORS policy, a bound path parameter, RFC 9728 metadata) in
front of the recording upstream; every request carries a path marker (allowed only in
``url.path``) and a secret marker (in its query, token or Authorization: allowed nowhere).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from gateway.config import Config
from gateway.core.methods import COMMON_METHODS
from gateway.server.app import METRICS, create_app
from gateway.server.tracing import Tracing
from tests.conftest import GatewayFactory, GatewayTestServer, LogCapture
from tests.raw import http_request, send_raw
from tests.support import DEFAULT_GATEWAY, RecordingUpstream, TokenFactory, metric_sample

SECRET = "sm-4f2a9c"
PATTERNS = {"/orders", "/tenants/{tenant}/orders", "none"}
ROUTES = """\
upstreams:
  orders: {{url: "{upstream}", timeout: 2s}}
routes:
  - path: /orders
    upstream: orders
    methods: [GET, POST]
    scopes: [orders:read]
    cors: {{origins: [https://app.example.com], headers: [Content-Type]}}
  - path: /tenants/{{tenant}}/orders
    upstream: orders
    methods: [GET]
    scopes: [orders:read]
    bind: {{tenant: tenant_id}}
"""
GATEWAY = DEFAULT_GATEWAY + (
    "protected_resource:\n  resource: https://api.example.test\n"
    "tracing:\n  endpoint: http://127.0.0.1:9/v1/traces\n"
)
ORIGIN = "https://app.example.com"


async def test_no_refusal_puts_a_path_in_a_label_or_a_secret_anywhere(
    aiohttp_client: AiohttpClient,
    upstream_server: TestServer,
    make_config: Callable[..., Config],
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
) -> None:
    config = make_config(
        upstream=str(upstream_server.make_url("")).rstrip("/"), routes=ROUTES, gateway=GATEWAY
    )
    assert config.tracing is not None
    exporter = InMemorySpanExporter()
    tracing = Tracing(config.tracing, exporter=exporter)
    client: Any = await aiohttp_client(GatewayTestServer(create_app(config, tracing=tracing)))
    good = {"Authorization": f"Bearer {tokens.good(scope='orders:read', tenant_id='acme')}"}
    query = f"?q={SECRET}&access={SECRET}"
    forged = {"Authorization": f"Bearer {SECRET}.{SECRET}.{SECRET}"}
    requests: list[tuple[str, str, dict[str, str], int]] = [
        ("GET", f"/nowhere/pm-a{query}", good, 404),
        ("GET", f"/orders/pm-b;v=1{query}", good, 400),
        ("GET", f"/orders/%2e%2e/pm-c{query}", good, 404),
        ("GET", f"/orders/pm-d%00{query}", good, 400),
        ("GET", f"/orders/pm-e%2F{query}", good, 400),
        ("DELETE", f"/orders/pm-f{query}", good, 405),
        ("PURGE", f"/orders/pm-g{query}", good, 405),
        ("GET", f"/orders/pm-h?access_token={SECRET}", {}, 400),
        ("GET", f"/orders/pm-i{query}", forged, 401),
        ("GET", f"/orders/pm-j{query}", {"Authorization": f"Basic {SECRET}"}, 401),
        ("GET", f"/tenants/pm-k/orders{query}", good, 403),
        ("GET", f"/.well-known/oauth-protected-resource/pm-l{query}", {}, 404),
        ("POST", f"/.well-known/oauth-protected-resource{query}", {}, 405),
        # CORS preflights refused: another origin, a method, a header the policy does not allow
        ("OPTIONS", f"/orders/pm-m{query}",
         {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, 403),
        ("OPTIONS", f"/orders/pm-n{query}",
         {"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"}, 405),
        ("OPTIONS", f"/orders/pm-o{query}",
         {"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
          "Access-Control-Request-Headers": "X-Evil"}, 403),
        ("OPTIONS", f"/nowhere/pm-p{query}",
         {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}, 404),
    ]  # fmt: skip
    statuses = []
    for method, target, headers, _ in requests:
        answer = await send_raw(client, http_request(method, target, list(headers.items())))
        statuses.append(answer.status)
    assert statuses == [status for *_, status in requests]
    # Parser refusals (answered below the door): a bad header line, a bad method, a raw space.
    for raw in (
        f"GET /orders/pm-r{query} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".encode(),
        f"G(T /orders/pm-s{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"GET /orders/pm-t {SECRET}{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"GET /orders/pm-u{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n"
        "Content-Length: 1\r\nContent-Length: 2\r\n\r\n".encode(),
    ):
        assert (await send_raw(client, raw)).status == 400
    assert recorder.requests == []

    exposition = client.app[METRICS].render().decode()
    assert "pm-" not in exposition
    assert SECRET not in exposition
    labels = [
        sample.labels
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    ]
    assert {label["route"] for label in labels if "route" in label} <= PATTERNS
    assert {label["method"] for label in labels if "method" in label} <= {*COMMON_METHODS, "other"}

    assert tracing.flush()
    spans = exporter.get_finished_spans()
    assert [span.kind for span in spans] == [SpanKind.SERVER] * len(requests)
    for span in spans:
        attributes = dict(span.attributes or {})
        assert "pm-" not in span.name
        assert attributes.get("http.route", "none") in PATTERNS
        text = span.name + repr(sorted(attributes.items()))
        for secret in (SECRET, "Bearer", "Basic"):
            assert secret not in text

    assert SECRET not in log_capture.text
    access = log_capture.events("access")
    assert len(access) == len(requests) + 4
    assert {line["gateway.route"] or "none" for line in access} <= PATTERNS


async def test_parser_refusals_are_counted_like_every_other_refusal(
    gateway: GatewayFactory, log_capture: LogCapture
) -> None:
    """A request aiohttp's parser refuses has an access line; it is also counted: in the
    requests (route ``none``, method ``other``: none was read) and in the refusals by reason,
    so a flood of malformed requests (smuggling probes) shows on the dashboards too."""
    client = await gateway()
    metrics = client.app[METRICS]
    for raw in (
        b"GET /orders/1 HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"G(T /orders/1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /orders/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET /orders/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"GET /orders/\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        assert (await send_raw(client, raw)).status == 400
    lines = log_capture.events("access")
    assert [line["gateway.auth.reason"] for line in lines] == ["unparseable_request"] * 5
    requests = "gateway_requests_total"
    assert metric_sample(metrics, requests, route="none", method="other", status_class="4xx") == 5
    assert metric_sample(metrics, "gateway_request_duration_seconds_count", route="none") == 5
    refusals = "gateway_auth_refusals_total"
    assert metric_sample(metrics, refusals, route="none", reason="unparseable_request") == 5
