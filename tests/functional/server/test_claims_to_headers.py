"""claims_to_headers in a running gateway: mapped claims reach the upstream as X-Auth-* headers,
only from a verified token, and a client can never supply one itself."""

from __future__ import annotations

import pytest

from tests.conftest import GatewayFactory
from tests.support import (
    DEV_ISSUER_ENTRY,
    ORDERS_HEALTH,
    RecordingUpstream,
    TokenFactory,
    gateway_config,
    local_issuer,
    route_table,
)

TENANT_ROUTES = route_table(
    """\
  - path: /orders
    upstream: orders
    scopes: [orders:read]
    claims_to_headers: {{X-Auth-Tenant: tenant_id, X-Auth-Groups: groups, X-Auth-Org: org}}
  - path: /plain
    upstream: orders
    claims_to_headers: {{}}
""",
    ORDERS_HEALTH,
)
"""/orders maps three claims; /plain maps none of its own (only the issuer's apply)."""

ISSUER_MAPS_EMAIL = gateway_config(
    local_issuer(extra="    claims_to_headers: {{X-Auth-Email: email, X-Auth-Org: department}}\n"),
    DEV_ISSUER_ENTRY,
)
"""The local issuer forwards email and department on every route its tokens pass."""


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def test_mapped_claims_reach_the_upstream(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """Strings as they are, lists joined with ','; a missing claim gives no header."""
    client = await gateway(routes=TENANT_ROUTES)
    token = tokens.good(tenant_id="acme", groups=["admins", "ops"])
    assert (await client.get("/orders/7", headers=bearer(token))).status == 200
    seen = recorder.last.headers
    assert seen["X-Auth-Tenant"] == "acme"
    assert seen["X-Auth-Groups"] == "admins,ops"
    assert "X-Auth-Org" not in seen
    assert seen["X-Auth-Subject"] == "alice"


SPOOFS = [
    {"X-Auth-Tenant": "evil"},
    {"x-auth-tenant": "evil"},
    {"X-AUTH-TENANT": "evil"},
    {"X_Auth_Tenant": "evil"},
    {"X.Auth.Tenant": "evil"},
    {"X-Auth-Tenant": "evil", "Connection": "X-Auth-Tenant"},
    {"X-Auth-Email": "ceo@example.com"},
]


@pytest.mark.parametrize("spoof", SPOOFS, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()))
@pytest.mark.parametrize("has_claim", [True, False])
async def test_a_client_cannot_supply_a_mapped_header(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    spoof: dict[str, str],
    has_claim: bool,
) -> None:
    """Whatever spelling the client sends, the upstream sees the token's value, or nothing when
    the token lacks the claim."""
    client = await gateway(routes=TENANT_ROUTES, gateway=ISSUER_MAPS_EMAIL)
    claims = {"tenant_id": "acme", "email": "alice@example.com"} if has_claim else {}
    token = tokens.good(**claims)
    assert (await client.get("/orders/7", headers={**bearer(token), **spoof})).status == 200
    seen = recorder.last.headers
    for name in ("X-Auth-Tenant", "X-Auth-Email"):
        assert seen.getall(name, []) == ([claims[name_claim(name)]] if has_claim else [])
    assert not any("evil" in value or "ceo@" in value for value in seen.values())


def name_claim(header: str) -> str:
    """The claim the test config maps to ``header``."""
    return {"X-Auth-Tenant": "tenant_id", "X-Auth-Email": "email"}[header]


async def test_public_routes_get_no_mapped_headers(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """A public route checks no token, so no claim is forwarded, and spoofs are still removed."""
    client = await gateway(routes=TENANT_ROUTES, gateway=ISSUER_MAPS_EMAIL)
    headers = {**bearer(tokens.good(email="alice@example.com")), "X-Auth-Email": "ceo@x"}
    assert (await client.get("/orders/health", headers=headers)).status == 200
    assert "X-Auth-Email" not in recorder.last.headers


async def test_the_issuer_mapping_applies_and_the_route_wins_per_header(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """The issuer's mapping applies on every route; on /orders the route's X-Auth-Org (org)
    replaces the issuer's (department)."""
    client = await gateway(routes=TENANT_ROUTES, gateway=ISSUER_MAPS_EMAIL)
    token = tokens.good(email="alice@example.com", department="sales", org="o-1", scope="")
    assert (await client.get("/plain", headers=bearer(token))).status == 200
    assert recorder.last.headers["X-Auth-Email"] == "alice@example.com"
    assert recorder.last.headers["X-Auth-Org"] == "sales"
    token = tokens.good(email="alice@example.com", department="sales", org="o-1")
    assert (await client.get("/orders/1", headers=bearer(token))).status == 200
    assert recorder.last.headers.getall("X-Auth-Org") == ["o-1"]


@pytest.mark.parametrize(
    "value",
    ["Ünïcode", " acme", "acme\t", {"id": 1}, ["a,b"], ["a", 2], "x" * 5000],
    ids=["non-ascii", "edge-space", "tab", "object", "comma-item", "mixed-list", "too-long"],
)
async def test_a_mapped_claim_without_a_faithful_form_refuses_the_token(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream, value: object
) -> None:
    """As with sub and client_id: refused (401 invalid_claim), also when the token comes again
    from the verified-token cache, and the upstream never sees the request; a route that does
    not map the claim still takes the token."""
    client = await gateway(routes=TENANT_ROUTES)
    token = tokens.good(tenant_id=value)
    for _ in range(2):
        response = await client.get("/orders/7", headers=bearer(token))
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert recorder.requests == []
    assert (await client.get("/plain", headers=bearer(token))).status == 200
    assert "X-Auth-Tenant" not in recorder.last.headers


async def test_unmapped_claims_are_never_forwarded(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """Without a mapping only the four fixed identity headers are added."""
    client = await gateway()
    assert (await client.get("/orders/1", headers=bearer(tokens.good(tenant_id="a")))).status == 200
    names = sorted(name for name in recorder.last.headers if name.lower().startswith("x-auth-"))
    assert names == ["X-Auth-Issuer", "X-Auth-Scopes", "X-Auth-Subject"]
