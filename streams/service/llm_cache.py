"""``llm_cache``: the enrichment answers already paid for, in a local rocksdict
database in the worker's own state folder. Not pure.

A cache, so losing it costs LLM requests, never correctness: kept local and never
restored. Answers live under their scope (:mod:`processors.core.cache_scope`:
partition, then tenant), and what the worker may keep follows what it owns:

- an erase forgets the tenant's answers (``forget``), and the epoch it moves keeps
  answers asked for before the erase from being cached after it;
- a partition's answers are forgotten when the partition goes (``release``) and when
  it comes (``take``) unless the worker owned it without a break: whoever owned it
  meanwhile may have erased there, and only the owner's copy hears of an erase. At
  start nothing is owned, so a worker begins with none of the answers of an earlier run.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from rocksdict import Options, Rdict

from processors.core.cache_scope import partition_prefix

__all__ = ["LocalCache", "prefix_end"]

log = logging.getLogger(__name__)


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key after every key that starts with ``prefix`` (non-empty, and
    its last byte below 0xff). Pure."""
    if not prefix or prefix[-1] == 0xFF:
        raise ValueError(f"no simple end for prefix {prefix!r}")
    return prefix[:-1] + bytes([prefix[-1] + 1])


class LocalCache:
    """Implements :class:`processors.ports.Cache` and :class:`processors.ports.Forgetting`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), options=Options(raw_mode=True))
        self._epoch = 0
        self._held: set[int] = set()

    def get(self, key: str) -> bytes | None:
        value = self._db.get(key.encode())
        return bytes(value) if value is not None else None

    def put(self, key: str, value: bytes) -> None:
        self._db[key.encode()] = value

    def epoch(self) -> int:
        return self._epoch

    def forget(self, prefix: str) -> None:
        """Every answer under ``prefix``, gone from every later read."""
        start = prefix.encode()
        self._db.delete_range(start, prefix_end(start))
        self._epoch += 1

    def take(self, partitions: Collection[int]) -> None:
        """The worker owns ``partitions`` now: the answers of those it did not own
        without a break until now are forgotten first."""
        for partition in sorted(set(partitions) - self._held):
            self.forget(partition_prefix(partition))
        self._held |= set(partitions)

    def release(self, partitions: Collection[int]) -> None:
        """``partitions`` went to another worker: their answers are forgotten."""
        for partition in sorted(partitions):
            self.forget(partition_prefix(partition))
        self._held -= set(partitions)

    def close(self) -> None:
        self._db.close()
