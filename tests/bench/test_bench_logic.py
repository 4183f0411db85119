"""The benchmark's pure parts (`bench/run.py`): the order of its timed runs (`schedule`) and
its whole-run peak RSS (`whole_run_peak`), tested here without wrk or a server."""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from pathlib import Path

# bench/ is scripts, not a package, and not type-checked: imported as its scripts import it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
bench = importlib.import_module("run")

TARGETS = ["node-fastify", "gateway-asyncio", "gateway-uvloop"]


def test_every_target_runs_every_case_once_a_repeat() -> None:
    order = list(bench.schedule(bench.CASES, TARGETS, 3))
    assert Counter((case.name, target) for case, target in order) == {
        (case.name, target): 3 for case in bench.CASES for target in TARGETS
    }


def test_a_case_runs_on_every_target_before_the_next_case() -> None:
    order = list(bench.schedule(bench.CASES, TARGETS, 2))
    names = [case.name for case, _ in order]
    runs = [names[i : i + len(TARGETS)] for i in range(0, len(names), len(TARGETS))]
    assert all(len(set(run)) == 1 for run in runs)


def test_every_other_repeat_runs_in_reverse() -> None:
    """Cases and targets both: each back-to-back pair is measured once in each order."""
    order = [(case.name, target) for case, target in bench.schedule(bench.CASES, TARGETS, 2)]
    first, second = order[: len(order) // 2], order[len(order) // 2 :]
    assert second == first[::-1]
    names = [case.name for case in bench.CASES]
    limited, plain = names.index("rs256_limited"), names.index("rs256")
    assert abs(limited - plain) == 1  # the limit is read against the run next to it
    for target in TARGETS:
        positions = [i for i, (_, t) in enumerate(order) if t == target]
        cases = [order[i][0] for i in positions]
        assert cases[: len(names)] == names
        assert cases[len(names) :] == names[::-1]


def _result(target: str, case: str, peak: float | None) -> object:
    result = bench.Result(target, case)
    result.peak_rss_mib = peak
    return result


def test_the_whole_run_peak_is_the_highest_of_every_case() -> None:
    """Each timed run starts the VmHWM again, so the one read at the end covers the last case
    only: the uploads' peak, measured earlier, must still be the whole run's."""
    results = [
        _result("gateway-uvloop", "10mib_upload", 82.9),
        _result("gateway-uvloop", "1mib_response", 71.5),
        _result("gateway-uvloop", "rs256", 60.1),
        _result("gateway-asyncio", "10mib_upload", 99.0),
        _result("node-fastify", "rs256", None),
    ]
    assert bench.whole_run_peak(results, "gateway-uvloop", 66.0) == 82.9
    assert bench.whole_run_peak(results, "gateway-uvloop", 90.0) == 90.0
    assert bench.whole_run_peak(results, "node-fastify", 128.0) == 128.0
