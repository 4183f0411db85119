"""routes.yaml `mode`, `defaults: {mode}` and `lint_ignore`: values, defaults and mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_routes
from gateway.core.models import LintCode, RouteMode

BASE = """\
upstreams:
  orders: {url: "http://127.0.0.1:9001"}
routes:
  - path: /orders
    upstream: orders
"""


def _routes(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


MODES = [
    pytest.param("", "", RouteMode.ENFORCE, id="nothing-said"),
    pytest.param("", "    mode: report\n", RouteMode.REPORT, id="route-report"),
    pytest.param("defaults: {mode: report}\n", "", RouteMode.REPORT, id="file-default"),
    pytest.param(
        "defaults: {mode: report}\n", "    mode: enforce\n", RouteMode.ENFORCE, id="route-wins"
    ),
    pytest.param("defaults: {mode: enforce}\n", "", RouteMode.ENFORCE, id="explicit-default"),
]


@pytest.mark.parametrize(("header", "route_line", "expected"), MODES)
def test_route_mode_comes_from_the_route_then_the_file_default(
    tmp_path: Path, header: str, route_line: str, expected: RouteMode
) -> None:
    """A route's own `mode` wins over `defaults: {mode}`, which wins over enforce."""
    routes = load_routes(_routes(tmp_path, header + BASE + route_line))
    assert routes.routes[0].mode is expected


def test_public_routes_are_never_in_report_mode(tmp_path: Path) -> None:
    """A file default of report leaves public routes as they are (they refuse nothing)."""
    text = "defaults: {mode: report}\n" + BASE + "    auth: none\n"
    assert load_routes(_routes(tmp_path, text)).routes[0].mode is RouteMode.ENFORCE


def test_lint_ignore_names_warning_codes(tmp_path: Path) -> None:
    """`lint_ignore` is read as a set of warning codes."""
    text = BASE + "    lint_ignore: [report_mode, method_gap]\n"
    route = load_routes(_routes(tmp_path, text)).routes[0]
    assert route.lint_ignore == {LintCode.REPORT_MODE, LintCode.METHOD_GAP}


MISTAKES = [
    pytest.param(BASE + "    mode: audit\n", 6, "'audit' is not one of: 'enforce', 'report'",
                 id="bad-mode"),
    pytest.param("defaults: {mode: dry-run}\n" + BASE, 1, "'dry-run' is not one of",
                 id="bad-default"),
    pytest.param("defaults: {mdoe: report}\n" + BASE, 1, "(did you mean 'mode'?)",
                 id="default-typo"),
    pytest.param("default: {mode: report}\n" + BASE, 1, "(did you mean 'defaults'?)",
                 id="section-typo"),
    pytest.param(BASE + "    auth: none\n    mode: report\n", 7, "'mode' needs a protected route",
                 id="public-report"),
    pytest.param(BASE + "    lint_ignore: [shadow]\n", 6, "(did you mean 'shadowed'?)",
                 id="lint-code-typo"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "fragment"), MISTAKES)
def test_mode_mistakes_are_config_errors(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    """A wrong mode, default or lint code is one `file:line` problem saying what is wrong."""
    path = _routes(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_routes(path)
    (issue,) = info.value.issues
    assert (issue.file, issue.line) == (str(path), line)
    assert fragment in issue.message
