"""Tenant isolation through a real gateway: a path parameter bound to a claim, sent as raw bytes
so no client library normalises the spelling; the upstream never sees a refused request."""

from __future__ import annotations

import pytest

from gateway.server.app import METRICS
from tests.conftest import GatewayFactory, LogCapture
from tests.raw import assert_refusal, http_request, send_raw
from tests.support import RecordingUpstream, TokenFactory, metric_sample, route_table

ROUTES = route_table(
    """\
  - path: /tenants/{{tenant}}/orders
    upstream: orders
    scopes: [orders:read]
    bind: {{tenant: tenant_id}}
    mode: {mode}
"""
)

# Spellings of tenants other than acme, or of acme's path climbing out of it.
OTHER_TENANT = [
    pytest.param("/tenants/other/orders", 403, id="other"),
    pytest.param("/tenants/ACME/orders", 403, id="upper-case"),
    pytest.param("/tenants/%41CME/orders", 403, id="encoded-upper-case"),
    pytest.param("/tenants/acme/../other/orders", 403, id="dot-dot"),
    pytest.param("/tenants/acme/%2E%2E/other/orders", 403, id="encoded-dot-dot"),
    pytest.param("/tenants/acme/orders/../../other/orders/1", 403, id="climb-from-below"),
    pytest.param("/tenants/acme%20/orders", 403, id="trailing-space"),
    pytest.param("/tenants/acme%2F..%2Fother/orders", 400, id="encoded-slash"),
    pytest.param("/tenants/acme%5C..%5Cother/orders", 400, id="encoded-backslash"),
    pytest.param("/tenants/acme;/orders", 400, id="path-parameter"),
    pytest.param("/tenants/acme\\..\\other/orders", 400, id="raw-backslash"),
]


@pytest.mark.parametrize(("target", "status"), OTHER_TENANT)
async def test_no_spelling_of_another_tenant_reaches_the_upstream(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    target: str,
    status: int,
) -> None:
    """acme's token is refused for any other tenant however the path is spelt, the upstream sees
    nothing, and the access line says why with the route's template."""
    client = await gateway(routes=ROUTES.replace("{mode}", "enforce"))
    token = tokens.good(tenant_id="acme")
    request = http_request("GET", target, [("Authorization", f"Bearer {token}")])
    answer = await send_raw(client, request)
    assert_refusal(answer, status, "forbidden" if status == 403 else "bad_request")
    assert recorder.requests == []
    assert token.encode() not in answer.body
    (line,) = log_capture.events("access")
    assert line["gateway.auth.result"] == "denied"
    if status == 403:
        assert (line["gateway.auth.reason"], line["gateway.route"]) == (
            "claim_mismatch", "/tenants/{tenant}/orders"
        )  # fmt: skip
    assert token not in log_capture.text


ACME = [
    pytest.param("/tenants/acme/orders", "/tenants/acme/orders", id="plain"),
    pytest.param("/tenants/%61cme/orders/7?x=1", "/tenants/acme/orders/7?x=1", id="encoded"),
    pytest.param("/tenants//acme/./orders", "/tenants/acme/orders", id="slashes-and-dots"),
]


@pytest.mark.parametrize(("target", "forwarded"), ACME)
async def test_the_own_tenant_is_forwarded_as_compared(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    target: str,
    forwarded: str,
) -> None:
    """The value compared is the one forwarded: every spelling of acme reaches the upstream as
    /tenants/acme, with the token's identity."""
    client = await gateway(routes=ROUTES.replace("{mode}", "enforce"))
    token = tokens.good(tenant_id=["beta", "acme"])
    answer = await send_raw(
        client, http_request("GET", target, [("Authorization", f"Bearer {token}")])
    )
    assert answer.status == 200
    assert recorder.last.raw_path == forwarded
    assert recorder.last.headers["X-Auth-Subject"] == "alice"


async def test_report_mode_forwards_a_mismatch_and_counts_it(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
) -> None:
    """In report mode another tenant's request reaches the upstream, logged as would_deny with
    claim_mismatch and counted under the route's template."""
    client = await gateway(routes=ROUTES.replace("{mode}", "report"))
    token = tokens.good(tenant_id="acme")
    response = await client.get(
        "/tenants/other/orders", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200
    assert recorder.last.raw_path == "/tenants/other/orders"
    (line,) = log_capture.events("access")
    assert (line["gateway.auth.result"], line["gateway.auth.reason"]) == (
        "would_deny",
        "claim_mismatch",
    )
    would_deny = metric_sample(
        client.app[METRICS], "gateway_auth_would_deny_total",
        route="/tenants/{tenant}/orders", reason="claim_mismatch",
    )  # fmt: skip
    assert would_deny == 1
