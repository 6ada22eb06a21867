"""tune_gc: fewer young collections, startup objects frozen, thresholds restorable."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from parafka import tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.usefixtures("restore_gc")
def test_tuning_raises_the_young_threshold_and_freezes_what_exists() -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    before = tune_gc(50_000)
    assert before == (700, 10, 10)
    assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restore_gc")
def test_tuning_never_lowers_a_higher_threshold() -> None:
    gc.set_threshold(200_000, 20, 30)
    tune_gc(50_000)
    assert gc.get_threshold() == (200_000, 20, 30)
