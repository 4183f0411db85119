"""`settle_heap`: start-up objects leave the collector's reach, young collections get rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.server.app import GC_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_start_up_objects_are_frozen_and_thresholds_raised() -> None:
    built_at_start = [{"kept": n} for n in range(1000)]
    settle_heap()
    assert gc.get_freeze_count() >= len(built_at_start)
    assert gc.get_threshold() == GC_THRESHOLD
    assert not any(gc.is_tracked(obj) and obj in gc.get_objects() for obj in built_at_start[:3])
