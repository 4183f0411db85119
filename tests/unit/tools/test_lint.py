"""Route-table lint: shadowed, nested, method-gap and report-mode routes, each at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_routes
from gateway.core.models import LintCode
from gateway.tools.lint import lint

HEAD = """\
upstreams:
  app: {url: "http://127.0.0.1:9001"}
routes:
"""

L = LintCode

TABLES = [
    pytest.param("""\
  - {path: "/t/{t}", upstream: app, auth: none}
  - {path: /t/me, upstream: app}
  - {path: /t/me/public, upstream: app, auth: none}
""", [(5, L.PROTECTED_UNDER_PUBLIC), (6, L.PUBLIC_UNDER_PROTECTED)],
        id="literal-beats-parameter-as-enclosing"),
    pytest.param("""\
  - {path: "/t/{t}", upstream: app, auth: none}
  - {path: "/t/{t}/orders", upstream: app, scopes: [orders:read], bind: {t: tenant_id}}
""", [(5, L.PROTECTED_UNDER_PUBLIC)], id="bound-under-public-parameter"),
    pytest.param("""\
  - {path: "/t/{t}", upstream: app, methods: [GET, POST]}
  - {path: "/t/{t}/orders", upstream: app, methods: [GET]}
""", [(5, L.METHOD_GAP)], id="method-gap-under-parameter"),
    pytest.param("""\
  - {path: "/t/{t}", upstream: app, exact: true, methods: [GET]}
  - {path: "/t/{t}", upstream: app, methods: [GET]}
""", [(5, L.SHADOWED)], id="exact-parameter-shadows-prefix"),
    pytest.param("""\
  - {path: /t/me, upstream: app, auth: none}
  - {path: "/t/{t}", upstream: app, bind: {t: sub}}
""", [(4, L.PUBLIC_UNDER_PROTECTED)], id="public-literal-carved-from-parameter"),
    pytest.param("""\
  - {path: /orders, upstream: app, scopes: [orders:read]}
  - {path: /orders/export, upstream: app, auth: none}
""", [(5, L.PUBLIC_UNDER_PROTECTED)], id="public-under-protected"),
    pytest.param("""\
  - {path: /docs, upstream: app, auth: none}
  - {path: /docs/admin, upstream: app, scopes: [docs:admin]}
""", [(5, L.PROTECTED_UNDER_PUBLIC)], id="protected-under-public"),
    pytest.param("""\
  - {path: /, upstream: app, auth: none, methods: [GET]}
  - {path: /api, upstream: app, methods: [POST]}
""", [(5, L.METHOD_GAP)], id="nested-but-no-shared-method"),
    pytest.param("""\
  - {path: /orders, upstream: app, methods: [GET], auth: none}
  - {path: /orders, upstream: app, methods: [POST]}
""", [], id="same-path-split-by-method"),
    pytest.param("""\
  - {path: /a, upstream: app, scopes: [x]}
  - {path: /a/b, upstream: app, auth: none}
  - {path: /a/b/c, upstream: app, auth: none}
""", [(5, L.PUBLIC_UNDER_PROTECTED)], id="only-the-nearest-enclosing-route-counts"),
    pytest.param("""\
  - {path: /status, upstream: app, exact: true, auth: none}
  - {path: /status, upstream: app}
""", [(4, L.PUBLIC_UNDER_PROTECTED), (5, L.SHADOWED)], id="exact-shadows-prefix-at-its-path"),
    pytest.param("""\
  - {path: /status, upstream: app, exact: true, methods: [GET]}
  - {path: /status, upstream: app, methods: [GET]}
""", [(5, L.SHADOWED)], id="exact-takes-the-only-method"),
    pytest.param("""\
  - {path: /orders, upstream: app, methods: [GET, POST]}
  - {path: /orders/export, upstream: app, methods: [GET]}
""", [(5, L.METHOD_GAP)], id="method-gap"),
    pytest.param("""\
  - {path: /orders, upstream: app}
  - {path: /orders/export, upstream: app, methods: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]}
""", [], id="no-gap-in-common-methods"),
    pytest.param("""\
  - {path: /orders, upstream: app, mode: report}
  - {path: /billing, upstream: app}
""", [(4, L.REPORT_MODE)], id="report-mode-route"),
    pytest.param("""\
  - {path: /orders, upstream: app, scopes: [x]}
  - {path: /orders/export, upstream: app, auth: none, lint_ignore: [public_under_protected]}
""", [], id="silenced"),
    pytest.param("""\
  - {path: /orders, upstream: app, mode: report, lint_ignore: [method_gap]}
""", [(4, L.REPORT_MODE)], id="silencing-another-code-silences-nothing"),
    pytest.param("""\
  - {path: /a, upstream: app, cors: {origins: ['*']}}
  - {path: /b, upstream: app, cors: {origins: ['null']}}
  - {path: /c, upstream: app, cors: {origins: ['http://app.example.com']}}
  - {path: /d, upstream: app, cors: {origins: ['http://*.example.com']}}
""", [(4, L.CORS_BROAD_ORIGIN), (5, L.CORS_BROAD_ORIGIN), (6, L.CORS_BROAD_ORIGIN),
      (7, L.CORS_BROAD_ORIGIN)], id="cors-broad-origins"),
    pytest.param("""\
  - {path: /a, upstream: app, cors: {origins: ['https://app.example.com', 'https://*.example.com',
     'http://localhost:3000', 'http://127.0.0.1:8080', 'http://[::1]:8080']}}
  - {path: /b, upstream: app, cors: {origins: ['*']}, lint_ignore: [cors_broad_origin]}
""", [], id="cors-https-and-loopback-or-silenced"),
]  # fmt: skip


@pytest.mark.parametrize(("table", "expected"), TABLES)
def test_each_table_gets_exactly_its_warnings(
    tmp_path: Path, table: str, expected: list[tuple[int, LintCode]]
) -> None:
    """Each crafted table gets exactly the expected warnings, at the lines of the routes."""
    path = tmp_path / "routes.yaml"
    path.write_text(HEAD + table)
    warnings = lint(load_routes(path))
    assert [(warning.line, warning.code) for warning in warnings] == expected
    assert all(str(w).startswith(f"{path}:{w.line}: warning: ") for w in warnings)


def test_file_default_report_mode_is_one_warning_at_the_defaults_line(tmp_path: Path) -> None:
    """`defaults: {mode: report}` is one warning, at its own line, counting the routes."""
    path = tmp_path / "routes.yaml"
    path.write_text("defaults:\n  mode: report\n" + HEAD + """\
  - {path: /a, upstream: app}
  - {path: /b, upstream: app, mode: enforce}
  - {path: /c, upstream: app}
""")  # fmt: skip
    (warning,) = lint(load_routes(path))
    assert (warning.line, warning.code) == (2, LintCode.REPORT_MODE)
    assert "2 protected route(s)" in warning.message


def test_a_broad_default_cors_policy_is_one_warning_at_its_line(tmp_path: Path) -> None:
    """`defaults: {cors: ...}` is warned about once, at its line, counting the routes it covers;
    a route with its own policy is judged on its own."""
    path = tmp_path / "routes.yaml"
    path.write_text("defaults:\n  cors: {origins: ['*']}\n" + HEAD + """\
  - {path: /a, upstream: app}
  - {path: /b, upstream: app, cors: {origins: ['https://app.example.com']}}
  - {path: /c, upstream: app, lint_ignore: [cors_broad_origin]}
  - {path: /d, upstream: app}
""")  # fmt: skip
    (warning,) = lint(load_routes(path))
    assert (warning.line, warning.code) == (2, LintCode.CORS_BROAD_ORIGIN)
    assert "2 route(s)" in warning.message


SAMPLE = Path(__file__).resolve().parents[3] / "config" / "routes.yaml"


def test_shipped_routes_lint_clean_and_say_why(tmp_path: Path) -> None:
    """The sample routes are clean because /orders/health silences its one warning."""
    assert lint(load_routes(SAMPLE)) == []
    text = SAMPLE.read_text()
    silencer = "    lint_ignore: [public_under_protected]"
    assert text.count(silencer) == 1
    bare = tmp_path / "routes.yaml"
    bare.write_text("\n".join(line for line in text.splitlines() if silencer not in line))
    (warning,) = lint(load_routes(bare))
    assert warning.code is LintCode.PUBLIC_UNDER_PROTECTED
    assert "'/orders/health' is inside protected '/orders'" in warning.message
