"""`gateway test`: policy cases through the real decision code, offline, with throwaway keys."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from tests.support import ENVIRON, TestKeys, TokenFactory, write_config

REPO = Path(__file__).resolve().parents[3]
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")

ROUTES = """\
upstreams:
  orders: {{url: "{upstream}/api"}}
routes:
  - path: /orders
    upstream: orders
    methods: [GET]
    scopes: [orders:read]
    strip_prefix: true
  - path: /reports
    upstream: orders
    scopes: [reports:read]
    mode: report
  - path: /idp
    upstream: orders
    issuers: [idp]
"""

REMOTE_ISSUER = """\
  - name: idp
    issuer: https://idp.example.test
    discovery: true
    audiences: [idp-api]
    algorithms: [ES256]
"""


@pytest.mark.slow
def test_shipped_policy_tests_pass_in_ci() -> None:
    """`gateway test config/routes.test.yaml -c config/gateway.yaml` exits 0, every case passed."""
    environ = {**os.environ, "ACCESS_TOKEN_SECRET": "s" * 40}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "test", "config/routes.test.yaml",
         "-c", "config/gateway.yaml"],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    summary = SUMMARY.match(lines[-1])
    assert summary is not None, lines[-1]
    assert int(summary[1]) == len(lines) - 1 > 20
    assert summary[2] == "0"
    assert all(line.startswith("PASS config/routes.test.yaml:") for line in lines[:-1])


CASES = """\
defaults:
  issuer: local
cases:
  - name: reader
    method: GET
    path: /orders/7?x=1
    claims: {{scope: orders:read}}
    expect: {{status: 200, upstream: orders, upstream_path: "/api/7?x=1"}}
  - name: report mode forwards what it would refuse
    method: GET
    path: /reports
    expect: {{status: 200, result: would_deny, reason: missing}}
  - name: a remote issuer's claims are minted with a throwaway key too
    method: GET
    path: /idp/1
    issuer: idp
    claims: {{scope: x}}
    expect: {{status: 200, result: allowed}}
  - name: another issuer is refused on the idp route
    method: GET
    path: /idp/1
    claims: {{scope: x}}
    expect: {{status: 401, reason: issuer_not_allowed}}
  - name: a literal token signed with a configured key
    method: GET
    path: /orders/1
    token: {token}
    expect: {{status: 200, reason: null}}
{extra}"""

FAILING = """\
  - name: this one is wrong on purpose
    method: POST
    path: /orders
    claims: {scope: orders:read}
    expect: {status: 200, reason: missing}
"""


def _setup(tmp_path: Path, keys: TestKeys, tokens: TokenFactory, extra: str = "") -> list[str]:
    path = write_config(tmp_path, keys, routes=ROUTES)
    path.write_text(path.read_text().replace("tokens:\n", REMOTE_ISSUER + "tokens:\n"))
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES.format(token=tokens.good(), extra=extra))
    return ["test", str(cases), "-c", str(path)]


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dev issuer's secret, as the config reads it."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", ENVIRON["ACCESS_TOKEN_SECRET"])


@pytest.mark.usefixtures("secret")
def test_crafted_cases_pass(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Report mode, strip_prefix, remote and literal-token cases all pass; exit 0."""
    assert main(_setup(tmp_path, keys, tokens)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "5 passed, 0 failed"
    assert all(line.startswith("PASS ") for line in out[:-1])


@pytest.mark.usefixtures("secret")
def test_a_failing_case_fails_the_run(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case whose expectation does not hold is one FAIL line saying why; exit 1."""
    assert main(_setup(tmp_path, keys, tokens, FAILING)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "5 passed, 1 failed"
    (failed,) = [line for line in out if line.startswith("FAIL ")]
    assert failed == (
        f"FAIL {tmp_path / 'cases.yaml'}:29: this one is wrong on purpose (POST /orders): "
        "expected status 200, got 405 (denied, method_not_allowed); "
        "expected reason missing, got method_not_allowed"
    )


@pytest.mark.usefixtures("secret")
def test_tokens_are_never_printed(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A literal token, and a token in a query string, never appear in the output."""
    extra = """\
  - method: GET
    path: /orders/1?access_token=QUERYSECRET
    expect: {status: 400}
"""
    argv = _setup(tmp_path, keys, tokens, extra)
    literal = (tmp_path / "cases.yaml").read_text().split("token: ")[1].split()[0]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert literal not in out
    assert "QUERYSECRET" not in out
    assert "GET /orders/1?<query>" in out


BAD_FILES = [
    pytest.param("cases:\n  - method: GET\n    path: /\n    expcet: {status: 200}\n"
                 "    expect: {status: 200}\n", 4,
                 "unknown key 'expcet' in case (did you mean 'expect'?)", id="typo"),
    pytest.param("cases:\n  - method: GET\n    path: /\n    expect: {status: ok}\n", 4,
                 "'status' must be an HTTP status", id="status"),
    pytest.param("cases:\n  - method: GET\n    path: /\n    expect: {status: 200, result: deny}\n",
                 4, "'result' must be one of allowed, denied, preflight, public, would_deny",
                 id="result"),
    pytest.param("cases: []\n", 1, "'cases' must be a list with at least one case", id="empty"),
    pytest.param("cases:\n  - method: GET\n    path: /\n    token: ${NO_SUCH_VAR}\n"
                 "    expect: {status: 200}\n", 4, "NO_SUCH_VAR is not set", id="variable"),
]  # fmt: skip


@pytest.mark.usefixtures("secret")
@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_a_bad_cases_file_is_file_line_problems(
    tmp_path: Path, keys: TestKeys, capsys: pytest.CaptureFixture[str],
    text: str, line: int, message: str,
) -> None:  # fmt: skip
    """A malformed cases file is reported as `file:line: problem` lines and exits 1."""
    path = write_config(tmp_path, keys)
    cases = tmp_path / "cases.yaml"
    cases.write_text(text)
    assert main(["test", str(cases), "-c", str(path)]) == 1
    (printed,) = capsys.readouterr().out.splitlines()
    assert printed.startswith(f"{cases}:{line}: ")
    assert message in printed


@pytest.mark.usefixtures("secret")
def test_a_bad_relative_time_fails_its_case(
    tmp_path: Path, keys: TestKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exp like 'tomorrow' fails that case with a message, not the whole run."""
    path = write_config(tmp_path, keys)
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - method: GET\n    path: /orders\n"
                     "    claims: {exp: tomorrow}\n    expect: {status: 401}\n")  # fmt: skip
    assert main(["test", str(cases), "-c", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "claim exp: write a number, 'now', '+15m' or '-1h'" in out[0]
    assert out[-1] == "0 passed, 1 failed"


CORS_ROUTES = """\
upstreams:
  orders: {{url: "{upstream}"}}
defaults:
  cors: {{origins: [https://app.example.com]}}
routes:
  - path: /orders
    upstream: orders
    scopes: [orders:read]
"""

CORS_CASES = """\
cases:
  - name: preflight allowed
    method: OPTIONS
    path: /orders
    headers: {Origin: "https://app.example.com", Access-Control-Request-Method: GET}
    expect: {status: 204, result: preflight, cors: true}
  - name: refusal readable
    method: GET
    path: /orders
    headers: {Origin: "https://app.example.com"}
    expect: {status: 401, cors: true}
  - name: wrong on purpose, the origin is foreign
    method: GET
    path: /orders
    headers: {Origin: "https://evil.test"}
    expect: {status: 401, cors: true}
  - name: wrong on purpose, the preflight is refused
    method: OPTIONS
    path: /orders
    headers: {Origin: "https://evil.test", Access-Control-Request-Method: GET}
    expect: {status: 403, reason: cors_origin_not_allowed, cors: true}
"""


@pytest.mark.usefixtures("secret")
def test_cors_expectations_are_checked(
    tmp_path: Path, keys: TestKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """``expect.cors`` says whether a page at the case's Origin may read the answer (for a
    preflight: whether it is allowed); a wrong one fails with what was seen."""
    path = write_config(tmp_path, keys, routes=CORS_ROUTES)
    cases = tmp_path / "cases.yaml"
    cases.write_text(CORS_CASES)
    assert main(["test", str(cases), "-c", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "2 passed, 2 failed"
    failed = [line for line in out if line.startswith("FAIL ")]
    assert [line.rpartition(": ")[2] for line in failed] == [
        "expected cors true, got none",
        "expected cors true, got none",
    ]
