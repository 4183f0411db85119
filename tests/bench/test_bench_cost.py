"""bench/cost.py cannot rot: a short run counts instructions per request for a real case (its
status checked by the tool itself), and an unknown case is refused up front."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def _cost(*args: str) -> subprocess.CompletedProcess[str]:
    if (
        shutil.which("callgrind_control") is None
        or shutil.which("nginx", path="/usr/sbin:/usr/bin") is None
    ):
        if os.environ.get("CI"):
            pytest.fail("valgrind and nginx are required in CI (scripts/test.sh installs them)")
        pytest.skip("valgrind or nginx missing (apt-get install valgrind nginx-light)")
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cost.py"), "--requests", "10", "--warmup", "3",
         *args],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip


def test_a_short_run_counts_instructions_per_request() -> None:
    completed = _cost("--cases", "no_token_401")
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    row = re.search(r"^\| no_token_401 \| ([\d,]+) \|$", completed.stdout, re.MULTILINE)
    assert row is not None, completed.stdout
    assert int(row.group(1).replace(",", "")) > 10_000


def test_an_unknown_case_is_refused_before_anything_runs() -> None:
    completed = _cost("--cases", "no_such_case")
    assert completed.returncode == 2
    assert "unknown case no_such_case" in completed.stderr
