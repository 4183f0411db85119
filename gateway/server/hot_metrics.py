"""The per-request metric updates, without prometheus_client's per-call layers.

``Counter.inc`` and ``Histogram.observe`` check on every call that the metric is a labelled
child, then walk the buckets in Python; for a refusal that was about a tenth of the gateway's
own work. The door looks its children up once (`gateway.server.access.Accounting`) and keeps
what these functions return: the child's value's own ``inc`` (the same lock and the same
multiprocess file as prometheus_client's path) and a bucket found by bisection. The samples a
scrape reads are the same; ``tests/unit/server/test_hot_metrics.py`` compares them.

The value objects are prometheus_client internals (``_value``, ``_sum``, ``_buckets``,
``_upper_bounds``); `check_shape` fails loudly when a release moves them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["Add", "PrivateShapeChanged", "adder", "check_shape", "observer"]

Add = Callable[[float], None]


class PrivateShapeChanged(RuntimeError):
    """A prometheus_client internal the hot path uses is not where it was."""


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


def adder(child: Counter | Gauge) -> Add:
    """``child.inc(amount)`` (``amount`` may be negative for a gauge) as one call."""
    inc: Add = child._value.inc
    return inc


def observer(child: Histogram) -> Add:
    """``child.observe(seconds)``: the sum, and the first bucket whose bound holds it."""
    bounds = list(child._upper_bounds)
    buckets = [bucket.inc for bucket in child._buckets]
    add_to_sum = child._sum.inc

    def observe(amount: float) -> None:
        add_to_sum(amount)
        buckets[bisect_left(bounds, amount)](1)

    return observe
