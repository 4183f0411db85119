"""`gateway check` reports every file that cannot be loaded as ``file:line: what is wrong`` lines
and exits 1, never with a traceback (the inputs that once escaped the loader included)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.cli import main
from tests.support import DEFAULT_ROUTES, ENVIRON, TestKeys, write_config

PROBLEM = re.compile(r"^(?P<file>/[^:]+):(?P<line>\d+): (?P<what>.+)$")
NUL_PATH_ROUTES = DEFAULT_ROUTES.replace(
    'orders: {{url: "{upstream}", timeout: 2s}}',
    'orders: {{url: "https://127.0.0.1:9", ca: "ca\\0.pem"}}',
)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dev issuer's secret, as the config reads it."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", ENVIRON["ACCESS_TOKEN_SECRET"])


@pytest.mark.usefixtures("secret")
@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        pytest.param(
            "routes.yaml",
            "upstreams: " + "[" * 5000 + "]" * 5000 + "\n",
            ("routes.yaml", 1, "nested more than 64 levels deep"),
            id="deep-nesting",
        ),
        pytest.param(
            "routes.yaml",
            NUL_PATH_ROUTES.format(upstream=""),
            ("routes.yaml", 2, "'ca': a file name cannot contain a NUL byte"),
            id="nul-in-path",
        ),
        pytest.param(
            "keys/jwks.json",
            '{"keys": [{"kty": ["RSA"]}]}',
            ("gateway.yaml", 9, "key 'None' is unusable (unsupported_kty)"),
            id="kty-list",
        ),
    ],
)
def test_check_names_file_and_line_for_inputs_that_once_escaped(
    tmp_path: Path,
    keys: TestKeys,
    capsys: pytest.CaptureFixture[str],
    file: str,
    content: str,
    expected: tuple[str, int, str],
) -> None:
    """A routes file nested thousands deep, a NUL in a file name and a JWK member of the wrong
    type each give `file:line: what is wrong` and exit 1."""
    path = write_config(tmp_path, keys)
    (tmp_path / file).write_text(content)
    assert main(["check", "-c", str(path)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    matches = [PROBLEM.match(line) for line in lines]
    assert all(matches), lines
    found = [(Path(m["file"]).name, int(m["line"]), m["what"]) for m in matches if m]
    name, line, fragment = expected
    assert any((n, ln) == (name, line) and fragment in what for n, ln, what in found), found
    assert "Traceback" not in captured.out + captured.err
