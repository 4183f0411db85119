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


def test_quick_benchmark_runs_and_every_status_is_right(tmp_path: Path) -> None:
    """`bench/run.py --quick` exits 0 and reports every target and case."""
    if shutil.which("wrk") is None or shutil.which("nginx", path="/usr/sbin:/usr/bin") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk and nginx are required in CI (scripts/test.sh installs them)")
        pytest.skip("wrk or nginx missing (apt-get install wrk nginx-light)")
    results = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(results)],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    table = completed.stdout
    for target in ("direct", "nginx-proxy", "naive", "gateway-asyncio", "gateway-uvloop"):
        assert f"| {target} | rs256 |" in table
    assert "MISMATCH" not in table
    assert results.stat().st_size > 0
