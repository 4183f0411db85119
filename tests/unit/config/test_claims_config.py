"""``claims_to_headers`` in routes.yaml (routes and defaults) and in gateway.yaml's issuers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load
from tests.support import ENVIRON, TestKeys
from tests.unit.config.test_load import GATEWAY, ROUTES, assert_issues, problems, swap, write

ORDERS_READ = "    scopes: [orders:read]\n"


def test_routes_defaults_and_issuers_load(tmp_path: Path, keys: TestKeys) -> None:
    """A route's own mapping replaces `defaults:`'s; other protected routes inherit it; public
    routes take none; an issuer's mapping is kept with the issuer."""
    routes = "defaults:\n  claims_to_headers: {X-Auth-Tenant: tid}\n" + swap(
        ROUTES, ORDERS_READ, ORDERS_READ + "    claims_to_headers: {x-auth-email: email}\n"
    )
    gateway = swap(
        GATEWAY,
        "    keys: [keys/public.pem, keys/jwks.json]\n",
        "    keys: [keys/public.pem, keys/jwks.json]\n"
        "    claims_to_headers: {X-Auth-Org: org_id}\n",
    )
    config = load(write(tmp_path, keys, gateway=gateway, routes=routes), ENVIRON)
    by_line = {
        (route.path, route.methods and min(route.methods)): route for route in config.routes.routes
    }
    assert by_line[("/orders", "GET")].claims_to_headers == (("x-auth-email", "email"),)
    assert by_line[("/orders", "DELETE")].claims_to_headers == (("X-Auth-Tenant", "tid"),)
    assert by_line[("/orders/health", None)].claims_to_headers == ()
    assert config.issuers[0].claims_to_headers == (("X-Auth-Org", "org_id"),)
    assert config.routes.mapped_claims == {"email", "tid"}


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ("{X-Tenant: tid}", "outside the gateway's own 'X-Auth-' prefix"),
        ("{Authorization: tid}", "outside the gateway's own 'X-Auth-' prefix"),
        ("{X-Auth-Subject: email}", "fixed identity headers"),
        ("{x-auth-client-id: azp}", "fixed identity headers"),
        ("{X_Auth_Tenant: tid}", "is not a header name"),
        ("{X-Auth-Tenant: tid, x-auth-tenant: org}", "mapped twice"),
        ("{X-Auth-Tenant: 'tenant id'}", "is not a claim name"),
        ("{X-Auth-Tenant: [tid]}", "is not a claim name"),
        ("[X-Auth-Tenant]", "write {X-Auth-Tenant: tenant_id"),
    ],
)
def test_bad_route_mappings_are_named(
    tmp_path: Path, keys: TestKeys, mapping: str, fragment: str
) -> None:
    """Each mistake is one problem at the route's claims_to_headers line."""
    routes = swap(ROUTES, ORDERS_READ, ORDERS_READ + f"    claims_to_headers: {mapping}\n")
    path = write(tmp_path, keys, routes=routes)
    assert_issues(problems(path), [("routes.yaml", 12, fragment)], tmp_path)


def test_a_public_route_cannot_map_claims(tmp_path: Path, keys: TestKeys) -> None:
    """No token is checked on a public route: a mapping there is a mistake."""
    routes = swap(ROUTES, "    auth: none\n", "    auth: none\n    claims_to_headers: {}\n")
    path = write(tmp_path, keys, routes=routes)
    assert_issues(problems(path), [("routes.yaml", 19, "needs a protected route")], tmp_path)


def test_a_bad_issuer_mapping_is_named(tmp_path: Path, keys: TestKeys) -> None:
    """Issuers follow the same rules, reported at the issuer's line."""
    gateway = swap(
        GATEWAY, "    issuer: dev\n", "    issuer: dev\n    claims_to_headers: {X-User: sub}\n"
    )
    path = write(tmp_path, keys, gateway=gateway)
    assert_issues(problems(path), [("gateway.yaml", 16, "outside the gateway")], tmp_path)
