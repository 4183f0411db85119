"""``cors:`` in routes.yaml (per route, in ``defaults:``): typed policies, a route's own
replacing the default whole or turning it off, and every problem at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load
from tests.support import ENVIRON, TestKeys
from tests.unit.config.test_load import ROUTES, assert_issues, problems, swap, write

WITH_DEFAULT = swap(
    ROUTES,
    "routes:\n",
    "defaults:\n"
    "  cors: {origins: [https://app.example.com], headers: [Content-Type], max_age: 10m}\n"
    "routes:\n",
)


def test_routes_inherit_the_default_policy_and_may_replace_or_drop_it(
    tmp_path: Path, keys: TestKeys
) -> None:
    """A route without ``cors`` takes the default; its own replaces it whole (nothing of the
    default is merged in); ``cors: off`` means none."""
    routes = swap(
        WITH_DEFAULT,
        "    auth: none\n",
        "    auth: none\n    cors: off\n",
    )
    routes = swap(
        routes,
        "    scopes: [orders:write]\n",
        "    scopes: [orders:write]\n"
        "    cors:\n"
        "      origins: ['https://*.example.org']\n"
        "      methods: [POST]\n"
        "      expose_headers: [X-Request-ID]\n"
        "      credentials: true\n",
    )
    config = load(write(tmp_path, keys, routes=routes), ENVIRON)
    read, write_route, health, billing = config.routes.routes
    assert read.cors is not None
    assert read.cors is billing.cors is config.routes.default_cors
    assert read.cors.origins == ("https://app.example.com",)
    assert read.cors.headers == frozenset({"content-type"})
    assert read.cors.max_age == 600
    assert config.routes.default_cors_line == 8
    assert write_route.cors is not None
    assert write_route.cors.origins == ("https://*.example.org",)
    assert write_route.cors.methods == frozenset({"POST"})
    assert write_route.cors.headers == frozenset()  # not merged from the default
    assert write_route.cors.max_age is None
    assert write_route.cors.credentials is True
    assert write_route.cors.expose_headers == ("X-Request-ID",)
    assert health.cors is None


def test_without_cors_no_route_has_a_policy(tmp_path: Path, keys: TestKeys) -> None:
    """CORS is opt-in: nothing configured, nothing answered."""
    config = load(write(tmp_path, keys), ENVIRON)
    assert config.routes.default_cors is None
    assert all(route.cors is None for route in config.routes.routes)


CASES = [
    pytest.param("origins: ['*'], credentials: true", "cannot go with 'credentials: true'",
                 id="star-with-credentials"),
    pytest.param("origins: [https://app.example.com/]", "is not an origin", id="trailing-slash"),
    pytest.param("origins: ['https://*.com']", "at least two labels", id="pattern-too-broad"),
    pytest.param("origins: []", "at least one origin", id="no-origins"),
    pytest.param("origins: https://app.example.com", "cors 'origins': must be a list",
                 id="not-a-list"),
    pytest.param("origins: [https://a.test], methods: [get]", "cors 'methods': 'get' is not",
                 id="lower-case-method"),
    pytest.param("origins: [https://a.test], methods: [TRACE]", "TRACE is never proxied",
                 id="trace"),
    pytest.param("origins: [https://a.test], headers: [X_Trace]", "cors 'headers': 'X_Trace'",
                 id="bad-header"),
    pytest.param("origins: [https://a.test], max_age: 2d", "cors 'max_age': bad duration",
                 id="bad-duration"),
    pytest.param("origins: [https://a.test], max_age: 25h", "24h", id="max-age-too-long"),
    pytest.param("origins: [https://a.test], credentials: yes please",
                 "cors 'credentials': must be true or false", id="bad-boolean"),
    pytest.param("origin: [https://a.test]", "unknown key 'origin' in 'cors' (did you mean "
                 "'origins'?)", id="did-you-mean"),
    pytest.param("methods: [GET]", "'cors' needs 'origins'", id="missing-origins"),
]  # fmt: skip


@pytest.mark.parametrize(("policy", "fragment"), CASES)
def test_a_bad_default_policy_is_reported_at_its_line(
    tmp_path: Path, keys: TestKeys, policy: str, fragment: str
) -> None:
    """Each bad ``cors`` is one problem at the line of its key, saying what to write."""
    routes = swap(ROUTES, "routes:\n", f"defaults:\n  cors: {{{policy}}}\nroutes:\n")
    path = write(tmp_path, keys, routes=routes)
    assert_issues(problems(path), [("routes.yaml", 8, fragment)], tmp_path)


def test_a_bad_route_policy_is_reported_at_the_route_line(tmp_path: Path, keys: TestKeys) -> None:
    """On a route, the problem is at the route's ``cors`` line."""
    routes = swap(ROUTES, "    auth: none\n", "    auth: none\n    cors: [https://a.test]\n")
    path = write(tmp_path, keys, routes=routes)
    assert_issues(problems(path), [("routes.yaml", 19, "write {origins:")], tmp_path)
