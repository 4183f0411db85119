"""The gateway hands the heap's free memory back to the system on a timer while it serves."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load
from gateway.server import app as app_module
from gateway.server.heap_trim import HeapTrim, malloc_trim
from tests.support import ENVIRON, TestKeys, write_config

# Run in a fresh interpreter: in a long-lived test process the heap's earlier holes take the
# small survivors, and the freed chunks then sit at the top, which free() gives back by itself.
_FRAGMENT_AND_TRIM = """
from gateway.server.heap_trim import malloc_trim

def rss_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

trim = malloc_trim()
if trim is None:
    print("none")
    raise SystemExit
BIG = 256 * 1024  # an upload's read chunk
# A freed mapped chunk raises glibc's mmap threshold above it, as the first large body does in
# a gateway: the chunks below then come from the heap. Each is followed by a small survivor
# (4 KiB: glibc's too, not Python's small-object arenas), so that the freed chunks are holes
# inside the heap, which free() cannot give back by itself.
del_me = bytes(16 * BIG)
del del_me
chunks, survivors = [], []
for number in range(200):
    chunks.append(bytes([number % 256]) * BIG)
    survivors.append(bytes([number % 256]) * 4096)
del chunks
kept = rss_mib()
trim()
print(kept, rss_mib(), len(survivors))
"""


def test_malloc_trim_returns_the_memory_freed_inside_the_heap() -> None:
    """Large chunks freed between small survivors stay in the process until trimmed (glibc
    keeps them for later), then go back to the system."""
    done = subprocess.run(
        [sys.executable, "-c", _FRAGMENT_AND_TRIM], capture_output=True, text=True, check=True
    )
    if done.stdout.strip() == "none":
        pytest.skip("the C library has no malloc_trim (not glibc)")
    kept, trimmed, survivors = (float(value) for value in done.stdout.split())
    assert survivors == 200
    assert kept > 60  # the 50 MiB freed were still the process's
    assert trimmed < kept - 20  # and left it at the trim


async def test_the_trim_runs_on_its_interval_until_cancelled() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    def counted() -> int:
        calls.append(loop.time())
        return 0

    trim = HeapTrim(loop, counted, 0.02)
    await asyncio.sleep(0.15)
    trim.cancel()
    seen = len(calls)
    assert seen >= 3
    await asyncio.sleep(0.06)
    assert len(calls) == seen


async def test_serving_trims_and_stops_trimming_at_shutdown(
    tmp_path: Path, keys: TestKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` starts the trim once the server is up, and cancels it when it stops."""
    started: list[HeapTrim] = []
    real_start = HeapTrim.start

    def recorded(loop: asyncio.AbstractEventLoop, interval: float = 0.02) -> HeapTrim | None:
        trim = real_start(loop, 0.02)
        if trim is not None:
            started.append(trim)
        return trim

    monkeypatch.setattr(HeapTrim, "start", staticmethod(recorded))
    config = load(write_config(tmp_path, keys), ENVIRON)
    stop = asyncio.Event()
    serving = asyncio.create_task(app_module.serve(config, stop=stop))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(serving, 30)
    if malloc_trim() is None:
        assert started == []
        return
    (trim,) = started
    assert trim._timer is None  # cancelled
