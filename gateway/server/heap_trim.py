"""Handing the heap's free memory back to the system every few seconds (glibc's `malloc_trim`).

glibc's allocator keeps the memory freed in the middle of its heap for later allocations. After
a burst of large bodies (10 MiB uploads arrive in chunks of up to 256 KiB) the uvloop gateway
kept about 15 MiB it no longer used, for as long as it ran, and a burst of downloads that came
next peaked on top of it: 78-82 MiB where downloads alone peak at 67 (the issue-13 goal is
80 MB). ``malloc_trim(0)`` returns every free page of the heap (madvise); called every
`TRIM_INTERVAL` seconds it takes about 10 us when there is nothing to return and a few
milliseconds after such a burst (3.5 ms to return 44 MiB here). Where the C library has no
`malloc_trim` (musl, macOS) nothing is scheduled.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

__all__ = ["TRIM_INTERVAL", "HeapTrim", "malloc_trim"]

TRIM_INTERVAL = 10.0


def malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` (returns 1 when memory went back), or None without one."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


class HeapTrim:
    """Calls ``trim`` every ``interval`` seconds on ``loop`` until `cancel`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, trim: Callable[[], int], interval: float
    ) -> None:
        self._loop, self._trim, self._interval = loop, trim, interval
        self._timer: asyncio.TimerHandle | None = loop.call_later(interval, self._tick)

    @classmethod
    def start(
        cls, loop: asyncio.AbstractEventLoop, interval: float = TRIM_INTERVAL
    ) -> HeapTrim | None:
        """Trim every ``interval`` seconds, or None where the C library cannot."""
        trim = malloc_trim()
        return None if trim is None else cls(loop, trim, interval)

    def _tick(self) -> None:
        self._trim()
        self._timer = self._loop.call_later(self._interval, self._tick)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
