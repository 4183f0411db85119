"""Pure tests of `gateway.core.routes`: the most specific path wins, then the method."""

from __future__ import annotations

from pathlib import Path

import pytest
import yarl

from gateway.core.models import AuthMode, Route, RoutesConfig, Upstream
from gateway.core.routes import Match, RouteMatch, RouteTable

ORDERS_READ = Route(path="/orders", upstream="orders", methods=frozenset({"GET", "HEAD"}))
ORDERS_WRITE = Route(
    path="/orders", upstream="orders", methods=frozenset({"POST", "PUT", "PATCH", "DELETE"})
)
ORDERS_HEALTH = Route(path="/orders/health", upstream="health")
ORDERS_ITEMS = Route(path="/orders/items", upstream="items", methods=frozenset({"GET"}))
ADMIN = Route(path="/admin", upstream="admin")
CATCH_ALL = Route(path="/", upstream="fallback", methods=frozenset({"GET"}))
STATUS_EXACT = Route(path="/status", upstream="status", exact=True)
API_SLASH = Route(path="/api/", upstream="api")

SAMPLE = (ORDERS_READ, ORDERS_WRITE, ORDERS_HEALTH)


SEGMENT_PREFIX = [
    pytest.param("/orders", True, id="same"),
    pytest.param("/orders/", True, id="trailing-slash"),
    pytest.param("/orders/7", True, id="child"),
    pytest.param("/orders/7/lines/1", True, id="grandchild"),
    pytest.param("/ordersX", False, id="longer-name"),
    pytest.param("/orders.json", False, id="extension"),
    pytest.param("/orders-admin", False, id="dash-suffix"),
    pytest.param("/order", False, id="shorter"),
    pytest.param("/Orders", False, id="case"),
    pytest.param("/", False, id="root"),
    pytest.param("/x/orders", False, id="not-at-start"),
]


@pytest.mark.parametrize(("path", "matches"), SEGMENT_PREFIX)
def test_segment_prefix_matching(path: str, matches: bool) -> None:
    """A route path matches itself and paths below it, whole segments only."""
    table = RouteTable([ORDERS_READ])
    expected = RouteMatch(Match.FULL, ORDERS_READ) if matches else RouteMatch(Match.NONE)
    assert table.match("GET", path) == expected


LONGEST = [
    pytest.param("/orders/health", ORDERS_HEALTH, id="exact-longer"),
    pytest.param("/orders/health/deep", ORDERS_HEALTH, id="below-longer"),
    pytest.param("/orders/healthz", ORDERS_READ, id="not-a-segment-of-longer"),
    pytest.param("/orders/items/3", ORDERS_ITEMS, id="other-longer"),
    pytest.param("/orders/7", ORDERS_READ, id="shorter"),
    pytest.param("/orders", ORDERS_READ, id="shorter-itself"),
    pytest.param("/admin/x", ADMIN, id="sibling"),
    pytest.param("/elsewhere", CATCH_ALL, id="catch-all"),
    pytest.param("/", CATCH_ALL, id="root-catch-all"),
]
ORDERINGS = [
    pytest.param((CATCH_ALL, ORDERS_READ, ADMIN, ORDERS_HEALTH, ORDERS_ITEMS), id="short-first"),
    pytest.param((ORDERS_ITEMS, ORDERS_HEALTH, ADMIN, ORDERS_READ, CATCH_ALL), id="long-first"),
    pytest.param((ORDERS_READ, ORDERS_HEALTH, CATCH_ALL, ORDERS_ITEMS, ADMIN), id="mixed"),
]


@pytest.mark.parametrize("routes", ORDERINGS)
@pytest.mark.parametrize(("path", "expected"), LONGEST)
def test_longest_path_wins(routes: tuple[Route, ...], path: str, expected: Route) -> None:
    """The longest matching route path wins, whatever the order of the file."""
    assert RouteTable(routes).match("GET", path) == RouteMatch(Match.FULL, expected)


METHODS = [
    pytest.param("GET", "/orders", ORDERS_READ, id="get"),
    pytest.param("HEAD", "/orders/7", ORDERS_READ, id="head"),
    pytest.param("POST", "/orders", ORDERS_WRITE, id="post"),
    pytest.param("PUT", "/orders/7", ORDERS_WRITE, id="put"),
    pytest.param("PATCH", "/orders/7", ORDERS_WRITE, id="patch"),
    pytest.param("DELETE", "/orders/7", ORDERS_WRITE, id="delete"),
    pytest.param("POST", "/orders/health", ORDERS_HEALTH, id="no-methods-allows-post"),
    pytest.param("BREW", "/orders/health", ORDERS_HEALTH, id="no-methods-allows-any"),
]


@pytest.mark.parametrize("routes", [SAMPLE, SAMPLE[::-1]], ids=["file-order", "reversed"])
@pytest.mark.parametrize(("method", "path", "expected"), METHODS)
def test_method_selects_route(
    routes: tuple[Route, ...], method: str, path: str, expected: Route
) -> None:
    """Among routes of one path the method picks the route; a route without methods takes all."""
    assert RouteTable(routes).match(method, path) == RouteMatch(Match.FULL, expected)


PARTIAL = [
    pytest.param(
        (ORDERS_READ, ORDERS_WRITE),
        "OPTIONS",
        "/orders/7",
        ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"),
        id="union-sorted",
    ),
    pytest.param((ORDERS_READ,), "POST", "/orders", ("GET", "HEAD"), id="one-route"),
    pytest.param((ORDERS_READ,), "get", "/orders", ("GET", "HEAD"), id="method-case-sensitive"),
    pytest.param(
        (ORDERS_ITEMS, ORDERS_WRITE),
        "POST",
        "/orders/items/1",
        ("GET",),
        id="no-fallback-to-shorter-path",
    ),
    pytest.param(
        (CATCH_ALL, ORDERS_READ), "DELETE", "/orders/1", ("GET", "HEAD"), id="no-fallback-to-root"
    ),
]


@pytest.mark.parametrize(("routes", "method", "path", "allowed"), PARTIAL)
def test_method_not_allowed(
    routes: tuple[Route, ...], method: str, path: str, allowed: tuple[str, ...]
) -> None:
    """A matching path with no route for the method is PARTIAL, with the allowed methods sorted."""
    assert RouteTable(routes).match(method, path) == RouteMatch(Match.PARTIAL, None, allowed)


NONE = [
    pytest.param((), "/orders", id="empty-table"),
    pytest.param(SAMPLE, "/", id="root"),
    pytest.param(SAMPLE, "/admin", id="other-path"),
    pytest.param(SAMPLE, "/ordersX", id="name-prefix"),
    pytest.param((STATUS_EXACT,), "/status/x", id="below-exact"),
    pytest.param((STATUS_EXACT,), "/status/", id="exact-trailing-slash"),
    pytest.param((API_SLASH,), "/api", id="slash-route-without-slash"),
]


@pytest.mark.parametrize(("routes", "path"), NONE)
def test_no_route(routes: tuple[Route, ...], path: str) -> None:
    """A path no route covers is NONE, whatever the method."""
    assert RouteTable(routes).match("GET", path) == RouteMatch(Match.NONE)


EXACT = [
    pytest.param("/status", RouteMatch(Match.FULL, STATUS_EXACT), id="same"),
    pytest.param("/status/x", RouteMatch(Match.FULL, CATCH_ALL), id="below-falls-to-catch-all"),
    pytest.param("/statusx", RouteMatch(Match.FULL, CATCH_ALL), id="longer-name"),
]


@pytest.mark.parametrize(("path", "expected"), EXACT)
def test_exact_route(path: str, expected: RouteMatch) -> None:
    """An ``exact`` route matches its own path only; paths below it go to other routes."""
    assert RouteTable([STATUS_EXACT, CATCH_ALL]).match("GET", path) == expected


EXACT_AND_PREFIX = [
    pytest.param("/orders", Route(path="/orders", upstream="list", exact=True), id="exact-wins"),
    pytest.param("/orders/1", ORDERS_READ, id="prefix-below"),
]


@pytest.mark.parametrize(("path", "expected"), EXACT_AND_PREFIX)
def test_exact_route_beats_prefix_route_of_same_path(path: str, expected: Route) -> None:
    """For one path an exact route is more specific than a prefix route, in any file order."""
    exact = Route(path="/orders", upstream="list", exact=True)
    for routes in ([exact, ORDERS_READ], [ORDERS_READ, exact]):
        assert RouteTable(routes).match("GET", path) == RouteMatch(Match.FULL, expected)


SLASH_ROUTE = [
    pytest.param("/api/", True, id="itself"),
    pytest.param("/api/v1", True, id="below"),
    pytest.param("/api", False, id="without-slash"),
    pytest.param("/apiv1", False, id="name-prefix"),
]


@pytest.mark.parametrize(("path", "matches"), SLASH_ROUTE)
def test_route_path_with_trailing_slash(path: str, matches: bool) -> None:
    """A route path ending in ``/`` matches itself and everything below it."""
    expected = RouteMatch(Match.FULL, API_SLASH) if matches else RouteMatch(Match.NONE)
    assert RouteTable([API_SLASH]).match("GET", path) == expected


CATCH_ALL_PATHS = [
    pytest.param("/", id="root"),
    pytest.param("/anything", id="one-segment"),
    pytest.param("/a/b/c/", id="deep"),
]


@pytest.mark.parametrize("path", CATCH_ALL_PATHS)
def test_catch_all_route(path: str) -> None:
    """A ``/`` route matches every path no longer route claims."""
    table = RouteTable([CATCH_ALL])
    assert table.match("GET", path) == RouteMatch(Match.FULL, CATCH_ALL)
    assert table.match("POST", path) == RouteMatch(Match.PARTIAL, None, ("GET",))


CANDIDATES = [
    pytest.param(
        "/orders/health/x", [ORDERS_HEALTH, ORDERS_READ, ORDERS_WRITE, CATCH_ALL], id="health"
    ),
    pytest.param("/orders/7", [ORDERS_READ, ORDERS_WRITE, CATCH_ALL], id="orders"),
    pytest.param("/other", [CATCH_ALL], id="other"),
]


@pytest.mark.parametrize(("path", "expected"), CANDIDATES)
def test_candidates_most_specific_first(path: str, expected: list[Route]) -> None:
    """`candidates` lists every route matching the path, most specific first, file order kept."""
    table = RouteTable([CATCH_ALL, ORDERS_READ, ORDERS_HEALTH, ORDERS_WRITE])
    assert table.candidates(path) == expected


def test_from_config_uses_the_routes_of_the_file() -> None:
    """`RouteTable.from_config` builds the table from a routes file's routes."""
    config = RoutesConfig(
        upstreams={"orders": Upstream(name="orders", url=yarl.URL("http://127.0.0.1:9001"))},
        routes=SAMPLE,
        file=Path("routes.yaml"),
    )
    table = RouteTable.from_config(config)
    assert table.match("POST", "/orders/1") == RouteMatch(Match.FULL, ORDERS_WRITE)
    assert table.match("GET", "/orders/health") == RouteMatch(Match.FULL, ORDERS_HEALTH)


def _upstream(
    name: str, *, case_insensitive: bool = False, ignore_suffix: bool = False
) -> Upstream:
    return Upstream(
        name=name,
        url=yarl.URL("http://127.0.0.1:9"),
        case_insensitive=case_insensitive,
        ignore_suffix=ignore_suffix,
    )


LEGACY_ROUTES = (
    Route(path="/v1", upstream="legacy"),
    Route(path="/v1/admin", upstream="legacy"),
    Route(path="/v1/admin/Reports", upstream="legacy", exact=True),
)
FOLDED = [
    pytest.param({}, "/v1/ADMIN", "/v1", id="literal-case-falls-to-v1"),
    pytest.param({"case_insensitive": True}, "/V1/ADMIN", "/v1/admin", id="case-folded"),
    pytest.param({"case_insensitive": True}, "/v1/Admin/x", "/v1/admin", id="case-folded-child"),
    pytest.param({"case_insensitive": True}, "/v1/admin/reports", "/v1/admin/Reports",
                 id="case-folded-exact"),
    pytest.param({}, "/v1/admin.json", "/v1", id="literal-suffix-falls-to-v1"),
    pytest.param({"ignore_suffix": True}, "/v1/admin.json", "/v1/admin", id="suffix-stripped"),
    pytest.param({"ignore_suffix": True}, "/v1/admin.a.b", "/v1/admin", id="suffix-from-first-dot"),
    pytest.param({"ignore_suffix": True}, "/v1/.admin", "/v1", id="leading-dot-is-no-suffix"),
    pytest.param({"ignore_suffix": True, "case_insensitive": True}, "/V1/Admin.JSON", "/v1/admin",
                 id="both"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "path", "route"), FOLDED)
def test_upstream_matching_rules_apply_to_its_routes(
    options: dict[str, bool], path: str, route: str
) -> None:
    """An upstream that routes case-insensitively or without a format suffix has its routes
    matched the same way, so the most specific route it would run decides."""
    table = RouteTable(LEGACY_ROUTES, {"legacy": _upstream("legacy", **options)})
    match = table.match("GET", path)
    assert match.route is not None
    assert match.route.path == route


def test_matching_rules_are_per_upstream() -> None:
    """A case-insensitive upstream does not make another upstream's routes case-insensitive."""
    routes = (Route(path="/a", upstream="strict"), Route(path="/b", upstream="loose"))
    upstreams = {"strict": _upstream("strict"), "loose": _upstream("loose", case_insensitive=True)}
    table = RouteTable(routes, upstreams)
    assert table.match("GET", "/A").kind is Match.NONE
    assert table.match("GET", "/B").kind is Match.FULL


SLASH_TABLE = [
    Route(path="/", upstream="app", auth=AuthMode.NONE),
    Route(path="/admin", upstream="app", exact=True),
    Route(path="/tenants/{tenant}", upstream="app", exact=True),
    Route(path="/orders", upstream="app", exact=True, auth=AuthMode.NONE),
    Route(path="/orders", upstream="app"),
]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/admin/", None, id="exact-literal-slash-refused"),
        pytest.param("/tenants/acme/", None, id="exact-parameter-slash-refused"),
        pytest.param("/admin", "/admin", id="exact-itself"),
        pytest.param("/admin/x", "/", id="below-exact-is-the-catch-all"),
        pytest.param("/admin//", "/", id="two-slashes-are-another-path"),
        pytest.param("/orders/", "/orders", id="prefix-twin-of-the-exact-route-keeps-it"),
        pytest.param("/other/", "/", id="no-exact-route"),
        pytest.param("/", "/", id="root"),
    ],
)
def test_the_slash_form_of_an_exact_path_is_never_another_routes(
    path: str, expected: str | None
) -> None:
    """``/admin/`` is ``/admin`` to many frameworks: a public catch-all must not take it past
    the exact route's policy; it matches no route (404). The same path's prefix route keeps
    its own ``/orders/``."""
    match = RouteTable(SLASH_TABLE).match("GET", path)
    assert (match.route.path if match.route is not None else None) == expected


LENIENT_RULES = [("/admin", "/admin"), ("/tenants/<tenant>", "/tenants/{tenant}")]


@pytest.mark.parametrize("path", ["/admin/", "/tenants/acme/", "/admin", "/tenants/acme"])
def test_no_lenient_router_runs_an_exact_handler_for_a_path_another_route_took(path: str) -> None:
    """werkzeug without strict slashes (Flask's ``strict_slashes=False``; Rails, Express, Spring
    before 6 and ASP.NET Core route alike) runs an exact route's handler for each of these
    paths: the gateway chose that exact route, or refused; never the public catch-all."""
    from werkzeug.routing import Map, Rule

    rules = [Rule(rule, endpoint=endpoint) for rule, endpoint in LENIENT_RULES]
    handler, _ = Map(rules, strict_slashes=False).bind("gw").match(path)
    match = RouteTable(SLASH_TABLE).match("GET", path)
    assert match.route is None or match.route.path == handler
