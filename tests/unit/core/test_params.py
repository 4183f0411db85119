"""Pure tests of `gateway.core.params` and of parameters in `RouteTable`: what a {name} segment
matches, which route wins, and what a binding compares."""

from __future__ import annotations

from typing import Any

import pytest
import yarl

from gateway.core.models import Route, Upstream, path_matches
from gateway.core.params import (
    Binding,
    Captures,
    PathPattern,
    PatternError,
    bindings_hold,
    claim_allows,
    segment_value,
)
from gateway.core.routes import Match, RouteTable

ORDERS = "/tenants/{tenant}/orders"

PATTERN_MATCHES = [
    pytest.param("/tenants/acme/orders", False, (("tenant", "acme"),), id="itself"),
    pytest.param("/tenants/acme/orders/7", False, (("tenant", "acme"),), id="below"),
    pytest.param("/tenants/acme/orders/", False, (("tenant", "acme"),), id="trailing-slash"),
    pytest.param("/tenants/a%20b/orders", False, (("tenant", "a%20b"),), id="escape-kept"),
    pytest.param("/tenants/acme/ordersX", False, None, id="longer-literal"),
    pytest.param("/tenants/acme", False, None, id="shorter"),
    pytest.param("/tenants//orders", False, None, id="empty-segment"),
    pytest.param("/tenants/./orders", False, None, id="dot-segment"),
    pytest.param("/tenants/../orders", False, None, id="dot-dot-segment"),
    pytest.param("/Tenants/acme/orders", False, None, id="literal-case"),
    pytest.param("/tenants/acme/orders", True, (("tenant", "acme"),), id="exact"),
    pytest.param("/tenants/acme/orders/", True, None, id="exact-trailing-slash"),
    pytest.param("/tenants/acme/orders/7", True, None, id="exact-below"),
]


@pytest.mark.parametrize(("path", "exact", "captured"), PATTERN_MATCHES)
def test_a_parameter_matches_one_non_empty_segment(
    path: str, exact: bool, captured: tuple[tuple[str, str], ...] | None
) -> None:
    """{name} takes exactly one non-empty segment, never '/', '.' or '..'; literals match whole
    segments as in literal routes, and exact routes take their own path only."""
    found = PathPattern.parse(ORDERS).match(path, exact=exact)
    assert (found.values if found is not None else None) == captured
    assert path_matches(ORDERS, path, exact=exact) == (captured is not None)


def test_fold_case_folds_literals_but_keeps_the_parameter_as_sent() -> None:
    """A case-insensitive upstream's literals match any case; the value is the bytes forwarded."""
    found = PathPattern.parse(ORDERS).match("/TENANTS/AcMe/Orders", exact=False, fold_case=True)
    assert found == Captures((("tenant", "AcMe"),), None)


def test_the_parameter_that_takes_the_last_segment_is_named() -> None:
    """Only a parameter in the request's last segment is `last`; a trailing slash after it
    does not change that (Rails and Spring drop it before they route)."""
    pattern = PathPattern.parse("/users/{user}")
    assert pattern.match("/users/bob", exact=False) == Captures((("user", "bob"),), "user")
    assert pattern.match("/users/bob/", exact=False) == Captures((("user", "bob"),), "user")
    assert pattern.match("/users/bob//", exact=False) == Captures((("user", "bob"),), None)
    assert pattern.match("/users/bob/keys", exact=False) == Captures((("user", "bob"),), None)


BAD_PATTERNS = [
    pytest.param("/tenants/{Tenant}", id="upper-case"),
    pytest.param("/tenants/{1tenant}", id="leading-digit"),
    pytest.param("/tenants/{}", id="empty-name"),
    pytest.param("/tenants/x{tenant}", id="partial-segment"),
    pytest.param("/tenants/{tenant}x", id="trailing-text"),
    pytest.param("/tenants/{tenant", id="unclosed"),
    pytest.param("/tenants/tenant}", id="stray-close"),
    pytest.param("/tenants/{ten-ant}", id="dash"),
    pytest.param("/{a}/{a}", id="twice"),
]


@pytest.mark.parametrize("path", BAD_PATTERNS)
def test_braces_anywhere_but_around_a_whole_segment_name_are_refused(path: str) -> None:
    """A parameter is a whole segment {name}, name [a-z_][a-z0-9_]*, each name once."""
    with pytest.raises(PatternError):
        PathPattern.parse(path)


def _route(path: str, upstream: str = "u", **options: Any) -> Route:
    return Route(path=path, upstream=upstream, **options)


TENANT = _route("/tenants/{tenant}", "tenant")
TENANT_ORDERS = _route("/tenants/{tenant}/orders", "tenant-orders")
ME = _route("/tenants/me", "me")
TENANTS = _route("/tenants", "tenants")
ITEM_LINES = _route("/tenants/{tenant}/{item}/lines", "lines")
SPECIAL_LINES = _route("/tenants/{tenant}/special", "special")
EXACT_TENANT = _route("/tenants/{tenant}", "exact", exact=True)

WINNERS = [
    pytest.param("/tenants/me", "me", id="literal-beats-parameter"),
    pytest.param("/tenants/me/orders", "me", id="longest-literal-prefix-owns-below"),
    pytest.param("/tenants/acme", "exact", id="exact-first"),
    pytest.param("/tenants/acme/x", "tenant", id="prefix-below"),
    pytest.param("/tenants/acme/orders/1", "tenant-orders", id="longer-pattern"),
    pytest.param("/tenants/acme/special/lines", "special", id="literal-at-depth-2"),
    pytest.param("/tenants/acme/other/lines", "lines", id="parameter-at-depth-2"),
    pytest.param("/tenants", "tenants", id="bare-literal"),
]


@pytest.mark.parametrize(("path", "winner"), WINNERS)
def test_the_longest_literal_prefix_wins_then_the_longer_pattern(path: str, winner: str) -> None:
    """Literal segments beat parameters at the same depth, whatever the order in the file."""
    routes = [TENANT, TENANT_ORDERS, ME, TENANTS, ITEM_LINES, SPECIAL_LINES, EXACT_TENANT]
    for ordered in (routes, routes[::-1]):
        match = RouteTable(ordered).match("GET", path)
        assert match.route is not None
        assert match.route.upstream == winner


def test_a_parameter_route_owns_its_methods_like_a_literal_one() -> None:
    """A path under /tenants/{tenant} with a method it lacks is 405, not a shorter route."""
    table = RouteTable([_route("/tenants/{tenant}", methods=frozenset({"GET"})), TENANTS])
    match = table.match("POST", "/tenants/acme")
    assert (match.kind, match.allowed_methods) == (Match.PARTIAL, ("GET",))


def test_the_match_carries_the_captured_segments() -> None:
    """The decision gets what the parameters took, exactly as in the canonical path."""
    match = RouteTable([TENANT_ORDERS]).match("GET", "/tenants/a%C3%A9/orders/1")
    assert match.captures == Captures((("tenant", "a%C3%A9"),), None)


def test_suffix_upstreams_match_parameters_with_the_suffix_removed() -> None:
    """An ignore_suffix upstream's /t/{x}/orders also takes /t/acme/orders.json."""
    upstream = Upstream(name="u", url=yarl.URL("http://x"), ignore_suffix=True)
    table = RouteTable([_route("/t/{x}/orders", exact=True)], {"u": upstream})
    assert table.match("GET", "/t/acme/orders.json").captures == Captures((("x", "acme"),), None)


SEGMENT_VALUES = [
    pytest.param("acme", "acme", id="plain"),
    pytest.param("a%20b", "a b", id="space"),
    pytest.param("a%25b", "a%b", id="percent-once"),
    pytest.param("a%2520b", "a%20b", id="double-escape-decoded-once"),
    pytest.param("acm%C3%A9", "acmé", id="utf-8"),
    pytest.param("acm%E9", None, id="latin-1-is-nothing"),
    pytest.param("%FF", None, id="invalid-utf-8"),
]


@pytest.mark.parametrize(("segment", "value"), SEGMENT_VALUES)
def test_the_value_is_the_segment_decoded_once_as_utf8(segment: str, value: str | None) -> None:
    """What a decoding upstream reads; bytes that are not UTF-8 read as nothing."""
    assert segment_value(segment) == value


CLAIMS = [
    pytest.param("acme", "acme", True, id="string-equal"),
    pytest.param("acme", "ACME", False, id="string-case"),
    pytest.param("acme", "acme ", False, id="string-space"),
    pytest.param("acme", "acm", False, id="string-prefix"),
    pytest.param(["x", "acme"], "acme", True, id="list-member"),
    pytest.param(["x", "y"], "acme", False, id="list-not-member"),
    pytest.param([["acme"]], "acme", False, id="list-nested"),
    pytest.param([], "acme", False, id="list-empty"),
    pytest.param(7, "7", False, id="number"),
    pytest.param(True, "true", False, id="boolean"),
    pytest.param({"acme": True}, "acme", False, id="object"),
    pytest.param(None, "acme", False, id="missing-or-null"),
    pytest.param("acme", None, False, id="undecodable-value"),
]


@pytest.mark.parametrize(("claim", "value", "allowed"), CLAIMS)
def test_string_claims_equal_list_claims_contain_everything_else_fails(
    claim: object, value: str | None, allowed: bool
) -> None:
    """Exact, case-sensitive; lists by membership; numbers, booleans, objects, null: never."""
    assert claim_allows(claim, value) is allowed


BIND = (Binding("tenant", "tenant_id"),)

HOLDS = [
    pytest.param("acme", False, {"tenant_id": "acme"}, True, id="plain"),
    pytest.param("acme", False, {}, False, id="claim-missing"),
    pytest.param("a%20b", False, {"tenant_id": "a b"}, True, id="decoded"),
    pytest.param("a%20b", False, {"tenant_id": "a%20b"}, False, id="not-the-escape"),
    pytest.param("acme.json", False, {"tenant_id": "acme.json"}, True, id="no-suffix-upstream"),
    pytest.param("acme.json", True, {"tenant_id": "acme.json"}, False, id="suffix-claim-whole"),
    pytest.param("acme.json", True, {"tenant_id": "acme"}, False, id="suffix-claim-stem"),
    pytest.param("acme.json", True, {"tenant_id": ["acme", "acme.json"]}, True, id="suffix-both"),
    pytest.param("acme", True, {"tenant_id": "acme"}, True, id="suffix-upstream-no-dot"),
    pytest.param("a.b.json", True, {"tenant_id": ["a.b.json", "a"]}, False, id="suffix-greedy"),
    pytest.param(
        "a.b.json", True, {"tenant_id": ["a.b.json", "a.b", "a"]}, True, id="suffix-every-stem"
    ),
]


@pytest.mark.parametrize(("segment", "strip", "payload", "holds"), HOLDS)
def test_a_binding_holds_when_the_claim_allows_every_reading(
    segment: str, strip: bool, payload: dict[str, Any], holds: bool
) -> None:
    """On a suffix-stripping upstream the last segment is read with and without its suffix, and
    the claim must allow both: a claim 'acme.json' never reaches tenant 'acme'."""
    captures = Captures((("tenant", segment),), "tenant")
    assert bindings_hold(BIND, captures, payload, strip_suffix=strip) is holds


def test_every_binding_must_hold() -> None:
    """Two bindings: both claims must allow their segments."""
    bind = (Binding("org", "org_id"), Binding("user", "sub"))
    captures = Captures((("org", "o1"), ("user", "bob")), None)
    assert bindings_hold(bind, captures, {"org_id": "o1", "sub": "bob"})
    assert not bindings_hold(bind, captures, {"org_id": "o1", "sub": "eve"})
    assert not bindings_hold(bind, captures, {"org_id": "o2", "sub": "bob"})
