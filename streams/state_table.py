"""The ``memory_state`` faust table behind the index stage's StateStore protocol.

faust's rocksdb store picks the partition of a read or write from the *current
event*. Inside a ``take_events`` batch that would be the batch's last event, so
each access here runs with the event the key arrived with as the current event:
the state of a memory then lives in the partition of its tenant, like its events.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event

from processors.state import MemoryState


@contextmanager
def _as_current(event: Any) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class TableStateStore:
    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, handle: Any, key: str) -> MemoryState | None:
        with _as_current(handle):
            raw = self.table.get(key.encode())
        return MemoryState.from_dict(json.loads(raw)) if raw else None

    def put(self, handle: Any, key: str, state: MemoryState) -> None:
        value = json.dumps(state.to_dict(), separators=(",", ":")).encode()
        with _as_current(handle):
            self.table[key.encode()] = value
