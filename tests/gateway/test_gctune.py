"""A serving process tunes the garbage collector once started (gateway/gctune.py); an app
built for tests or the demo leaves the interpreter's collector as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway import gctune
from gateway.app import create_app
from tests.gateway.inprocess import settings_for


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.parametrize("tune", [True, False])
async def test_the_served_app_freezes_its_start_up_heap_and_collects_less_often(
        collector: None, tune: bool) -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    app = create_app(settings_for(), tune_gc=tune)
    async with app.router.lifespan_context(app):
        if tune:
            assert gc.get_freeze_count() > 10_000  # modules, schema, settings: frozen
            assert gc.get_threshold() == gctune.THRESHOLDS
            garbage = [[]]
            garbage[0].append(garbage)  # a cycle made after start is still collected
            del garbage
            assert gc.collect() >= 1
        else:
            assert gc.get_freeze_count() == 0
            assert gc.get_threshold() == before
