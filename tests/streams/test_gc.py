"""The worker's garbage collection setting."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from handoff.config import WorkerSettings
from handoff.ops.gc import tune_gc


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_default_collects_young_objects_far_less_often_than_python() -> None:
    tune_gc(WorkerSettings().gc_threshold)
    assert gc.get_threshold()[0] == 50_000


def test_zero_keeps_pythons_settings() -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10)
