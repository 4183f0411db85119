"""The per-request metric updates, as additions to one list, without prometheus_client's
per-call layers.

``Counter.inc`` and ``Histogram.observe`` check on every call that the metric is a labelled
child, take the value's lock, and walk the buckets in Python; for a refusal that was about a
tenth of the gateway's own work. Here each labelled child the door updates gets slots in
`Tally.pending` (a counter one, a histogram its sum and one per bucket, found by bisection), a
request adds to them in place, and `Tally.flush` moves the sums into the children's own values
(the same lock, and the same multiprocess file, as prometheus_client's path) before anything
reads them: before each scrape this process answers, and, with several workers (whose files
another worker's scrape reads), at the end of the event-loop turn that made them. The samples a
scrape reads are the same; ``tests/unit/server/test_hot_metrics.py`` compares them.

The value objects are prometheus_client internals (``_value``, ``_sum``, ``_buckets``,
``_upper_bounds``); `check_shape` fails loudly when a release moves them.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Any, NamedTuple

from prometheus_client import Counter, Gauge, Histogram

from gateway.server.shapes import PrivateShapeChanged

__all__ = ["Observed", "Tally", "check_shape", "observe"]


def check_shape(counter: Counter | Gauge, histogram: Histogram) -> None:
    """Raise `PrivateShapeChanged` unless both labelled children have the internals used here."""
    missing = [
        f"{type(owner).__name__}.{name}"
        for owner, names in (
            (counter, ("_value",)),
            (histogram, ("_sum", "_buckets", "_upper_bounds")),
        )
        for name in names
        if not hasattr(owner, name)
    ]
    if missing:
        raise PrivateShapeChanged(
            "prometheus_client's internals changed shape; gateway.server.hot_metrics needs "
            "updating: " + ", ".join(missing)
        )


class Observed(NamedTuple):
    """A histogram child's slots: its sum, its first bucket, and the buckets' upper bounds."""

    total: int
    first_bucket: int
    bounds: tuple[float, ...]


def observe(pending: list[float], histogram: Observed, seconds: float) -> None:
    """``histogram.observe(seconds)`` as additions: the sum, and the first bucket whose bound
    holds it (prometheus_client keeps per-bucket counts and adds them up when read)."""
    pending[histogram.total] += seconds
    pending[histogram.first_bucket + bisect_left(histogram.bounds, seconds)] += 1


class Tally:
    """Pending additions to labelled children's values, one slot each.

    ``eager`` (several worker processes): every change schedules a flush at the end of the
    event-loop turn (`changed`), so another worker's scrape reads it as soon as it would have
    read a direct update. Otherwise the values are flushed by `flush` when read.
    """

    __slots__ = ("_scheduled", "_values", "eager", "pending")

    def __init__(self, *, eager: bool) -> None:
        self.eager = eager
        self.pending: list[float] = []
        self._values: list[Any] = []  # each slot's prometheus_client value (it has ``inc``)
        self._scheduled = False

    def counter(self, child: Counter | Gauge) -> int:
        """A slot for a counter's (or gauge's) labelled child; add to ``pending[slot]``."""
        return self._slot(child._value)

    def histogram(self, child: Histogram) -> Observed:
        """Slots for a histogram's labelled child; add with `observe`."""
        total = self._slot(child._sum)
        buckets = [self._slot(bucket) for bucket in child._buckets]
        return Observed(total, buckets[0], tuple(child._upper_bounds))

    def changed(self) -> None:
        """With several workers: flush once the event loop's current turn is over."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Move every pending addition into its child's value."""
        self._scheduled = False
        pending, values = self.pending, self._values
        for slot, amount in enumerate(pending):
            if amount:
                pending[slot] = 0.0
                values[slot].inc(amount)

    def _slot(self, value: Any) -> int:
        self.pending.append(0.0)
        self._values.append(value)
        return len(self.pending) - 1
