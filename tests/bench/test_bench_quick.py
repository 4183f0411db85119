"""The benchmark cannot rot: its --quick mode runs every target and case for a second each and
checks that every request got the expected status (it never asserts a speed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "bench" / "node"
NODE_PACKAGES = ("fastify", "@fastify/http-proxy", "@fastify/jwt")


def test_quick_benchmark_runs_and_every_status_is_right(tmp_path: Path) -> None:
    """`bench/run.py --quick` exits 0 and reports every target and case, the Node peer too."""
    if shutil.which("wrk") is None or shutil.which("nginx", path="/usr/sbin:/usr/bin") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk and nginx are required in CI (scripts/test.sh installs them)")
        pytest.skip("wrk or nginx missing (apt-get install wrk nginx-light)")
    node_ready = shutil.which("node") is not None and all(
        (NODE_DIR / "node_modules" / package).is_dir() for package in NODE_PACKAGES
    )
    if not node_ready and os.environ.get("CI"):
        pytest.fail("node and bench/node/node_modules are required in CI (scripts/test.sh)")
    results = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(results)],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    table = completed.stdout
    targets = ["direct", "nginx-proxy", "naive", "gateway-asyncio", "gateway-uvloop"]
    if node_ready:
        targets.append("node-fastify")
    else:  # skipped, and the report says why
        assert "Skipped node-fastify: " in table
    cases = ("rs256", "es256", "eddsa", "hs256", "no_token_401", "no_scope_403",
             "1mib_response", "10mib_upload")  # fmt: skip
    for target in targets:
        for case in cases:
            assert f"| {target} | {case} |" in table
    for target in ("gateway-asyncio-traced", "gateway-uvloop-traced"):
        assert f"| {target} | rs256_traced |" in table
        assert f"| {target} | rs256 |" not in table  # traced targets run their own case only
    assert "| vs node-fastify |" in table
    # Each gateway's peak RSS under the 1 MiB downloads, measured on its own, and its goal.
    assert "Peak RSS during the 1 MiB downloads" in table
    for target in ("gateway-asyncio", "gateway-uvloop"):
        assert f"1 MiB downloads | {target} | " in table
    assert "MISMATCH" not in table
    assert results.stat().st_size > 0
