"""Holding the compaction bound on quiet partitions.

Kafka compacts only rolled segments, and rolls the active segment only when a record
is appended after ``segment.ms``: a partition that nobody writes to keeps its last
records, erased texts included, for as long as it stays quiet. So the worker appends a
tombstone for a key no memory can have to every partition of the compacted topics it
writes (``memory.history``, ``memory.state``, ``memory.deadletter``) every half of
``AGENTMEM_COMPACTION_BOUND_MS``: a superseded or tombstoned record is then compacted
within the bound plus the broker's cleaner backoff (``log.cleaner.backoff.ms``).

Readers ignore these records: a tombstone for a key that holds nothing changes
nothing (``\\x1f`` is in no tenant name, so no memory's key collides with them).

:func:`roll_plan` is pure; :class:`CompactionRoller` writes to Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from processors.adapters.kafka_sink import ResilientProducer
from streams.client.topics import Topics, partitions_of
from streams.settings import Settings

__all__ = ["ROLL_KEYS", "CompactionRoller", "roll_interval_s", "roll_plan"]

log = logging.getLogger(__name__)

#: The key of the roll tombstone in each compacted topic, shaped like the topic's keys
#: (history: ``tenant/memory/version``; state: ``tenant/memory``) so that every reader
#: parses it, and outside every tenant.
ROLL_KEYS = {
    "memory.history": b"\x1froll/-/0",
    "memory.state": b"\x1froll/-",
    "memory.deadletter": b"\x1f\x1froll",  # no tenant, no memory: no erase prefix
}


def roll_interval_s(settings: Settings) -> float:
    """How often the tombstones go out: half the bound, at least a second."""
    return max(1.0, settings.compaction_bound_ms / 2000)


def roll_plan(
    settings: Settings, partitions: Mapping[str, list[int]]
) -> list[tuple[str, int, bytes]]:
    """(topic, partition, key) of every roll tombstone, given each compacted topic's
    partitions by short name. Pure."""
    t = Topics.from_settings(settings)
    names = {
        "memory.history": t.history,
        "memory.state": t.state,
        "memory.deadletter": t.deadletter,
    }
    return [
        (names[short], partition, ROLL_KEYS[short])
        for short in ROLL_KEYS
        for partition in partitions.get(short, [])
    ]


class CompactionRoller:
    """Sends the roll tombstones (``tick``, from a worker timer) through the worker's
    producer; the partitions are looked up once, then on each failure."""

    def __init__(
        self, settings: Settings, producer: Callable[[], Awaitable[ResilientProducer]]
    ) -> None:
        self.settings = settings
        self._producer = producer
        self._partitions: dict[str, list[int]] = {}

    async def tick(self) -> int:
        """One round: a tombstone to each partition; returns how many were sent."""
        try:
            if not self._partitions:
                t = Topics.from_settings(self.settings)
                self._partitions = {
                    "memory.history": await partitions_of(self.settings, t.history),
                    "memory.state": await partitions_of(self.settings, t.state),
                    "memory.deadletter": await partitions_of(self.settings, t.deadletter),
                }
            producer = await self._producer()
            plan = roll_plan(self.settings, self._partitions)
            await asyncio.gather(
                *(producer.send_all(topic, [(key, None)], partition=p) for topic, p, key in plan)
            )
            return len(plan)
        except Exception as exc:  # noqa: BLE001  # a missed round is made up by the next
            self._partitions = {}
            log.warning("compaction roll: %s: %s", type(exc).__name__, exc)
            return 0
