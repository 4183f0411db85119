"""`token_checks`: the real code's reason code is pinned on the check that took it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.errors import TokenCheck
from gateway.core.models import IssuerConfig, Route, TokensConfig
from gateway.core.tokens import UnverifiedToken
from gateway.tools.token_report import CheckState, describe_time, token_checks

NOW = 1_700_000_000.0
ISSUER = IssuerConfig(
    name="local", issuer="https://auth.example.test", algorithms=frozenset({"RS256"}),
    audiences=("example-api",), require_typ="at+jwt",
)  # fmt: skip
ROUTE = Route(path="/orders", upstream="orders")
TOKENS = TokensConfig(leeway=30.0, max_lifetime=3600.0)
GOOD: dict[str, Any] = {"iss": ISSUER.issuer, "exp": NOW + 300, "iat": NOW, "nbf": NOW}


def _token(header: dict[str, Any] | None = None, **claims: Any) -> UnverifiedToken:
    return UnverifiedToken(
        {"alg": "RS256", "kid": "k1", **(header or {})}, {**GOOD, **claims}, b"", b""
    )


CASES = [
    pytest.param(_token(), None, None, id="verified"),
    pytest.param(_token(), "unknown_kid", "signature", id="unknown-kid"),
    pytest.param(_token({"alg": "HS256"}), "alg_not_allowed", "alg", id="alg-header"),
    pytest.param(_token(), "alg_not_allowed", "signature", id="alg-of-key"),
    pytest.param(_token(), "bad_type", "typ", id="typ"),
    pytest.param(_token(exp="soon"), "invalid_claim", "exp", id="exp-not-a-number"),
    pytest.param(_token(iat=True), "invalid_claim", "iat", id="iat-boolean"),
    pytest.param(_token(sub=7), "invalid_claim", "identity", id="sub-not-a-string"),
    pytest.param(_token(nbf=NOW + 600), "not_yet_valid", "nbf", id="nbf-future"),
    pytest.param(_token(iat=NOW + 600), "not_yet_valid", "iat", id="iat-future"),
    pytest.param(_token(exp=NOW - 600), "expired", "exp", id="expired"),
    pytest.param(_token(exp=NOW + 7200), "lifetime_too_long", "lifetime", id="lifetime"),
    pytest.param(_token(aud="x"), "bad_audience", "aud", id="aud"),
    pytest.param(_token(), "keys_unavailable", "keys", id="keys"),
]


@pytest.mark.parametrize(("token", "reason", "failed"), CASES)
def test_reason_is_pinned_on_its_check(
    token: UnverifiedToken, reason: str | None, failed: str | None
) -> None:
    """The check the code names fails, those before it passed, those after were not reached."""
    checks = token_checks(
        token, issuer=ISSUER, route=ROUTE, tokens=TOKENS, now=NOW,
        failed=TokenCheck(failed) if failed else None, reason=reason, signature_checked=True,
    )  # fmt: skip
    states = [check.state for check in checks]
    names = [check.name for check in checks]
    if failed is None:
        assert set(states) == {CheckState.PASSED}
        return
    index = names.index(failed)
    assert states[index] is CheckState.FAILED
    assert set(states[:index]) <= {CheckState.PASSED}
    assert set(states[index + 1 :]) <= {CheckState.NOT_REACHED}


TIMES = [
    pytest.param(NOW + 300, "2023-11-14T22:18:20Z (in 5m)", id="future"),
    pytest.param(NOW - 3725, "2023-11-14T21:11:15Z (1h 2m ago)", id="past"),
    pytest.param(NOW, "2023-11-14T22:13:20Z (now)", id="now"),
    pytest.param("123", "'123' (not a JSON number)", id="string"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "shown"), TIMES)
def test_times_are_shown_in_utc_with_their_distance(value: object, shown: str) -> None:
    """A NumericDate is printed as UTC and as a distance from now; other values as they are."""
    assert describe_time(value, NOW) == shown


def test_a_time_beyond_the_calendar_is_still_described() -> None:
    """A finite number too large for a date is shown as a number, not an exception."""
    assert describe_time(1e20, NOW).startswith("100000000000000000000 (in ")


def test_an_integer_too_large_for_a_float_is_not_a_time() -> None:
    """A JSON integer beyond float range is described as not a number, never raised."""
    huge = 10**400
    assert describe_time(huge, NOW) == f"{huge!r} (not a JSON number)"
    checks = token_checks(
        _token(nbf=huge), issuer=ISSUER, route=ROUTE, tokens=TOKENS, now=NOW,
        failed=TokenCheck.NBF, reason="invalid_claim", signature_checked=True,
    )  # fmt: skip
    assert [c.name for c in checks if c.state is CheckState.FAILED] == ["nbf"]
