"""Differential: the route the gateway authorises is never weaker than the handler a real
framework runs for the path the gateway forwards.

Hypothesis mutates the protected paths of a route table (escapes of every byte in either hex
case, dot segments, doubled slashes, case changes, trailing slashes and dots, format suffixes)
and asks three real routers, werkzeug's (Flask), Starlette's and aiohttp's, which handler each
would run for the path the gateway forwards, read the way their servers decode it. Whenever a
framework reaches a handler that needs scopes, the gateway must have refused the request or
demanded at least those scopes.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from urllib.parse import unquote, unquote_to_bytes

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Match as StarletteMatch
from starlette.routing import Route as StarletteRoute
from werkzeug.exceptions import HTTPException as WerkzeugHTTPException
from werkzeug.routing import Map, Rule

from gateway.core.models import AuthMode, Route, ScopeRule
from gateway.core.routes import RouteTable
from gateway.core.target import TargetError, canonicalize
from tests.support import resolve_now

# (path, scopes; None = public). Literal reserved characters a framework decodes (':', '@',
# '+', '!', '(', ')') sit next to their prefixes with weaker rules.
TABLE: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("/", None),
    ("/v1", ("api:read",)),
    ("/v1/admin", ("admin",)),
    ("/v1/admin:reindex", ("admin", "reindex")),
    ("/v1/users/@me", ("profile",)),
    ("/v1/files/a+b", ("files",)),
    ("/v1/ops!(drain)", ("ops",)),
    ("/public", None),
    ("/public/admin", ("admin",)),
)
ROUTES = tuple(
    Route(
        path=path,
        upstream="app",
        auth=AuthMode.NONE if scopes is None else AuthMode.REQUIRED,
        scopes=ScopeRule(scopes=scopes or ()),
    )
    for path, scopes in TABLE
)
GATEWAY = RouteTable(ROUTES)
NEEDS = {path: frozenset(scopes or ()) for path, scopes in TABLE}
_LONGEST_FIRST = sorted((path for path, _ in TABLE), key=len, reverse=True)


def _subpath(path: str, placeholder: str) -> str:
    return f"{path.rstrip('/')}/{placeholder}"


# -- the frameworks, each fed the forwarded path the way its server decodes it ------------------


def _werkzeug() -> Callable[[str], str | None]:
    rules = []
    for path in _LONGEST_FIRST:
        rules.append(Rule(path, endpoint=path))
        rules.append(Rule(_subpath(path, "<path:rest>"), endpoint=path))
    adapter = Map(rules, strict_slashes=False).bind("app.test")

    def route(forwarded: str) -> str | None:
        # A WSGI server puts the percent-decoded path, as Latin-1, in PATH_INFO.
        path_info = unquote_to_bytes(forwarded).decode("latin-1")
        try:
            endpoint, _ = adapter.match(path_info, method="GET")
        except WerkzeugHTTPException:
            return None
        return str(endpoint)

    return route


def _starlette() -> Callable[[str], str | None]:
    async def endpoint(request: object) -> None:
        raise AssertionError("never called")  # pragma: no cover

    routes = []
    for path in _LONGEST_FIRST:
        routes.append((path, StarletteRoute(path, endpoint)))
        routes.append((path, StarletteRoute(_subpath(path, "{rest:path}"), endpoint)))

    def route(forwarded: str) -> str | None:
        # uvicorn puts the percent-decoded (UTF-8) path in scope["path"].
        scope = {"type": "http", "method": "GET", "path": unquote(forwarded), "root_path": ""}
        for owner, candidate in routes:
            if candidate.matches(scope)[0] is StarletteMatch.FULL:
                return owner
        return None

    return route


def _aiohttp() -> Callable[[str], str | None]:
    app = web.Application()
    owners: dict[object, str] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        raise AssertionError("never called")  # pragma: no cover

    for path in _LONGEST_FIRST:
        for pattern in (path, _subpath(path, "{rest:.*}")):
            owners[app.router.add_get(pattern, handler)] = path

    def route(forwarded: str) -> str | None:
        request = make_mocked_request("GET", forwarded, app=app)
        resolved = resolve_now(app, request)
        return owners.get(resolved.route)

    return route


FRAMEWORKS: dict[str, Callable[[str], str | None]] = {
    "werkzeug": _werkzeug(),
    "starlette": _starlette(),
    "aiohttp": _aiohttp(),
}


# -- the gateway's side --------------------------------------------------------------------


def gateway_decision(raw_path: str) -> tuple[str, frozenset[str] | None]:
    """The forwarded path and the scopes the gateway demands (None: refused or no route)."""
    try:
        target = canonicalize(raw_path)
    except TargetError:
        return "", None
    match = GATEWAY.match("GET", target.path)
    if match.route is None:
        return target.path, None
    return target.path, NEEDS[match.route.path]


def assert_never_weaker(raw_path: str) -> None:
    forwarded, demanded = gateway_decision(raw_path)
    if demanded is None:
        return  # refused: nothing reaches a framework
    for name, route in FRAMEWORKS.items():
        handler = route(forwarded)
        if handler is None:
            continue
        needed = NEEDS[handler]
        assert needed <= demanded, (
            f"{raw_path!r} is forwarded as {forwarded!r}; {name} runs {handler!r} (needs "
            f"{sorted(needed)}) but the gateway demanded {sorted(demanded)}"
        )


# -- mutations of the protected paths --------------------------------------------------------

_HEX_UPPER = "%{:02X}"
_HEX_LOWER = "%{:02x}"


@st.composite
def mutated_paths(draw: st.DrawFn) -> str:
    """A protected path from the table, spelt the ways a client might spell it."""
    base = draw(st.sampled_from([path for path, scopes in TABLE if scopes]))
    out: list[str] = []
    for char in base:
        how = draw(st.sampled_from(["keep"] * 4 + ["upper", "lower", "swapcase", "slash"]))
        if char == "/" and how == "slash":
            out.append(draw(st.sampled_from(["//", "/./", "/x/../", "/%2e/", "/%2E%2e/x/..%2f"])))
        elif how == "upper":
            out.append(_HEX_UPPER.format(ord(char)))
        elif how == "lower":
            out.append(_HEX_LOWER.format(ord(char)))
        elif how == "swapcase":
            out.append(char.swapcase())
        else:
            out.append(char)
    tail = draw(st.sampled_from(["", "", "/", ".", ".json", "/x", "%2F", "%00", ";x", "%3B"]))
    return "".join(out) + tail


_ANY_BYTE_ESCAPES = st.integers(0, 255).map(lambda byte: _HEX_UPPER.format(byte))
_PLAIN = st.text(string.ascii_letters + string.digits + "-._~!$&'()*+,=:@", max_size=4)


@st.composite
def random_paths(draw: st.DrawFn) -> str:
    """Segments of pchars and escapes of any byte, around the table's words."""
    words = st.sampled_from(["v1", "admin", "admin:reindex", "users", "@me", "public", ".", ".."])
    parts = draw(st.lists(st.one_of(words, _PLAIN, _ANY_BYTE_ESCAPES), min_size=1, max_size=5))
    return "/" + "/".join(parts)


_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@_SETTINGS
@given(mutated_paths())
def test_mutated_protected_paths_never_reach_a_handler_with_weaker_rules(raw_path: str) -> None:
    """Every spelling of a protected path that a framework runs as that path's handler was
    authorised with that route's scopes (or refused)."""
    assert_never_weaker(raw_path)


@pytest.mark.slow
@_SETTINGS
@given(random_paths())
def test_random_paths_never_reach_a_handler_with_weaker_rules(raw_path: str) -> None:
    """Paths of any bytes: the same property."""
    assert_never_weaker(raw_path)


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1/admin%3Areindex",
        "/v1/admin%3areindex",
        "/v1/users/%40me",
        "/v1/files/a%2Bb",
        "/v1/ops%21%28drain%29",
        "/public/%61dmin",
        "/public/x/../admin",
        "/v1/%2e%2e/v1/admin",
    ],
)
def test_known_walk_arounds(raw_path: str) -> None:
    """The examples behind the rule, each checked against every framework."""
    assert_never_weaker(raw_path)
    _, demanded = gateway_decision(raw_path)
    assert demanded is None or demanded != NEEDS["/v1"] or raw_path.startswith("/v1/%2e")


def test_each_framework_decodes_reserved_escapes() -> None:
    """The premise: all three run the admin:reindex handler for its escaped spelling."""
    for name, route in FRAMEWORKS.items():
        assert route("/v1/admin%3Areindex") == "/v1/admin:reindex", name
