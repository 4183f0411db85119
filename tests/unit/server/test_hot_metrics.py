"""The hot-path metric updates leave exactly the samples prometheus_client's own calls leave,
once flushed: before a scrape, or (with several workers) at the end of the loop's turn."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.server.hot_metrics import Tally, check_shape, observe
from gateway.server.metrics import Metrics
from gateway.server.shapes import PrivateShapeChanged

# On a bound (``le`` holds it), between bounds, zero, past the last finite bound, negative.
AMOUNTS = (0.005, 0.0049, 0.0051, 0.0, 0.3, 10.0, 10.5, 1e9, -1.0, 0.25, 0.25)


def _samples(registry: CollectorRegistry, writer: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.labels.get("writer") == writer and not sample.name.endswith("_created")
    }


def test_the_same_samples_as_prometheus_client() -> None:
    registry = CollectorRegistry()
    counter = Counter("c_total", "c", ["writer"], registry=registry)
    gauge = Gauge("g", "g", ["writer"], registry=registry)
    histogram = Histogram("h_seconds", "h", ["writer"], registry=registry,
                          buckets=(0.005, 0.25, 10.0))  # fmt: skip
    check_shape(counter.labels("hot"), histogram.labels("hot"))
    tally = Tally(eager=False)
    pending = tally.pending
    add, up_down, observed = (
        tally.counter(counter.labels("hot")), tally.counter(gauge.labels("hot")),
        tally.histogram(histogram.labels("hot")),
    )  # fmt: skip
    for amount in AMOUNTS:
        counter.labels("client").inc()
        pending[add] += 1
        gauge.labels("client").inc()
        pending[up_down] += 1
        histogram.labels("client").observe(amount)
        observe(pending, observed, amount)
    gauge.labels("client").dec()
    pending[up_down] -= 1
    assert _samples(registry, "hot")[("c_total", "")] == 0  # nothing until flushed
    tally.flush()
    hot, client = _samples(registry, "hot"), _samples(registry, "client")
    # The sum is added up in another order: equal to the last bits.
    assert hot.pop(("h_seconds_sum", "")) == pytest.approx(client.pop(("h_seconds_sum", "")))
    assert hot == client
    assert hot[("h_seconds_bucket", "0.005")] == 4  # 0.005, below, 0, -1
    tally.flush()  # nothing pending: nothing added twice
    assert _samples(registry, "hot")[("c_total", "")] == len(AMOUNTS)


def test_a_scrape_reads_what_is_pending() -> None:
    metrics = Metrics()
    slot = metrics.tally.counter(metrics.in_flight)
    metrics.tally.pending[slot] += 3
    assert b"gateway_requests_in_flight 3.0" in metrics.render()


async def test_an_eager_tally_flushes_when_the_loops_turn_ends() -> None:
    """With several workers another process reads the values: they are flushed at once."""
    registry = CollectorRegistry()
    counter = Counter("c_total", "c", ["writer"], registry=registry)
    tally = Tally(eager=True)
    slot = tally.counter(counter.labels("hot"))
    for _ in range(3):
        tally.pending[slot] += 1
        tally.changed()  # one flush scheduled for all three
    assert _samples(registry, "hot")[("c_total", "")] == 0
    await asyncio.sleep(0)
    assert _samples(registry, "hot")[("c_total", "")] == 3
    assert tally.pending[slot] == 0


def test_a_moved_internal_is_named() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "h", ["x"], registry=registry).labels("a")
    with pytest.raises(PrivateShapeChanged, match=r"SimpleNamespace\._value"):
        check_shape(SimpleNamespace(), histogram)  # type: ignore[arg-type]
    with pytest.raises(PrivateShapeChanged, match=r"SimpleNamespace\._upper_bounds"):
        check_shape(
            Counter("c", "c", registry=registry),
            SimpleNamespace(_sum=1, _buckets=[]),  # type: ignore[arg-type]
        )
