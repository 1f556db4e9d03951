"""Erasure on the real stack: what an erase leaves readable, and for how long."""

from __future__ import annotations

import asyncio
import time
import uuid

from processors.adapters.kafka_sink import ResilientProducer
from streams import clients
from streams.client.topics import Topics
from streams.service.compaction import CompactionRoller
from tests.integration.conftest import NewPipeline
from tests.integration.topic_scan import holds

BOUND_MS = 2000


async def test_a_tombstoned_text_is_compacted_away_within_the_bound_on_a_quiet_partition(
    new_pipeline: NewPipeline,
) -> None:
    """History is compacted; Kafka compacts rolled segments only, and rolls on an
    append: the worker's roll tombstones make a quiet partition roll, so a tombstoned
    change is gone from a read of the topic within the bound (plus the cleaner's
    backoff), though nothing else is written there."""
    settings, _ = await new_pipeline(compaction_bound_ms=BOUND_MS, history_partitions=1)
    history = Topics.from_settings(settings).history
    marker = f"marker-{uuid.uuid4().hex}".encode()
    producer = clients.resilient_producer(settings)
    await producer.start()
    try:
        await producer.send_all(history, [(b"t/m/1", b'{"after": "' + marker + b'"}')])
        await producer.send_all(history, [(b"t/m/1", None), (b"t/m/2", b'{"after": "erased"}')])
        assert await holds(settings, history, marker) == 1
        roller = CompactionRoller(settings, lambda: _started(producer))
        deadline = time.monotonic() + 120
        while await holds(settings, history, marker):
            assert time.monotonic() < deadline, "the tombstoned change was never compacted"
            assert await roller.tick() == 1 + settings.events_partitions
            await asyncio.sleep(BOUND_MS / 2000)
        assert await holds(settings, history, b"erased") == 1  # the live record stays
    finally:
        await producer.stop()


async def _started(producer: ResilientProducer) -> ResilientProducer:
    return producer
