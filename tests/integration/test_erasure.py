"""Erasure on the real stack: what an erase leaves readable, and for how long."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from processors.adapters.kafka_sink import ResilientProducer
from processors.core.events import new_event
from streams import clients
from streams.client.topics import Topics
from streams.service.compaction import CompactionRoller
from tests.integration.conftest import NewPipeline
from tests.integration.harness import WorkerProcess, wait_for, weaviate_client
from tests.integration.test_pipeline import applied_acks, publish
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
            # history's partition, and every partition of the state and dead letters
            assert await roller.tick() == 1 + 2 * settings.events_partitions
            await asyncio.sleep(BOUND_MS / 2000)
        assert await holds(settings, history, b"erased") == 1  # the live record stays
    finally:
        await producer.stop()


async def _started(producer: ResilientProducer) -> ResilientProducer:
    return producer


MEMORIES = 500


async def test_a_tenant_erasure_leaves_nothing_of_the_tenant_anywhere(
    new_pipeline: NewPipeline, tmp_path: Path
) -> None:
    """500 memories of a tenant (each text with a marker), a neighbour tenant's beside
    them, a third tenant's memory with the marker, and a refused update with the marker
    (a dead letter) for each of the two; then `memory.erase_tenant` and an erase of the
    third's memory: one ack saying 500 were erased, the Weaviate tenant gone, and after
    the compaction bound no topic but memory.events (the log, kept by rule) holds the
    marker; the neighbour keeps everything."""
    settings, topics = await new_pipeline(compaction_bound_ms=BOUND_MS, history_partitions=2)
    gone, kept = f"gone-{uuid.uuid4().hex[:8]}", f"kept-{uuid.uuid4().hex[:8]}"
    marker = f"mk{uuid.uuid4().hex}"
    events = [
        new_event("memory.add", gone, content=f"{marker} note {i} about tea", memory_id=f"m{i}")
        for i in range(MEMORIES)
    ]
    events += [new_event("memory.add", kept, content=f"kept note {i}") for i in range(20)]
    # a memory of another tenant erased alone, with the marker in its text
    alone = f"alone-{uuid.uuid4().hex[:8]}"
    events.append(new_event("memory.add", alone, content=f"{marker} alone", memory_id="a1"))
    # refused updates with the marker: dead letters of a memory of each tenant
    refused = [
        new_event("memory.update", t, memory_id=m, content=f"{marker} refused", agent_id="x")
        for t, m in ((gone, "m1"), (alone, "a1"))
    ]
    refused_raw = [
        (e.tenant.encode(), e.to_json().replace(b'"agent_id":"x"', b'"agent_id":"not ok!"'))
        for e in refused
    ]
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, [(e.tenant.encode(), e.to_json()) for e in events])
        await publish(settings, refused_raw)
        await wait_for(
            topics.all,
            lambda: (
                len(applied_acks(topics)) >= len(events) and len(topics.deadletter.records) >= 2
            ),
            300,
            f"{len(events)} applied acks and 2 dead letters",
            worker,
        )
        assert (
            await holds(settings, Topics.from_settings(settings).deadletter, marker.encode()) == 2
        )
        erasure = new_event("memory.erase_tenant", gone)
        erase_one = new_event("memory.erase", alone, memory_id="a1")
        await publish(
            settings, [(gone.encode(), erasure.to_json()), (alone.encode(), erase_one.to_json())]
        )
        await wait_for(
            topics.all,
            lambda: any(a["event_id"] == erasure.event_id for a in topics.indexed.json_values()),
            120,
            "the tenant erasure's ack",
            worker,
        )
        (ack,) = [a for a in topics.indexed.json_values() if a["event_id"] == erasure.event_id]
        assert (ack["outcome"], ack["erased"], ack["memory_id"]) == ("applied", MEMORIES, None)
        with weaviate_client(settings) as client:
            tenants = client.collections.use(settings.weaviate_collection).tenants.get()
            assert gone not in tenants and kept in tenants
        # after the bound (the worker rolls the compacted topics), nothing is left
        t = Topics.from_settings(settings)
        scanned = [t.history, t.state, t.indexed, t.deadletter, t.enrich, t.enriched]
        deadline = time.monotonic() + 120
        while left := {topic: await holds(settings, topic, marker.encode()) for topic in scanned}:
            left = {topic: n for topic, n in left.items() if n}
            if not left:
                break
            assert time.monotonic() < deadline, f"marker still in {left}"
            await asyncio.sleep(2)
        # the log keeps what was published, by rule (ARCHITECTURE.md, "Erasure")
        assert await holds(settings, t.events, marker.encode()) == MEMORIES + 3
        assert await holds(settings, t.history, kept.encode()) >= 20
    finally:
        worker.stop()
