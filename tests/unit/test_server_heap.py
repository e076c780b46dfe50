"""Start-up objects are frozen out of the garbage collector's generations (no full-heap walks mid-request)."""
from __future__ import annotations

import gc

from proxy.server import GC_THRESHOLDS, freeze_heap


def test_freeze_heap_moves_live_objects_to_the_permanent_generation() -> None:
    survivors = [{"detector": i} for i in range(1000)]      # stands in for what start-up builds
    gc.unfreeze()
    before = gc.get_threshold()
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(survivors)
        assert gc.get_threshold() == GC_THRESHOLDS     # fewer young collections while serving
        # garbage made after the freeze is still collected as usual
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
