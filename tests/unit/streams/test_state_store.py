from __future__ import annotations

from pathlib import Path

from processors.core.state import MemoryState
from streams.service.state import LocalStateStore


def test_state_round_trips_and_survives_reopening(tmp_path: Path) -> None:
    state = MemoryState(version=3, content="lives in Paris", content_hash="h", event_ids=("a", "b"))
    store = LocalStateStore(tmp_path / "db")
    assert store.get(None, "t/m") is None
    store.put(None, "t/m", state)
    assert store.get(None, "t/m") == state
    store.close()
    reopened = LocalStateStore(tmp_path / "db")
    assert reopened.get(None, "t/m") == state
    assert reopened.get(None, "t/other") is None
    reopened.close()
