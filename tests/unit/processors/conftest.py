"""Each test's batches start a log of their own (offsets from 0)."""

from __future__ import annotations

import pytest

from tests.unit.processors.test_index_stage import NEXT_OFFSET


@pytest.fixture(autouse=True)
def fresh_log() -> None:
    NEXT_OFFSET.clear()
