"""Rate limits in the offline tools: `gateway explain` and `gateway test` show which limit
applies without consuming quota, and `gateway routes diff` calls a removed or raised limit a
loosening."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import Config, load_routes
from gateway.tools.explain import ExplainRequest, explain
from gateway.tools.routes_diff import Direction, diff_routes
from tests.support import ENVIRON, ORDERS_HEALTH, TestKeys, TokenFactory, route_table, write_config

LIMITED = route_table(
    """\
  - path: /orders
    upstream: orders
    methods: [GET]
    scopes: [orders:read]
    rate_limit: {{rate: 1/min, burst: 1, key: client_id, on_backend_error: deny}}
""",
    ORDERS_HEALTH,
)


async def test_explain_names_the_limit_and_never_spends_it(
    make_config: Callable[..., Config], tokens: TokenFactory
) -> None:
    """Explaining the same request twice under a limit of one: both forward, both name it."""
    config = make_config(routes=LIMITED)
    headers = (("Authorization", f"Bearer {tokens.good()}"),)
    request = ExplainRequest(method="GET", target="/orders/1", headers=headers, now=time.time())
    for _ in range(2):
        lines = await explain(config, request)
        (limit,) = [line for line in lines if line.startswith("rate_limit: ")]
        assert limit.startswith("rate_limit: ok - 1/min, burst 1, per client_id")
        assert "decided after authentication" in limit
        assert "on_backend_error: deny" in limit
        assert lines[-3].startswith("decision: forward")


async def test_explain_says_when_a_route_has_no_limit(make_config: Callable[..., Config]) -> None:
    """A route without a limit says so."""
    request = ExplainRequest(method="GET", target="/orders/health", now=time.time())
    lines = await explain(make_config(routes=LIMITED), request)
    assert "rate_limit: none on this route" in lines


CASES = """\
cases:
  - name: the limit that applies
    method: GET
    path: /orders/1
    claims: {{scope: orders:read}}
    expect: {{status: 200, rate_limit: {{rate: 1/min, burst: 1, key: client_id,
                                        on_backend_error: deny}}}}
  - name: asked twice, still not consumed
    method: GET
    path: /orders/1
    claims: {{scope: orders:read}}
    expect: {{status: 200}}
  - name: health has none
    method: GET
    path: /orders/health
    expect: {{status: 200, rate_limit: false}}
{extra}"""

WRONG = """\
  - name: wrong on purpose
    method: GET
    path: /orders/1
    claims: {scope: orders:read}
    expect: {status: 200, rate_limit: {rate: 2/min, key: client_id}}
"""


@pytest.mark.parametrize(
    ("extra", "status", "summary"),
    [("", 0, "3 passed, 0 failed"), (WRONG, 1, "3 passed, 1 failed")],
)
def test_policy_tests_check_the_limit(
    tmp_path: Path,
    keys: TestKeys,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    status: int,
    summary: str,
) -> None:
    """``expect.rate_limit`` compares the route's limit (numbers, key, on_backend_error)."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", ENVIRON["ACCESS_TOKEN_SECRET"])
    path = write_config(tmp_path, keys, routes=LIMITED)
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES.format(extra=extra))
    assert main(["test", str(cases), "-c", str(path)]) == status
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == summary
    if extra:
        (failed,) = [line for line in out if line.startswith("FAIL ")]
        assert failed.endswith(
            "expected rate_limit 2/min, burst 2, per client_id, got 1/min, burst 1, per client_id"
        )


HEAD = """\
upstreams:
  app: {url: "http://127.0.0.1:9001"}
routes:
"""
L, T, C = Direction.LOOSENED, Direction.TIGHTENED, Direction.CHANGED
LIMIT = "rate_limit: {rate: 10/s, burst: 20, key: client_id}"

DIFFS = [
    pytest.param(LIMIT, "", (L, "rate limit removed; was 10/s, burst 20, per client_id"),
                 id="removed"),
    pytest.param("", LIMIT, (T, "rate limit added: 10/s, burst 20, per client_id"), id="added"),
    pytest.param(LIMIT, LIMIT.replace("10/s", "20/s"), (L, "rate limit 10/s"), id="rate-raised"),
    pytest.param(LIMIT, LIMIT.replace("20", "40"), (L, "rate limit 10/s"), id="burst-raised"),
    pytest.param(LIMIT, LIMIT.replace("10/s", "5/s"), (T, "rate limit 10/s"), id="rate-lowered"),
    pytest.param(LIMIT, LIMIT.replace("client_id", "ip"), (C, "per ip"), id="rekeyed"),
    pytest.param(LIMIT.replace("}", ", on_backend_error: deny}"), LIMIT,
                 (L, "on_backend_error deny -> allow"), id="fails-open-now"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "expected"), DIFFS)
def test_routes_diff_classifies_limit_changes(
    tmp_path: Path, old: str, new: str, expected: tuple[Direction, str]
) -> None:
    """A removed or raised limit is a loosening; added or lowered, a tightening."""
    paths = []
    for name, limit in (("old", old), ("new", new)):
        path = tmp_path / f"{name}.yaml"
        line = f"  - {{path: /a, upstream: app{', ' + limit if limit else ''}}}\n"
        path.write_text(HEAD + line)
        paths.append(path)
    changes = diff_routes(load_routes(paths[0]), load_routes(paths[1]))
    assert {c.direction for c in changes} == {expected[0]}
    assert all(expected[1] in c.what for c in changes)


def test_routes_diff_exits_3_when_the_sample_limit_is_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dropping the sample's default limit is a loosening CI catches (exit 3)."""
    sample = Path(__file__).resolve().parents[3] / "config" / "routes.yaml"
    edited = tmp_path / "routes.yaml"
    text = sample.read_text()
    edited.write_text(text[: text.index("defaults:")])
    assert main(["routes", "diff", str(sample), str(edited)]) == 3
    assert "rate limit removed" in capsys.readouterr().out
