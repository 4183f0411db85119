"""The hot-path metric updates leave exactly the samples prometheus_client's own calls leave."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.server.hot_metrics import PrivateShapeChanged, adder, check_shape, observer

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
    add, up_down, observe = (
        adder(counter.labels("hot")), adder(gauge.labels("hot")), observer(histogram.labels("hot"))
    )  # fmt: skip
    for amount in AMOUNTS:
        counter.labels("client").inc()
        add(1)
        gauge.labels("client").inc()
        up_down(1)
        histogram.labels("client").observe(amount)
        observe(amount)
    gauge.labels("client").dec()
    up_down(-1)
    assert _samples(registry, "hot") == _samples(registry, "client")
    assert _samples(registry, "hot")[("h_seconds_bucket", "0.005")] == 4  # 0.005, below, 0, -1


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
