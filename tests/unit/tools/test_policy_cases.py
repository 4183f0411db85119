"""`gateway.tools.policy_cases`: the case keys `peer`, `expect.client_ip`,
`expect.upstream_headers` and `expect.challenge` as read from a policy-test file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.tools.policy_cases import DEFAULT_PEER, Case, CasesError, load_cases

CASE = "cases:\n  - method: GET\n    path: /orders\n"


def read(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Case:
    """The one case of a file holding ``CASE`` plus ``text``."""
    path = tmp_path / "cases.yaml"
    path.write_text(CASE + text)
    (case,) = load_cases(path, environ or {}).cases
    return case


def test_unset_keys_check_nothing(tmp_path: Path) -> None:
    """Without the new keys the peer is the documentation address and nothing more is checked."""
    case = read(tmp_path, "    expect: {status: 200}\n")
    assert case.peer == DEFAULT_PEER == "192.0.2.1"
    assert case.expect.client_ip is None
    assert case.expect.upstream_headers == ()
    assert not case.expect.check_challenge


@pytest.mark.parametrize(
    ("written", "normal"),
    [("10.1.2.3", "10.1.2.3"), ("' 10.1.2.3 '", "10.1.2.3"), ("'2001:DB8:0::1'", "2001:db8::1"),
     ("'::ffff:192.0.2.9'", "::ffff:c000:209")],
)  # fmt: skip
def test_addresses_are_normalised(tmp_path: Path, written: str, normal: str) -> None:
    """peer and client_ip are compared in the form the gateway writes addresses."""
    case = read(
        tmp_path, f"    peer: {written}\n    expect: {{status: 200, client_ip: {written}}}\n"
    )
    assert case.peer == normal
    assert case.expect.client_ip == normal


def test_upstream_headers_keep_order_case_and_meaning(tmp_path: Path) -> None:
    """A string is a value, null absent, true present; names stay as written; ${VAR} is read."""
    case = read(
        tmp_path,
        "    expect:\n      status: 200\n      upstream_headers:\n"
        "        X-Auth-Tenant: ${TENANT}\n        X_Auth_Subject: null\n"
        "        authorization: true\n        X-Empty: ''\n",
        {"TENANT": "acme"},
    )
    assert case.expect.upstream_headers == (
        ("X-Auth-Tenant", "acme"), ("X_Auth_Subject", None), ("authorization", True),
        ("X-Empty", ""),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("written", "expected", "checked"),
    [("null", None, True), ("'Bearer realm=\"gateway\"'", 'Bearer realm="gateway"', True)],
)
def test_challenge_null_is_an_expectation(
    tmp_path: Path, written: str, expected: str | None, checked: bool
) -> None:
    """``challenge: null`` expects no challenge, unlike leaving the key out."""
    case = read(tmp_path, f"    expect: {{status: 401, challenge: {written}}}\n")
    assert case.expect.challenge == expected
    assert case.expect.check_challenge is checked


def test_every_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    """Each bad new key is its own problem at its own line, in one error."""
    path = tmp_path / "cases.yaml"
    path.write_text(
        CASE + "    peer: gateway.internal\n    expect:\n      status: 200\n"
        "      client_ip: 300.1.1.1\n      challenge: ''\n      upstream_headers:\n"
        "        X-A: 1\n        'X:B': a\n        x-a: b\n"
    )
    with pytest.raises(CasesError) as raised:
        load_cases(path, {})
    lines = [issue.split(": ", 1)[0].rpartition(":")[2] for issue in map(str, raised.value.issues)]
    assert lines == ["4", "7", "8", "10", "11", "12"]
