"""Every record of a topic, read from its beginning to its current end (for erasure
tests: what a reader of the topic can still find)."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams import clients
from streams.client.topics import partitions_of
from streams.settings import Settings


async def topic_records(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record now in ``topic``, partition by partition."""
    partitions = [TopicPartition(topic, p) for p in await partitions_of(settings, topic)]
    if not partitions:
        return []
    consumer = clients.follower_consumer(settings, from_beginning=True)
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[tuple[bytes | None, bytes | None]] = []
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=2000)
            for records in batches.values():
                found += [(r.key, r.value) for r in records]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return found
    finally:
        await consumer.stop()


async def holds(settings: Settings, topic: str, marker: bytes) -> int:
    """How many records of ``topic`` hold ``marker`` in their key or value."""
    return sum(
        marker in (key or b"") or marker in (value or b"")
        for key, value in await topic_records(settings, topic)
    )
