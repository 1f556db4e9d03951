"""memory_state recomputed from ``memory.events`` alone, for when its changelog is gone
(the topic deleted, a wrong retention, a new cluster restored from the log). Not pure
(reads Kafka); the rules are :func:`processors.core.plan.plan_batch`'s, so the states are
those the index stage would have left, positions included.

Used by the worker when a partition the group has applied comes with no state at all
(never silently empty), and by ``agentmem state rebuild --from-events``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from aiokafka import TopicPartition

from processors.core.events import MemoryEvent
from processors.core.plan import plan_batch
from processors.core.state import MemoryState
from processors.core.validation import Limits, check_key, parse_event
from processors.ports import StateWrite
from streams import clients
from streams.settings import Settings

__all__ = ["committed_offsets", "replay_partition", "states_of"]

log = logging.getLogger(__name__)

#: Events planned together while replaying (the plan of one batch).
REPLAY_BATCH = 2000


def states_of(
    records: Iterable[tuple[int, bytes | None, bytes | None, int | None]],
    limits: Limits,
    batch: int = REPLAY_BATCH,
) -> dict[str, MemoryState]:
    """The state each memory is left in by ``records`` (offset, key, value, timestamp ms)
    of one partition, in order. Pure."""
    states: dict[str, MemoryState] = {}
    chunk: list[tuple[int, MemoryEvent]] = []
    stamp = datetime.fromtimestamp(0, UTC)

    def flush() -> None:
        plan = plan_batch(
            chunk,
            states.get,
            stamp,
            lambda offset: offset,
            lambda tenant: [k for k in states if k.startswith(f"{tenant}/")],
        )
        for key, (_, after) in plan.states.items():
            states[key] = after
        chunk.clear()

    for offset, key, value, timestamp_ms in records:
        parsed = parse_event(value, limits)
        if not isinstance(parsed, MemoryEvent) or check_key(key, parsed) is not None:
            continue
        if timestamp_ms is not None:
            stamp = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        chunk.append((offset, parsed))
        if len(chunk) >= batch:
            flush()
    if chunk:
        flush()
    return states


async def committed_offsets(settings: Settings) -> dict[int, int]:
    """The worker group's committed position on each memory.events partition."""
    events = settings.topic("memory.events")
    admin = clients.kafka_admin(settings)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(settings.worker_id)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in found.items() if tp.topic == events}


async def replay_partition(
    settings: Settings, partition: int, upto: int, limits: Limits
) -> tuple[list[StateWrite], int]:
    """The states of ``partition`` after its events before offset ``upto``, and how
    many events were read."""
    tp = TopicPartition(settings.topic("memory.events"), partition)
    consumer = clients.follower_consumer(settings, from_beginning=True)
    await consumer.start()
    records: list[tuple[int, bytes | None, bytes | None, int | None]] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        while await consumer.position(tp) < upto:
            fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
            records += [
                (m.offset, m.key, m.value, m.timestamp)
                for m in fetched.get(tp, [])
                if m.offset < upto
            ]
    finally:
        await consumer.stop()
    states = states_of(records, limits)
    writes = [StateWrite(partition, key, state) for key, state in sorted(states.items())]
    return writes, len(records)
