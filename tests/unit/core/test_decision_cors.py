"""`Decider.decide` and CORS preflights: answered before auth on a route with a policy, matched
by the method they ask about; every other OPTIONS is decided like any request."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.config import Config
from gateway.core.authenticator import Authenticator
from gateway.core.decision import Decider
from gateway.core.outcomes import (
    AuthResult,
    Forward,
    Preflight,
    Refuse,
    RequestFacts,
    StepName,
    StepOutcome,
)
from gateway.core.ratelimit import MemoryCounter
from gateway.core.routes import RouteTable

APP = "https://app.example.com"
ROUTES = """\
upstreams:
  orders: {{url: "http://127.0.0.1:9001", timeout: 2s}}
defaults:
  cors: {{origins: [https://app.example.com], headers: [Content-Type]}}
routes:
  - path: /orders
    upstream: orders
    methods: [GET]
    scopes: [orders:read]
    rate_limit: {{rate: 1/min, burst: 1, key: ip}}
  - path: /orders
    upstream: orders
    methods: [DELETE]
    scopes: [orders:admin]
    cors: off
  - path: /reports
    upstream: orders
    methods: [GET, OPTIONS]
    mode: report
  - path: /legacy
    upstream: orders
    cors: false
  - path: /public
    upstream: orders
    auth: none
"""


def _decider(config: Config) -> Decider:
    return Decider(
        routes=config.routes,
        table=RouteTable.from_config(config.routes),
        authenticator=Authenticator(config.issuers, config.tokens),
        max_body_size=config.limits.max_body_size,
        counter=MemoryCounter(),
    )


def _facts(method: str, target: str, *headers: tuple[str, str]) -> RequestFacts:
    return RequestFacts(method=method, raw_target=target, headers=headers, peer="192.0.2.1")


def _preflight(target: str, method: str, origin: str = APP, *more: str) -> RequestFacts:
    headers = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if more:
        headers.append(("Access-Control-Request-Headers", ", ".join(more)))
    return _facts("OPTIONS", target, *headers)


CASES = [
    pytest.param(_preflight("/orders/7", "GET", APP, "authorization", "content-type"), 204,
                 AuthResult.PREFLIGHT, None, id="allowed"),
    pytest.param(_preflight("/reports", "GET"), 204, AuthResult.PREFLIGHT, None,
                 id="report-mode-route"),
    pytest.param(_preflight("/orders", "GET", "https://evil.test"), 403, AuthResult.DENIED,
                 "cors_origin_not_allowed", id="origin"),
    pytest.param(_preflight("/orders", "GET", APP, "x-secret"), 403, AuthResult.DENIED,
                 "cors_headers_not_allowed", id="headers"),
    pytest.param(_preflight("/public", "GET", APP, "authorization"), 403, AuthResult.DENIED,
                 "cors_headers_not_allowed", id="authorization-on-public-route-needs-listing"),
]  # fmt: skip


@pytest.mark.parametrize(("facts", "status", "result", "reason"), CASES)
async def test_a_preflight_on_a_cors_route_is_answered_before_auth(
    make_config: Callable[..., Config],
    facts: RequestFacts,
    status: int,
    result: AuthResult,
    reason: str | None,
) -> None:
    """No token is asked for and no rate limit is counted: target, route, method, cors."""
    decider = _decider(make_config(routes=ROUTES))
    for _ in range(3):  # the per-IP limit (burst 1) would refuse the second one
        decision = await decider.decide(facts, trace=True)
        assert isinstance(decision, Preflight)
        assert (decision.status, decision.result, decision.reason) == (status, result, reason)
    assert isinstance(decision, Preflight)
    steps = [(step.name, step.outcome) for step in decision.steps]
    cors_outcome = StepOutcome.PASSED if reason is None else StepOutcome.FAILED
    assert steps == [
        (StepName.TARGET, StepOutcome.PASSED), (StepName.ROUTE, StepOutcome.PASSED),
        (StepName.METHOD, StepOutcome.PASSED), (StepName.CORS, cors_outcome),
    ]  # fmt: skip
    if reason is None:
        assert dict(decision.fields)["Access-Control-Allow-Origin"] == APP
    else:
        assert decision.refusal is not None
        assert not any(name.startswith("Access-Control-") for name in decision.refusal.headers)


NOT_PREFLIGHTS = [
    pytest.param(_facts("OPTIONS", "/orders"), 405, "method_not_allowed",
                 id="options-without-preflight-fields"),
    pytest.param(_facts("OPTIONS", "/orders", ("Access-Control-Request-Method", "GET")), 405,
                 "method_not_allowed", id="no-origin"),
    pytest.param(_preflight("/orders", "DELETE"), 405, "method_not_allowed",
                 id="asked-method-route-has-no-cors"),
    pytest.param(_preflight("/orders", "PUT"), 405, "method_not_allowed",
                 id="asked-method-matches-no-route"),
    pytest.param(_preflight("/nowhere", "GET"), 404, "no_route", id="no-route"),
    pytest.param(_preflight("/orders/%2F", "GET"), 400, "encoded_slash", id="bad-target"),
    pytest.param(_preflight("/legacy", "GET"), 401, "missing", id="cors-off-decided-as-options"),
    pytest.param(_preflight("/reports", "TRACE"), 200, "missing",
                 id="never-proxied-method-decided-as-options"),
]  # fmt: skip


@pytest.mark.parametrize(("facts", "status", "reason"), NOT_PREFLIGHTS)
async def test_other_options_requests_are_decided_like_any_request(
    make_config: Callable[..., Config], facts: RequestFacts, status: int, reason: str | None
) -> None:
    """The OPTIONS itself is routed; no CORS answer is made up for a route without a policy."""
    decision = await _decider(make_config(routes=ROUTES)).decide(facts)
    assert not isinstance(decision, Preflight)
    assert (decision.status, decision.reason) == (status, reason)
    assert isinstance(decision, Forward if status == 200 else Refuse)


async def test_an_actual_request_from_an_allowed_origin_still_needs_its_token(
    make_config: Callable[..., Config],
) -> None:
    """CORS allows reading answers, never skipping auth: a GET with Origin and the preflight's
    fields but no token is a 401."""
    decider = _decider(make_config(routes=ROUTES))
    facts = _facts("GET", "/orders/7", ("Origin", APP), ("Access-Control-Request-Method", "GET"))
    decision = await decider.decide(facts)
    assert isinstance(decision, Refuse)
    assert (decision.status, decision.reason) == (401, "missing")
    assert decision.route is not None
    assert decision.route.cors is not None
