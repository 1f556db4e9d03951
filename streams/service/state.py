"""``memory_state`` and ``llm_cache`` in local rocksdict databases of the worker (not pure).

Why not a faust Table: in our SIGKILL tests faust-streaming 0.15.3's changelog
recovery twice left the restarted worker stuck (once decoding raw keys as JSON
on every changelog record, once never resuming one source partition), and a
worker that cannot restart loses nothing but stops everything. A local RocksDB
(write-ahead logged, so it survives SIGKILL) keeps the same ordering guarantees
without the recovery machinery; the state is rebuilt by replaying memory.events
into a fresh worker. See ARCHITECTURE.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict

from processors.core.state import MemoryState


class LocalStateStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), options=Options(raw_mode=True))

    def get(self, handle: Any, key: str) -> MemoryState | None:
        raw = self._db.get(key.encode())
        return MemoryState.from_dict(json.loads(raw)) if raw else None

    def put(self, handle: Any, key: str, state: MemoryState) -> None:
        self._db[key.encode()] = json.dumps(state.to_dict(), separators=(",", ":")).encode()

    def close(self) -> None:
        self._db.close()


class LocalCache:
    """``llm_cache``: answers by cache key, in a local rocksdict database.

    A cache, so losing it costs LLM requests, never correctness; kept local for the
    same reason as memory_state (no changelog recovery to hang a restart).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), options=Options(raw_mode=True))

    def get(self, key: str) -> bytes | None:
        value = self._db.get(key.encode())
        return bytes(value) if value is not None else None

    def put(self, key: str, value: bytes) -> None:
        self._db[key.encode()] = value

    def close(self) -> None:
        self._db.close()
