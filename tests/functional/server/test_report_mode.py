"""Report mode through a real gateway: forwarded, logged as would_deny, counted; enforce refuses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.server.app import METRICS
from tests.conftest import GatewayFactory, LogCapture
from tests.support import (
    ORDERS_HEALTH,
    RecordingUpstream,
    TokenFactory,
    metric_sample,
    route_table,
)

ROUTES = route_table(
    """\
  - path: /orders
    upstream: orders
    methods: [GET, HEAD]
    scopes: [orders:read]
    mode: {mode}
""",
    ORDERS_HEALTH,
)

FILE_DEFAULT_ROUTES = """\
defaults: {{mode: report}}
upstreams:
  orders: {{url: "{upstream}", timeout: 2s}}
routes:
  - path: /orders
    upstream: orders
    methods: [GET]
    scopes: [orders:read]
  - path: /admin
    upstream: orders
    mode: enforce
"""

Headers = Callable[[TokenFactory], dict[str, str]]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# (request headers, the reason enforce mode refuses with, its status)
REFUSED = [
    pytest.param(lambda t: {}, "missing", 401, id="no-token"),
    pytest.param(lambda t: {"Authorization": "Basic YTpi"}, "missing", 401, id="basic"),
    pytest.param(lambda t: {"Authorization": "Bearer"}, "malformed", 400, id="malformed"),
    pytest.param(lambda t: _bearer(t.good(exp=1)), "expired", 401, id="expired"),
    pytest.param(lambda t: _bearer(t.good(aud="other")), "bad_audience", 401, id="audience"),
    pytest.param(
        lambda t: _bearer(t.good(scope="orders:write")), "insufficient_scope", 403, id="scope"
    ),
]


@pytest.mark.parametrize(("headers", "reason", "status"), REFUSED)
async def test_report_forwards_what_enforce_refuses(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    headers: Headers,
    reason: str,
    status: int,
) -> None:
    """A request enforce mode refuses (upstream sees nothing) reaches the upstream in report
    mode, logged as would_deny with the refusal's reason and counted by route and reason."""
    enforcing = await gateway(routes=ROUTES.replace("{mode}", "enforce"))
    response = await enforcing.get("/orders/7", headers=headers(tokens))
    assert response.status == status
    assert recorder.requests == []
    reporting = await gateway(routes=ROUTES.replace("{mode}", "report"))
    response = await reporting.get("/orders/7", headers=headers(tokens))
    assert response.status == 200
    assert recorder.last.raw_path == "/orders/7"
    denied, would_deny = log_capture.events("access")
    assert (denied["gateway.auth.result"], denied["gateway.auth.reason"]) == ("denied", reason)
    assert (would_deny["gateway.auth.result"], would_deny["gateway.auth.reason"]) == (
        "would_deny",
        reason,
    )
    assert would_deny["http.response.status_code"] == 200
    metrics = reporting.app[METRICS]
    would_deny_total = metric_sample(
        metrics, "gateway_auth_would_deny_total", route="/orders", reason=reason
    )
    assert would_deny_total == 1
    assert metric_sample(metrics, "gateway_auth_refusals_total", reason=reason) == 0
    assert metric_sample(enforcing.app[METRICS], "gateway_auth_refusals_total", reason=reason) == 1


async def test_report_mode_sets_identity_only_from_a_valid_token(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """An invalid token gets no X-Auth-* headers, client ones are removed, and Authorization is
    not forwarded; a valid token without the scope is identified, and logged as would_deny."""
    client = await gateway(routes=ROUTES.replace("{mode}", "report"))
    forged = tokens.good(exp=1)
    spoofed = {"X-Auth-Subject": "mallory", "X-Auth-Scopes": "orders:read"}
    await client.get("/orders/1", headers={**_bearer(forged), **spoofed})
    seen = recorder.last.headers
    assert [name for name in seen if name.lower().startswith("x-auth-")] == []
    assert "Authorization" not in seen
    await client.get("/orders/2", headers={**_bearer(tokens.good(scope="other")), **spoofed})
    seen = recorder.last.headers
    assert seen["X-Auth-Subject"] == "alice"
    assert seen["X-Auth-Scopes"] == "other"
    assert "Authorization" not in seen


async def test_report_mode_allows_a_good_token_as_allowed(
    gateway: GatewayFactory, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """A request that passes every check is logged as allowed, not would_deny, in report mode."""
    client = await gateway(routes=ROUTES.replace("{mode}", "report"))
    response = await client.get("/orders/7", headers=_bearer(tokens.good()))
    assert response.status == 200
    (line,) = log_capture.events("access")
    assert (line["gateway.auth.result"], line["gateway.auth.reason"]) == ("allowed", None)


STILL_ENFORCED = [
    pytest.param("GET", "/nowhere", 404, "no_route", id="no-route"),
    pytest.param("POST", "/orders/1", 405, "method_not_allowed", id="method"),
    pytest.param("GET", "/orders/%2e%2e%2fadmin", 400, "encoded_slash", id="target"),
]


@pytest.mark.parametrize(("method", "path", "status", "reason"), STILL_ENFORCED)
async def test_report_mode_never_relaxes_target_route_or_method(
    gateway: GatewayFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    method: str,
    path: str,
    status: int,
    reason: str,
) -> None:
    """Request-target 400s, 404 and 405 are not auth decisions: report mode still refuses them."""
    client = await gateway(routes=ROUTES.replace("{mode}", "report"))
    response = await client.request(method, path)
    assert response.status == status
    assert recorder.requests == []
    (line,) = log_capture.events("access")
    assert (line["gateway.auth.result"], line["gateway.auth.reason"]) == ("denied", reason)


async def test_file_default_mode_applies_unless_a_route_says_otherwise(
    gateway: GatewayFactory, recorder: RecordingUpstream, log_capture: LogCapture
) -> None:
    """`defaults: {mode: report}` puts routes in report mode; `mode: enforce` on one wins."""
    client = await gateway(routes=FILE_DEFAULT_ROUTES)
    assert (await client.get("/orders/1")).status == 200
    assert (await client.get("/admin/1")).status == 401
    assert [request.raw_path for request in recorder.requests] == ["/orders/1"]
    results = [
        (line["gateway.route"], line["gateway.auth.result"])
        for line in log_capture.events("access")
    ]
    assert results == [("/orders", "would_deny"), ("/admin", "denied")]
