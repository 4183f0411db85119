"""`Decider.decide`: every step in order, report mode on the auth steps only, and the trace."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.config import Config
from gateway.core.authenticator import Authenticator
from gateway.core.decision import Decider
from gateway.core.outcomes import AuthResult, Forward, RequestFacts, StepName, StepOutcome
from gateway.core.routes import RouteTable
from tests.support import TokenFactory

ROUTES = """\
upstreams:
  orders: {{url: "http://127.0.0.1:9001", timeout: 2s}}
routes:
  - path: /orders
    upstream: orders
    methods: [GET]
    scopes: [orders:read]
    max_body_size: 10
  - path: /reports
    upstream: orders
    methods: [GET]
    scopes: [reports:read]
    mode: report
    max_body_size: 10
  - path: /health
    upstream: orders
    auth: none
"""

Auth = Callable[[TokenFactory], tuple[str, ...]]


def _decider(config: Config) -> Decider:
    return Decider(
        routes=config.routes,
        table=RouteTable.from_config(config.routes),
        authenticator=Authenticator(config.issuers, config.tokens),
        max_body_size=config.limits.max_body_size,
    )


def _bearer(token: str) -> tuple[str, ...]:
    return (f"Bearer {token}",)


T, R, M, C, K, S, B = (
    StepName.TARGET, StepName.ROUTE, StepName.METHOD, StepName.CREDENTIALS,
    StepName.TOKEN, StepName.SCOPES, StepName.BODY,
)  # fmt: skip

CASES = [
    pytest.param("GET", "/orders/%2F", lambda t: (), None, AuthResult.DENIED, 400,
                 "encoded_slash", [T], [T], id="target"),
    pytest.param("GET", "/nowhere", lambda t: (), None, AuthResult.DENIED, 404, "no_route",
                 [T, R], [R], id="route"),
    pytest.param("POST", "/orders", lambda t: (), None, AuthResult.DENIED, 405,
                 "method_not_allowed", [T, R, M], [M], id="method"),
    pytest.param("GET", "/orders", lambda t: (), None, AuthResult.DENIED, 401, "missing",
                 [T, R, M, C], [C], id="credentials"),
    pytest.param("GET", "/orders?access_token=x", lambda t: _bearer(t.good()), None,
                 AuthResult.DENIED, 400, "malformed", [T, R, M, C], [C], id="query-token"),
    pytest.param("GET", "/orders", lambda t: _bearer(t.good(exp=1)), None, AuthResult.DENIED,
                 401, "expired", [T, R, M, C, K], [K], id="token"),
    pytest.param("GET", "/orders", lambda t: _bearer(t.good(scope="x")), None,
                 AuthResult.DENIED, 403, "insufficient_scope", [T, R, M, C, K, S], [S],
                 id="scopes"),
    pytest.param("GET", "/orders", lambda t: _bearer(t.good()), 11, AuthResult.DENIED, 413,
                 "body_too_large", [T, R, M, C, K, S, B], [B], id="body"),
    pytest.param("GET", "/orders", lambda t: _bearer(t.good()), 10, AuthResult.ALLOWED, 200,
                 None, [T, R, M, C, K, S, B], [], id="allowed"),
    pytest.param("GET", "/health", lambda t: (), None, AuthResult.PUBLIC, 200, None,
                 [T, R, M, C, K, S, B], [], id="public"),
    pytest.param("GET", "/reports", lambda t: (), None, AuthResult.WOULD_DENY, 200, "missing",
                 [T, R, M, C, B], [C], id="report-missing"),
    pytest.param("GET", "/reports", lambda t: _bearer(t.good()), None, AuthResult.WOULD_DENY,
                 200, "insufficient_scope", [T, R, M, C, K, S, B], [S], id="report-scope"),
    pytest.param("GET", "/reports", lambda t: (), 11, AuthResult.DENIED, 413, "body_too_large",
                 [T, R, M, C, B], [C, B], id="report-body-still-enforced"),
    pytest.param("POST", "/reports", lambda t: (), None, AuthResult.DENIED, 405,
                 "method_not_allowed", [T, R, M], [M], id="report-method-still-enforced"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "target", "auth", "length", "result", "status", "reason", "taken", "failed"),
    CASES,
)
async def test_steps_run_in_order_and_the_first_failure_answers(
    make_config: Callable[..., Config],
    tokens: TokenFactory,
    method: str,
    target: str,
    auth: Auth,
    length: int | None,
    result: AuthResult,
    status: int,
    reason: str | None,
    taken: list[StepName],
    failed: list[StepName],
) -> None:
    """Each request gets the result, status and reason of the first step that fails, and the
    trace shows exactly the steps taken before it (and which one failed)."""
    decider = _decider(make_config(routes=ROUTES))
    facts = RequestFacts(
        method=method, raw_target=target, authorization=auth(tokens), content_length=length
    )
    decision = await decider.decide(facts, trace=True)
    assert (decision.result, decision.status, decision.reason) == (result, status, reason)
    assert [step.name for step in decision.steps] == taken
    assert [s.name for s in decision.steps if s.outcome is StepOutcome.FAILED] == failed
    assert isinstance(decision, Forward) == (status == 200)


async def test_trace_is_only_recorded_when_asked(
    make_config: Callable[..., Config], tokens: TokenFactory
) -> None:
    """The door's decisions carry no trace; explain's carry every step."""
    decider = _decider(make_config(routes=ROUTES))
    facts = RequestFacts(method="GET", raw_target="/orders", authorization=_bearer(tokens.good()))
    assert (await decider.decide(facts)).steps == ()
    steps = (await decider.decide(facts, trace=True)).steps
    assert [step.name for step in steps] == [T, R, M, C, K, S, B]


async def test_claims_come_only_from_a_verified_token(
    make_config: Callable[..., Config], tokens: TokenFactory
) -> None:
    """A valid token lacking the scope keeps its claims (for the log); a bad one has none."""
    decider = _decider(make_config(routes=ROUTES))
    scoped = RequestFacts(method="GET", raw_target="/reports", authorization=_bearer(tokens.good()))
    expired = RequestFacts(
        method="GET", raw_target="/reports", authorization=_bearer(tokens.good(exp=1))
    )
    with_claims = await decider.decide(scoped)
    assert with_claims.claims is not None
    assert with_claims.claims.subject == "alice"
    assert (await decider.decide(expired)).claims is None
