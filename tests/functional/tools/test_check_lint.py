"""`gateway check` prints route-table warnings, exits 0 unless `--strict`; errors stay errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.cli import main
from tests.support import ENVIRON, TestKeys, write_config

WARNED = """\
defaults: {{mode: report}}
upstreams:
  orders: {{url: "{upstream}"}}
routes:
  - path: /orders
    upstream: orders
    scopes: [orders:read]
  - path: /orders/export
    upstream: orders
    auth: none
"""

WARNING = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): warning: (?P<what>.+) \[(?P<code>\w+)\]$")


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dev issuer's secret, as the config reads it."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", ENVIRON["ACCESS_TOKEN_SECRET"])


@pytest.mark.usefixtures("secret")
@pytest.mark.parametrize(("strict", "status"), [([], 0), (["--strict"], 1)])
def test_warnings_are_printed_and_strict_makes_them_errors(
    tmp_path: Path, keys: TestKeys, capsys: pytest.CaptureFixture[str],
    strict: list[str], status: int,
) -> None:  # fmt: skip
    """Each warning is one `file:line: warning: ... [code]` line after the ok line; --strict
    prints them and exits 1."""
    path = write_config(tmp_path, keys, routes=WARNED)
    assert main(["check", *strict, "-c", str(path)]) == status
    out = capsys.readouterr().out.splitlines()
    warnings = out[1:] if status == 0 else out[:-1]
    found = [WARNING.match(line) for line in warnings]
    assert [(Path(m["file"]).name, int(m["line"]), m["code"]) for m in found if m] == [
        ("routes.yaml", 1, "report_mode"),
        ("routes.yaml", 8, "public_under_protected"),
    ]
    summary = out[0] if status == 0 else out[-1]
    expected = "2 warning(s):" if status == 0 else "2 warning(s), which --strict makes errors"
    assert summary.endswith(expected)


ERRORS = [
    pytest.param("  unused: {{url: \"http://127.0.0.1:1\"}}\n", "upstreams:\n", 2,
                 "upstream 'unused' is not used by any route", id="unused-upstream"),
    pytest.param("    scope: [orders:read]\n", "    upstream: orders\n", 6,
                 "unknown key 'scope' in route (did you mean 'scopes'?)", id="did-you-mean"),
]  # fmt: skip


@pytest.mark.usefixtures("secret")
@pytest.mark.parametrize(("added", "after", "line", "message"), ERRORS)
def test_unused_upstreams_and_unknown_keys_stay_errors(
    tmp_path: Path, keys: TestKeys, capsys: pytest.CaptureFixture[str],
    added: str, after: str, line: int, message: str,
) -> None:  # fmt: skip
    """An unused upstream or a misspelt key fails `check` (exit 1) even without --strict."""
    routes = """\
upstreams:
  orders: {{url: "{upstream}"}}
routes:
  - path: /orders
    upstream: orders
"""
    assert routes.count(after) == 1
    path = write_config(tmp_path, keys, routes=routes.replace(after, after + added))
    assert main(["check", "-c", str(path)]) == 1
    (printed,) = capsys.readouterr().out.splitlines()
    assert printed == f"{tmp_path / 'routes.yaml'}:{line}: {message}"
