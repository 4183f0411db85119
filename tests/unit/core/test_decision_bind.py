"""`Decider.decide` on routes that bind path parameters to claims: 403 claim_mismatch after the
scopes, every spelling of another tenant refused, report mode, and the verified-token cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.config import Config
from gateway.core.authenticator import Authenticator
from gateway.core.decision import Decider
from gateway.core.outcomes import AuthResult, Forward, RequestFacts, StepName, StepOutcome
from gateway.core.routes import RouteTable
from tests.support import TokenFactory

ROUTES = """\
upstreams:
  orders: {{url: "http://127.0.0.1:9001"}}
  rails: {{url: "http://127.0.0.1:9002", ignore_suffix: true}}
  aspnet: {{url: "http://127.0.0.1:9003", case_insensitive: true}}
routes:
  - path: /tenants/{{tenant}}/orders
    upstream: orders
    scopes: [orders:read]
    bind: {{tenant: tenant_id}}
  - path: /tenants/me
    upstream: orders
  - path: /users/{{user}}/keys
    upstream: orders
    scopes: [orders:read]
    bind: {{user: sub}}
    mode: report
  - path: /rails/users/{{user}}
    upstream: rails
    bind: {{user: sub}}
  - path: /rails/tenants/{{tenant}}
    upstream: rails
    bind: {{tenant: tenant_id}}
  - path: /aspnet/tenants/{{tenant}}
    upstream: aspnet
    bind: {{tenant: tenant_id}}
  - path: /orgs/{{org}}/users/{{user}}
    upstream: orders
    bind: {{org: org_id, user: sub}}
"""


def _decider(config: Config) -> Decider:
    return Decider(
        routes=config.routes,
        table=RouteTable.from_config(config.routes),
        authenticator=Authenticator(config.issuers, config.tokens),
        max_body_size=config.limits.max_body_size,
    )


@pytest.fixture
def decider(make_config: Callable[..., Config]) -> Decider:
    return _decider(make_config(routes=ROUTES))


async def _decide(decider: Decider, target: str, token: str | None) -> Any:
    authorization = (f"Bearer {token}",) if token is not None else ()
    facts = RequestFacts(method="GET", raw_target=target, authorization=authorization)
    return await decider.decide(facts, trace=True)


ACME = {"tenant_id": "acme"}

# (target, claims, status, reason): the token says tenant acme (or what `claims` say).
CASES = [
    pytest.param("/tenants/acme/orders", ACME, 200, None, id="own-tenant"),
    pytest.param("/tenants/acme/orders/7?x=1", ACME, 200, None, id="below-with-query"),
    pytest.param("/tenants/other/orders", ACME, 403, "claim_mismatch", id="other-tenant"),
    pytest.param("/tenants/ACME/orders", ACME, 403, "claim_mismatch", id="case-variant"),
    pytest.param("/tenants/Acme/orders", ACME, 403, "claim_mismatch", id="mixed-case"),
    pytest.param("/tenants/%61cme/orders", ACME, 200, None, id="encoded-own-is-own"),
    pytest.param("/tenants/%6F%74%68%65%72/orders", ACME, 403, "claim_mismatch",
                 id="encoded-other"),
    pytest.param("/tenants/acme%2F..%2Fother/orders", ACME, 400, "encoded_slash",
                 id="encoded-slash-climb"),
    pytest.param("/tenants/acme%2f..%2fother/orders", ACME, 400, "encoded_slash",
                 id="encoded-slash-lower"),
    pytest.param("/tenants/acme%5C..%5Cother/orders", ACME, 400, "backslash",
                 id="encoded-backslash"),
    pytest.param("/tenants/acme/../other/orders", ACME, 403, "claim_mismatch",
                 id="dot-segments-resolved-first"),
    pytest.param("/tenants/acme/%2e%2e/other/orders", ACME, 403, "claim_mismatch",
                 id="encoded-dot-segments"),
    pytest.param("/tenants/acme/orders/../../other/orders", ACME, 403, "claim_mismatch",
                 id="climb-out-of-own"),
    pytest.param("/tenants//acme/orders", ACME, 200, None, id="double-slash-merged"),
    pytest.param("/tenants/acme;x/orders", ACME, 400, "path_parameter", id="path-parameter"),
    pytest.param("/tenants/acme%3Bx/orders", ACME, 400, "path_parameter", id="encoded-semicolon"),
    pytest.param("/tenants/acme%00/orders", ACME, 400, "control_character", id="encoded-nul"),
    pytest.param("/tenants/acme%20/orders", ACME, 403, "claim_mismatch", id="trailing-space"),
    pytest.param("/tenants/%7Bacme%7D/orders", ACME, 403, "claim_mismatch", id="encoded-braces"),
    pytest.param("/tenants/{tenant}/orders", ACME, 400, "bad_character", id="raw-braces"),
    pytest.param("/tenants/acm%C3%A9/orders", {"tenant_id": "acmé"}, 200, None, id="utf-8"),
    pytest.param("/tenants/acme/orders", {"tenant_id": ["x", "acme"]}, 200, None,
                 id="list-member"),
    pytest.param("/tenants/acme/orders", {"tenant_id": ["x"]}, 403, "claim_mismatch",
                 id="list-not-member"),
    pytest.param("/tenants/7/orders", {"tenant_id": 7}, 403, "claim_mismatch", id="number"),
    pytest.param("/tenants/true/orders", {"tenant_id": True}, 403, "claim_mismatch",
                 id="boolean"),
    pytest.param("/tenants/acme/orders", {}, 403, "claim_mismatch", id="claim-missing"),
    pytest.param("/tenants/acme/orders", {"tenant_id": "acme", "scope": "x"}, 403,
                 "insufficient_scope", id="scopes-first"),
    pytest.param("/tenants/me/orders", {}, 200, None, id="literal-route-unbound"),
    pytest.param("/rails/users/alice", {}, 200, None, id="suffix-upstream-plain"),
    pytest.param("/rails/users/alice.json", {}, 403, "claim_mismatch",
                 id="suffix-upstream-suffixed"),
    pytest.param("/rails/users/alice.json", {"sub": "alice.json"}, 403, "claim_mismatch",
                 id="suffix-claim-never-reaches-stem"),
    pytest.param("/rails/users/alice.json/", {"sub": "alice.json"}, 403, "claim_mismatch",
                 id="suffix-behind-a-trailing-slash"),
    pytest.param("/rails/tenants/a.v1.json", {"tenant_id": ["a.v1.json", "a"]}, 403,
                 "claim_mismatch", id="suffix-greedy-stem"),
    pytest.param("/rails/tenants/a.v1.json", {"tenant_id": ["a.v1.json", "a.v1", "a"]},
                 200, None, id="suffix-every-stem-allowed"),
    pytest.param("/rails/users/alice.json/keys", {"sub": "alice.json"}, 200, None,
                 id="suffix-only-in-the-last-segment"),
    pytest.param("/aspnet/tenants/acme", ACME, 200, None, id="case-insensitive-upstream"),
    pytest.param("/ASPNET/Tenants/acme", ACME, 200, None, id="case-insensitive-literals"),
    pytest.param("/aspnet/tenants/ACME", ACME, 403, "claim_mismatch",
                 id="case-insensitive-value-exact"),
    pytest.param("/orgs/o1/users/alice", {"org_id": "o1"}, 200, None, id="two-bindings"),
    pytest.param("/orgs/o1/users/bob", {"org_id": "o1"}, 403, "claim_mismatch",
                 id="two-bindings-one-wrong"),
]  # fmt: skip


@pytest.mark.parametrize(("target", "claims", "status", "reason"), CASES)
async def test_only_the_tenant_the_claim_names_gets_through(
    decider: Decider,
    tokens: TokenFactory,
    target: str,
    claims: dict[str, Any],
    status: int,
    reason: str | None,
) -> None:
    """Every spelling of another tenant (case, escapes, dot segments, encoded slashes) is
    refused; the claim is compared with the value the upstream reads."""
    decision = await _decide(decider, target, tokens.good(**claims))
    assert (decision.status, decision.reason) == (status, reason)


async def test_a_mismatch_is_a_403_after_the_scopes_with_its_own_reason(
    decider: Decider, tokens: TokenFactory
) -> None:
    """claim_mismatch: 403 `forbidden`, no challenge, the bind step failed after the scopes, and
    the valid token's claims kept (for the log)."""
    decision = await _decide(decider, "/tenants/other/orders", tokens.good(**ACME))
    assert (decision.refusal.status, decision.refusal.error) == (403, "forbidden")
    assert "WWW-Authenticate" not in decision.refusal.headers
    assert "other" not in decision.refusal.description
    assert [(s.name, s.outcome) for s in decision.steps][-2:] == [
        (StepName.SCOPES, StepOutcome.PASSED),
        (StepName.BIND, StepOutcome.FAILED),
    ]
    assert decision.claims is not None
    assert decision.claims.subject == "alice"


async def test_report_mode_forwards_a_mismatch_as_would_deny(
    decider: Decider, tokens: TokenFactory
) -> None:
    """On a report-mode route the mismatch is logged, not enforced."""
    decision = await _decide(decider, "/users/bob/keys", tokens.good())
    assert isinstance(decision, Forward)
    assert (decision.result, decision.reason) == (AuthResult.WOULD_DENY, "claim_mismatch")
    own = await _decide(decider, "/users/alice/keys", tokens.good())
    assert (own.result, own.reason) == (AuthResult.ALLOWED, None)


async def test_the_cached_token_is_bound_again_on_every_request(
    decider: Decider, tokens: TokenFactory
) -> None:
    """The verified-token cache keeps no claims but its own: a cached token is still refused for
    another tenant, and the forwarded claims carry no payload either way."""
    token = tokens.good(**ACME)
    for _ in range(2):
        allowed = await _decide(decider, "/tenants/acme/orders", token)
        refused = await _decide(decider, "/tenants/other/orders", token)
        assert (allowed.status, refused.status) == (200, 403)
        assert allowed.claims.payload == {}


async def test_unbound_routes_still_read_no_payload(decider: Decider, tokens: TokenFactory) -> None:
    """Only routes with `bind` read claims beyond the identity and scopes."""
    decision = await _decide(decider, "/tenants/me", tokens.good())
    assert isinstance(decision, Forward)
    assert decision.claims is not None
    assert decision.claims.payload == {}
    assert StepName.BIND not in [step.name for step in decision.steps]
