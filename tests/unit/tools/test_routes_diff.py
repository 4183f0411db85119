"""`gateway routes diff`: which (method, path) pairs change access, and the exit code for CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_routes
from gateway.core.models import ScopeMode, ScopeRule
from gateway.tools.routes_diff import Direction, _implies, diff_routes

SAMPLE = Path(__file__).resolve().parents[3] / "config" / "routes.yaml"
HEAD = """\
upstreams:
  app: {url: "http://127.0.0.1:9001"}
  other: {url: "http://127.0.0.1:9002"}
routes:
  - {path: /keep, upstream: other}
  - {path: /spare, upstream: app}
"""

ALL, ANY = ScopeMode.ALL, ScopeMode.ANY
IMPLIES = [
    pytest.param((ALL, "a b"), (ALL, "a"), True, id="more-scopes-is-stricter"),
    pytest.param((ALL, "a"), (ALL, "a b"), False, id="fewer-scopes-is-looser"),
    pytest.param((ALL, "b"), (ALL, "a"), False, id="other-scope-is-looser"),
    pytest.param((ALL, "a"), (ALL, ""), True, id="anything-implies-any-token"),
    pytest.param((ALL, ""), (ALL, "a"), False, id="any-token-is-looser"),
    pytest.param((ANY, "a b"), (ALL, "a"), False, id="any-of-is-looser-than-all"),
    pytest.param((ALL, "a b"), (ANY, "a c"), True, id="all-covering-one-alternative"),
    pytest.param((ALL, "b"), (ANY, "a c"), False, id="all-missing-every-alternative"),
    pytest.param((ANY, "a"), (ANY, "a b"), True, id="fewer-alternatives-is-stricter"),
    pytest.param((ANY, "a b"), (ANY, "a"), False, id="more-alternatives-is-looser"),
    pytest.param((ANY, "a"), (ALL, "a"), True, id="single-alternative-equals-all"),
]


def _rule(spec: tuple[ScopeMode, str]) -> ScopeRule:
    return ScopeRule(spec[0], tuple(spec[1].split()))


@pytest.mark.parametrize(("new", "old", "implied"), IMPLIES)
def test_scope_rules_compare_by_the_tokens_they_let_in(
    new: tuple[ScopeMode, str], old: tuple[ScopeMode, str], implied: bool
) -> None:
    """A new rule is no looser when every scope set that satisfies it satisfies the old one."""
    assert _implies(_rule(new), _rule(old)) is implied


L, T, C = Direction.LOOSENED, Direction.TIGHTENED, Direction.CHANGED
PAIRS = [
    pytest.param("  - {path: /a, upstream: app, scopes: [x]}\n",
                 "  - {path: /a, upstream: app, auth: none}\n",
                 [(L, "all methods", "/a and below", "newly public")], id="newly-public"),
    pytest.param("  - {path: /a, upstream: app, auth: none}\n",
                 "  - {path: /a, upstream: app, scopes: [x]}\n",
                 [(T, "all methods", "/a and below", "newly protected")], id="newly-protected"),
    pytest.param("", "  - {path: /a, upstream: app, methods: [GET]}\n",
                 [(L, "GET", "/a and below", "newly routed"), ], id="newly-routed"),
    pytest.param("  - {path: /a, upstream: app, methods: [GET]}\n", "",
                 [(T, "GET", "/a and below", "no longer routed (404)")], id="removed"),
    pytest.param("  - {path: /a, upstream: app, scopes: [x, y]}\n",
                 "  - {path: /a, upstream: app, scopes: [x]}\n",
                 [(L, "all methods", "/a and below", "scopes [x, y] -> [x]")], id="scope-removed"),
    pytest.param("  - {path: /a, upstream: app, scopes: [x]}\n",
                 "  - {path: /a, upstream: app, scopes: [x, y]}\n",
                 [(T, "all methods", "/a and below", "scopes [x] -> [x, y]")], id="scope-added"),
    pytest.param("  - {path: /a, upstream: app}\n",
                 "  - {path: /a, upstream: app, mode: report}\n",
                 [(L, "all methods", "/a and below", "mode enforce -> report")], id="to-report"),
    pytest.param("  - {path: /a, upstream: app, issuers: [local]}\n",
                 "  - {path: /a, upstream: app}\n",
                 [(L, "all methods", "/a and below", "issuers [local] -> (all)")],
                 id="issuers-widened"),
    pytest.param("  - {path: /a, upstream: app}\n",
                 "  - {path: /a, upstream: app, forward_token: true}\n",
                 [(L, "all methods", "/a and below", "token is now forwarded")],
                 id="token-forwarded"),
    pytest.param("  - {path: /a, upstream: app}\n", "  - {path: /a, upstream: other}\n",
                 [(C, "all methods", "/a and below", "upstream 'app'")], id="upstream"),
    pytest.param("  - {path: /a, upstream: app, scopes: [x]}\n",
                 "  - {path: /a, upstream: app, scopes: [x]}\n"
                 "  - {path: /a/b, upstream: app, methods: [GET], auth: none}\n",
                 [(L, "GET", "/a/b and below", "newly public"),
                  (T, "HEAD, POST, PUT, PATCH, DELETE, OPTIONS, (other methods)",
                   "/a/b and below", "no longer routed (405)")], id="nested-public-route"),
    pytest.param("  - {path: /a, upstream: app, methods: [GET]}\n",
                 "  - {path: /a, upstream: app, methods: [GET], exact: true}\n",
                 [(T, "GET", "/a/*", "no longer routed (404)")], id="made-exact"),
    pytest.param("  - {path: /a, upstream: app}\n",
                 "  - {path: /a, upstream: app, cors: {origins: ['https://x.test']}}\n",
                 [(L, "all methods", "/a and below", "cors added: origins https://x.test")],
                 id="cors-added"),
    pytest.param("  - {path: /a, upstream: app, cors: {origins: ['https://x.test']}}\n",
                 "  - {path: /a, upstream: app}\n",
                 [(L, "all methods", "/a and below", "cors removed")], id="cors-removed"),
    pytest.param("  - {path: /a, upstream: app, cors: {origins: ['https://x.test']}}\n",
                 "  - {path: /a, upstream: app, cors: {origins: ['https://x.test', "
                 "'https://*.y.test']}}\n",
                 [(L, "all methods", "/a and below", "https://*.y.test")], id="cors-origin-added"),
    pytest.param("  - {path: /a, upstream: app, cors: {origins: ['https://x.test']}}\n",
                 "  - {path: /a, upstream: app, cors: {origins: ['https://x.test'], "
                 "credentials: true}}\n",
                 [(L, "all methods", "/a and below", "credentials true")],
                 id="cors-credentials"),
    pytest.param("  - {path: /a, upstream: app, cors: {origins: ['https://x.test', "
                 "'https://y.test'], headers: [X-A]}}\n",
                 "  - {path: /a, upstream: app, cors: {origins: ['https://x.test']}}\n",
                 [(T, "all methods", "/a and below", "-> origins https://x.test")],
                 id="cors-narrowed"),
    pytest.param("  - {path: /a, upstream: app, cors: {origins: ['https://x.test']}}\n",
                 "  - {path: /a, upstream: app, cors: {origins: ['https://x.test'], "
                 "max_age: 1h}}\n",
                 [(C, "all methods", "/a and below", "max_age 3600s")], id="cors-max-age"),
    pytest.param('  - {path: "/t/{x}", upstream: app, bind: {x: tenant_id}}\n',
                 '  - {path: "/t/{x}", upstream: app}\n',
                 [(L, "all methods", "/t/{x} and below", "{x} = claim 'tenant_id' removed")],
                 id="binding-removed"),
    pytest.param('  - {path: "/t/{x}", upstream: app}\n',
                 '  - {path: "/t/{x}", upstream: app, bind: {x: tenant_id}}\n',
                 [(T, "all methods", "/t/{x} and below", "{x} = claim 'tenant_id' added")],
                 id="binding-added"),
    pytest.param('  - {path: "/t/{x}", upstream: app, bind: {x: tenant_id}}\n',
                 '  - {path: "/t/{x}", upstream: app, bind: {x: org_id}}\n',
                 [(L, "all methods", "/t/{x} and below", "claim 'tenant_id' removed"),
                  (T, "all methods", "/t/{x} and below", "claim 'org_id' added")],
                 id="binding-moved-to-another-claim"),
    pytest.param('  - {path: "/t/{x}/o", upstream: app, bind: {x: tenant_id}}\n',
                 '  - {path: "/t/{tenant}/o", upstream: app, bind: {tenant: tenant_id}}\n',
                 [], id="parameter-renamed-is-no-change"),
    pytest.param('  - {path: "/t/{x}/o/{y}", upstream: app, bind: {x: tenant_id, y: sub}}\n',
                 '  - {path: "/t/{x}/o/{y}", upstream: app, bind: {y: tenant_id, x: sub}}\n',
                 [(L, "all methods", "/t/{x}/o/{y} and below", "{x} = claim 'tenant_id' removed"),
                  (L, "all methods", "/t/{x}/o/{y} and below", "{y} = claim 'sub' removed"),
                  (T, "all methods", "/t/{x}/o/{y} and below", "{x} = claim 'sub' added"),
                  (T, "all methods", "/t/{x}/o/{y} and below", "{y} = claim 'tenant_id' added")],
                 id="bindings-swapped-between-segments"),
    pytest.param("  - {path: /t/acme, upstream: app, scopes: [x]}\n",
                 '  - {path: "/t/{t}", upstream: app, scopes: [x], bind: {t: tenant_id}}\n',
                 [(L, "all methods", "/t/{t} and below", "newly routed"),
                  (T, "all methods", "/t/acme and below", "binding {t} = claim 'tenant_id' added")],
                 id="literal-widened-to-parameter"),
    pytest.param('  - {path: "/t/{t}", upstream: app, scopes: [x], bind: {t: tenant_id}}\n',
                 '  - {path: "/t/{t}", upstream: app, scopes: [x], bind: {t: tenant_id}}\n'
                 "  - {path: /t/me, upstream: app, scopes: [x]}\n",
                 [(L, "all methods", "/t/me and below", "binding {t} = claim 'tenant_id' removed")],
                 id="literal-carved-out-of-bound-parameter"),
]  # fmt: skip


def _pair(tmp_path: Path, old: str, new: str) -> tuple[Path, Path]:
    paths = tmp_path / "old.yaml", tmp_path / "new.yaml"
    for path, routes in zip(paths, (old, new), strict=True):
        path.write_text(HEAD + routes)
    return paths


@pytest.mark.parametrize(("old", "new", "expected"), PAIRS)
def test_each_change_is_classified(
    tmp_path: Path, old: str, new: str, expected: list[tuple[Direction, str, str, str]]
) -> None:
    """Each edit yields exactly its changes, for the right methods and paths."""
    old_path, new_path = _pair(tmp_path, old, new)
    changes = diff_routes(load_routes(old_path), load_routes(new_path))
    got = [(c.direction, c.methods_shown, c.path, c.what) for c in changes]
    assert len(got) == len(expected), got
    for (direction, methods, path, what), want in zip(got, expected, strict=True):
        assert (direction, methods, path) == want[:3]
        assert want[3] in what


EXITS = [
    pytest.param("  - {path: /a, upstream: app, scopes: [x]}\n",
                 "  - {path: /a, upstream: app}\n", 3, "1 loosened, 0 tightened, 0 changed",
                 id="loosened-exits-3"),
    pytest.param("  - {path: /a, upstream: app}\n",
                 "  - {path: /a, upstream: app, scopes: [x]}\n", 0,
                 "0 loosened, 1 tightened, 0 changed", id="tightened-exits-0"),
    pytest.param("  - {path: /a, upstream: app}\n", "  - {path: /a, upstream: app}\n", 0,
                 "no access changes", id="unchanged-exits-0"),
    pytest.param("  - {path: /a, upstream: app}\n", "  - {path: /a, upstream: nowhere}\n", 1,
                 "unknown upstream 'nowhere'", id="invalid-exits-1"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "status", "last"), EXITS)
def test_exit_code_says_whether_access_was_loosened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    old: str, new: str, status: int, last: str,
) -> None:  # fmt: skip
    """`routes diff` exits 3 when anything is loosened, 0 otherwise, 1 for an invalid file."""
    old_path, new_path = _pair(tmp_path, old, new)
    assert main(["routes", "diff", str(old_path), str(new_path)]) == status
    out = capsys.readouterr().out.splitlines()
    assert last in out[-1]


def test_sample_routes_opening_a_path_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dropping the scopes line of the sample's write route is a loosening (exit 3)."""
    edited = tmp_path / "routes.yaml"
    edited.write_text(SAMPLE.read_text().replace("    scopes: [orders:write]\n", ""))
    assert main(["routes", "diff", str(SAMPLE), str(edited)]) == 3
    out = capsys.readouterr().out
    assert "loosened: POST, PUT, PATCH, DELETE /orders and below: scopes [orders:write] -> " in out
