"""A long-running process leaves its startup objects out of later garbage collections."""

from __future__ import annotations

import gc

from cli.startup import freeze_startup_objects


def test_startup_objects_are_frozen_out_of_collections() -> None:
    before = gc.get_freeze_count()
    freeze_startup_objects()
    try:
        assert gc.get_freeze_count() > max(before, 10_000)  # this test process's imports at least
    finally:
        gc.unfreeze()  # the test process goes on as it was
