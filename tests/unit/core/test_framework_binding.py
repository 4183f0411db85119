"""Differential: a bound path parameter is never read by a real framework as a tenant the
token's claim does not allow.

For a request the gateway lets through ``/tenants/{tenant}/orders`` (``bind: {tenant:
tenant_id}``), three real routers, werkzeug's (Flask), Starlette's and aiohttp's, are asked which
``tenant`` their handler would read from the path the gateway forwards, decoded the way their
servers decode it. Whenever one reads a value, the claim must allow it. Hypothesis spells the
tenants every way a client might: escapes of any character in either hex case, UTF-8 and
non-UTF-8 bytes, escaped escapes, dot segments, doubled slashes, case changes, trailing slashes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
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

from gateway.core.models import Route
from gateway.core.params import Binding, bindings_hold
from gateway.core.routes import RouteTable
from gateway.core.target import TargetError, canonicalize
from tests.support import resolve_now

BOUND = Route(path="/tenants/{tenant}/orders", upstream="app", bind=(Binding("tenant", "t"),))
ME = Route(path="/tenants/me", upstream="app")
TABLE = RouteTable([BOUND, ME])

# Claims a token may carry, and the tenants clients aim at (their own, neighbours, look-alikes).
# A claim spelt like an escape ('a%20b') must never reach the tenant its decoding names.
CLAIMS: tuple[Any, ...] = (
    "acme",
    ["acme", "beta"],
    "acmé",
    "a b",
    "a%41",
    "a%20b",
    "acm%C3%A9",
    "a+b",
    "a.b",
    "ACME",
    7,
    ["7"],
)
TENANTS = ("acme", "beta", "Acme", "acmé", "acme\u0301", "a b", "a%41", "aA", "a+b", "a.b", "me")


# -- the frameworks, each fed the forwarded path the way its server decodes it ------------------


def _werkzeug() -> Callable[[str], str | None]:
    adapter_map = Map(
        [
            Rule("/tenants/me", endpoint="me"),
            Rule("/tenants/me/<path:rest>", endpoint="me"),
            Rule("/tenants/<tenant>/orders", endpoint="orders"),
            Rule("/tenants/<tenant>/orders/<path:rest>", endpoint="orders"),
        ],
        strict_slashes=False,
    )

    def tenant(forwarded: str) -> str | None:
        # The WSGI server puts the percent-decoded path in PATH_INFO as Latin-1; werkzeug's
        # routing decodes it as UTF-8 (with replacement characters), as Flask's view reads it.
        environ = {
            "PATH_INFO": unquote_to_bytes(forwarded).decode("latin-1"),
            "SCRIPT_NAME": "", "REQUEST_METHOD": "GET", "SERVER_NAME": "app.test",
            "SERVER_PORT": "80", "HTTP_HOST": "app.test", "wsgi.url_scheme": "http",
        }  # fmt: skip
        try:
            endpoint, values = adapter_map.bind_to_environ(environ).match()
        except WerkzeugHTTPException:
            return None
        return str(values["tenant"]) if endpoint == "orders" else None

    return tenant


def _starlette() -> Callable[[str], str | None]:
    async def endpoint(request: object) -> None:
        raise AssertionError("never called")  # pragma: no cover

    routes = [
        StarletteRoute("/tenants/{tenant}/orders", endpoint),
        StarletteRoute("/tenants/{tenant}/orders/{rest:path}", endpoint),
    ]

    def tenant(forwarded: str) -> str | None:
        # uvicorn puts the percent-decoded (UTF-8) path in scope["path"].
        scope = {"type": "http", "method": "GET", "path": unquote(forwarded), "root_path": ""}
        if unquote(forwarded).startswith("/tenants/me/") or unquote(forwarded) == "/tenants/me":
            return None  # the literal route, registered first in a real app
        for route in routes:
            match, child = route.matches(scope)
            if match is StarletteMatch.FULL:
                return str(child["path_params"]["tenant"])
        return None

    return tenant


def _aiohttp() -> Callable[[str], str | None]:
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        raise AssertionError("never called")  # pragma: no cover

    app.router.add_get("/tenants/me", handler)
    app.router.add_get("/tenants/me/{rest:.*}", handler)
    app.router.add_get("/tenants/{tenant}/orders", handler)
    app.router.add_get("/tenants/{tenant}/orders/{rest:.*}", handler)

    def tenant(forwarded: str) -> str | None:
        request = make_mocked_request("GET", forwarded, app=app)
        info = resolve_now(app, request)
        value = info.get("tenant")
        return None if value is None else str(value)

    return tenant


FRAMEWORKS: dict[str, Callable[[str], str | None]] = {
    "werkzeug": _werkzeug(),
    "starlette": _starlette(),
    "aiohttp": _aiohttp(),
}


# -- the property --------------------------------------------------------------------------


def _allows(claim: Any, value: str) -> bool:
    """What the claim means, written independently of gateway.core.params."""
    members = claim if isinstance(claim, list) else [claim]
    return any(isinstance(member, str) and member == value for member in members)


def forwarded_if_allowed(raw_path: str, claim: Any) -> str | None:
    """The path the gateway forwards to the bound route, or None when it refuses or another
    route takes the request."""
    try:
        path = canonicalize(raw_path).path
    except TargetError:
        return None
    match = TABLE.match("GET", path)
    if match.route is not BOUND:
        return None
    return path if bindings_hold(BOUND.bind, match.captures, {"t": claim}) else None


def assert_no_other_tenant(raw_path: str, claim: Any) -> None:
    forwarded = forwarded_if_allowed(raw_path, claim)
    if forwarded is None:
        return
    for name, read_tenant in FRAMEWORKS.items():
        tenant = read_tenant(forwarded)
        assert tenant is None or _allows(claim, tenant), (
            f"{raw_path!r} with claim {claim!r} is forwarded as {forwarded!r}, where {name} "
            f"reads tenant {tenant!r}"
        )


# -- spellings ---------------------------------------------------------------------------------


def _escape(char: str, upper: bool) -> str:
    form = "%{:02X}" if upper else "%{:02x}"
    return "".join(form.format(byte) for byte in char.encode("utf-8"))


@st.composite
def spelt_targets(draw: st.DrawFn) -> tuple[str, Any]:
    """A target spelling a tenant, and a claim: often the tenant itself or its escaped spelling
    (a tenant literally named 'a%20b'), else any of CLAIMS."""
    tenant = draw(st.sampled_from(TENANTS))
    escaped = "".join(_escape(char, True) if char in " %" or not char.isascii() else char
                      for char in tenant)  # fmt: skip
    claim = draw(st.sampled_from([tenant, escaped, [escaped, "beta"], *CLAIMS]))
    out = []
    for char in tenant:
        how = draw(st.sampled_from(["keep"] * 3 + ["upper", "lower", "swapcase", "double"]))
        if how in {"upper", "lower"}:
            out.append(_escape(char, how == "upper"))
        elif how == "swapcase":
            out.append(char.swapcase())
        elif how == "double":  # an escaped escape: decoded once it is still an escape
            out.append("%25" + _escape(char, True)[1:])
        else:
            out.append(_escape(char, True) if char in " %" or not char.isascii() else char)
    lead = draw(st.sampled_from(["/tenants/", "/tenants//", "/x/../tenants/", "/tenants/./"]))
    tail = draw(
        st.sampled_from(["/orders", "/orders/", "/orders/7", "/orders/../../acme/orders",
                         "/../acme/orders", "%2F../acme/orders", "/%2e%2e/acme/orders",
                         "/orders.json", "/orders%FF", "%FF/orders", "%C3/orders"])
    )  # fmt: skip
    return lead + "".join(out) + tail, claim


@pytest.mark.parametrize(
    ("raw_path", "claim"),
    [
        ("/tenants/acme/orders", "acme"),
        ("/tenants/%61cme/orders/7", "acme"),
        ("/tenants/acm%C3%A9/orders", "acmé"),
        ("/tenants/acme%CC%81/orders", "acmé"),  # the decomposed spelling is another tenant
        ("/tenants/a%20b/orders", "a b"),
        ("/tenants/a%2541/orders", "a%41"),  # decoded once: never 'aA'
        ("/tenants/a%2541/orders", "aA"),
        ("/tenants/a+b/orders", "a+b"),
        ("/tenants/a%2Bb/orders", "a b"),  # '+' is no space in a path
        ("/tenants/acm%E9/orders", "acm\ufffd"),  # werkzeug's replacement character
        ("/tenants/%FF/orders", "%FF"),  # aiohttp leaves undecodable bytes escaped
        ("/tenants/ACME/orders", "acme"),
        ("/tenants/7/orders", 7),
        ("/tenants/me/orders", "me"),
        ("/tenants/acme/orders/../../beta/orders", ["acme", "beta"]),
    ],
)
def test_known_spellings(raw_path: str, claim: Any) -> None:
    """The examples behind the rule, each against every framework."""
    assert_no_other_tenant(raw_path, claim)


def test_each_framework_reads_the_tenant_the_gateway_compared() -> None:
    """The premise: all three read the decoded segment, and none takes the literal route."""
    for name, read_tenant in FRAMEWORKS.items():
        assert read_tenant("/tenants/acm%C3%A9/orders/7") == "acmé", name
        assert read_tenant("/tenants/a%2541/orders") == "a%41", name
        assert read_tenant("/tenants/me/orders") is None, name


_SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@_SETTINGS
@given(spelt_targets())
def test_spelt_tenants_never_reach_another_tenant(target_and_claim: tuple[str, Any]) -> None:
    """Every spelling the gateway lets through is read by every framework as a tenant the claim
    allows."""
    assert_no_other_tenant(*target_and_claim)
