"""`gateway run --workers N`: the supervisor's shutdown is bounded too, hung workers included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from gateway.server import process

pytestmark = pytest.mark.slow

# A worker that ignores SIGTERM and would run for a minute: a hung worker.
HUNG_WORKER = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
    "time.sleep(60)",
]


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM reaches the workers; one still running ``grace`` seconds later is killed, and
    the supervisor exits (status 1) instead of waiting for it."""
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
        child = real_popen(HUNG_WORKER, stdout=subprocess.PIPE)
        assert child.stdout is not None
        child.stdout.readline()  # its SIGTERM handler is in place
        started.append(child)
        return child

    monkeypatch.setattr(subprocess, "Popen", popen)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        began = time.monotonic()
        status = process._supervise("gateway.yaml", "asyncio", 2, grace=1.0)
        elapsed = time.monotonic() - began
    finally:
        timer.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for child in started:
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
    assert status == 1
    assert all(child.returncode == -signal.SIGKILL for child in started)
    assert elapsed < 3.5
