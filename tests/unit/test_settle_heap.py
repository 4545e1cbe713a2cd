"""The serving process's garbage-collector settings (gateway.app.settle_heap)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.app import GC_GEN0_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_the_startup_heap_is_frozen_and_young_collections_are_rarer() -> None:
    _, older, oldest = gc.get_threshold()
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_GEN0_THRESHOLD, older, oldest)


@pytest.mark.usefixtures("restored_gc")
def test_garbage_made_before_settling_is_collected_not_frozen() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.disable()  # the cycle must survive until settle_heap's own collection
    try:
        garbage = weakref.ref(Node())
        assert garbage() is not None
        settle_heap()
    finally:
        gc.enable()
    assert garbage() is None  # a frozen one would live on
