"""claims_to_headers: which names a mapping may set, and the header form of claim values."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.claim_headers import (
    check_header_name,
    claim_values,
    mapped_headers,
    unencodable,
)


@pytest.mark.parametrize("name", ["X-Auth-Tenant", "x-auth-email", "X-AUTH-Org-Id", "X-Auth-1"])
def test_names_inside_the_gateway_prefix_are_allowed(name: str) -> None:
    """Any X-Auth-* name but the fixed four, in any case."""
    check_header_name(name)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("X-Tenant", "outside"),
        ("Tenant", "outside"),
        ("X-Forwarded-User", "outside"),
        ("Authorization", "outside"),
        ("Connection", "outside"),
        ("Host", "outside"),
        ("X-Auth-", "outside"),
        ("X-Authz-Tenant", "outside"),
        ("X-Auth-Subject", "fixed"),
        ("x-auth-SCOPES", "fixed"),
        ("X-Auth-Issuer", "fixed"),
        ("X-AUTH-CLIENT-ID", "fixed"),
        ("X_Auth_Tenant", "not a header name"),
        ("X.Auth.Tenant", "not a header name"),
        ("X-Auth-Tenant ", "not a header name"),
        ("X-Auth-Tenant\r\nX-Evil", "not a header name"),
        ("X-Auth-Ténant", "not a header name"),
    ],
)
def test_other_names_are_refused(name: str, why: str) -> None:
    """Outside the prefix (a client could send it through), the fixed identity headers, and
    names a CGI/WSGI server would read as another header."""
    with pytest.raises(ValueError, match=why):
        check_header_name(name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme", "acme"),
        ("a b", "a b"),
        ("alice@example.com", "alice@example.com"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-1.5, "-1.5"),
        (["admins", "ops"], "admins,ops"),
        (["one"], "one"),
        # no faithful header form: the token is refused wherever the claim is mapped
        ("é", None),
        (" acme", None),
        ("acme ", None),
        ("", None),
        ("a\r\nX-Auth-Subject: root", None),
        ("a\x00b", None),
        ("\ud800", None),
        (["a,b"], None),
        (["a", 1], None),
        ([["a"]], None),
        ([" a"], None),
        ({"id": 1}, None),
        ("x" * 4097, None),
    ],
)
def test_header_form(value: Any, expected: str | None) -> None:
    """Strings as they are; booleans and numbers as JSON writes them; lists of strings joined
    with ','; anything else has no faithful form (None)."""
    assert claim_values({"c": value}, {"c"}) == (("c", expected),)


def test_absent_null_and_empty_claims_are_left_out() -> None:
    """A missing claim, null and [] give no header (and no refusal)."""
    payload: dict[str, Any] = {"null": None, "empty": [], "kept": "x"}
    assert claim_values(payload, {"missing", "null", "empty", "kept"}) == (("kept", "x"),)


def test_the_route_mapping_wins_over_the_issuers_for_one_header() -> None:
    """The issuer's mapping applies on every route; a route's entry for the same header (in any
    case) replaces it, and both add up otherwise."""
    mapped = (("email", "e@x"), ("org", "o1"), ("tid", "t1"))
    issuer = (("X-Auth-Tenant", "tid"), ("X-Auth-Email", "email"))
    route = (("x-auth-tenant", "org"),)
    assert sorted(mapped_headers(route, issuer, mapped)) == [
        ("X-Auth-Email", "e@x"),
        ("x-auth-tenant", "o1"),
    ]
    assert sorted(mapped_headers((), issuer, mapped)) == [
        ("X-Auth-Email", "e@x"),
        ("X-Auth-Tenant", "t1"),
    ]
    assert mapped_headers((), (), mapped) == []


def test_only_a_mapped_unencodable_claim_refuses() -> None:
    """A claim without a header form matters only where it is mapped (by the route or the
    issuer), and not where the route replaced the issuer's entry for that header."""
    mapped = (("email", None), ("tid", "t1"))
    assert unencodable((("X-Auth-Email", "email"),), (), mapped)
    assert unencodable((), (("X-Auth-Email", "email"),), mapped)
    assert not unencodable((("X-Auth-Tenant", "tid"),), (), mapped)
    assert not unencodable((("X-Auth-Email", "tid"),), (("X-Auth-Email", "email"),), mapped)
    assert not unencodable((), (), mapped)
