"""The worker against faults it must wait out or report: a Weaviate shard set READONLY
for a minute under load, and an agent that crashes (liveness)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import NewTopic

from processors.core.events import MemoryEvent, new_event
from streams import clients
from streams.client.publisher import EventPublisher
from streams.client.topics import Topics
from streams.settings import Settings
from tests.integration.harness import (
    PipelineTopics,
    WorkerProcess,
    isolated_settings,
    settings_env,
    wait_for,
    weaviate_objects,
)

LOCKED, OTHER = "ro-tenant", "rw-tenant"


def set_shard_status(settings: Settings, tenant: str, status: str) -> None:
    """Through the schema API, which names the collection itself, not its alias."""
    alias = settings.weaviate_collection
    found = httpx.get(f"{settings.weaviate_url}/v1/aliases/{alias}", timeout=10)
    collection = found.json()["class"] if found.status_code == 200 else alias
    url = f"{settings.weaviate_url}/v1/schema/{collection}/shards/{tenant}"
    response = httpx.put(url, json={"status": status}, timeout=10)
    assert response.status_code == 200, response.text


def acks_by_event(topics: PipelineTopics) -> dict[str, str]:
    return {a["event_id"]: a["outcome"] for a in topics.indexed.json_values()}


def locked_changes() -> list[MemoryEvent]:
    """Updates of m-0..9, deletes of m-10..19, erases of m-20..29, adds of m-40..49."""
    return [
        *(
            new_event("memory.update", LOCKED, content=f"changed {i}", memory_id=f"m-{i}")
            for i in range(0, 10)
        ),
        *(new_event("memory.delete", LOCKED, memory_id=f"m-{i}") for i in range(10, 20)),
        *(new_event("memory.erase", LOCKED, memory_id=f"m-{i}") for i in range(20, 30)),
        *(
            new_event("memory.add", LOCKED, content=f"new {i}", memory_id=f"m-{i}")
            for i in range(40, 50)
        ),
    ]


@pytest.fixture
def faulty(stack: Settings, tmp_path: Path) -> tuple[Settings, WorkerProcess]:
    settings = isolated_settings(stack, tmp_path / "state")
    return settings, WorkerProcess(settings, tmp_path / "worker.log")


async def test_a_read_only_shard_is_waited_out_without_loss(
    faulty: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = faulty
    worker.start()
    topics = PipelineTopics.open(settings)
    try:
        async with EventPublisher(settings) as pub:
            first = [
                new_event("memory.add", t, content=f"{t} memory {i}", memory_id=f"m-{i}")
                for t in (LOCKED, OTHER)
                for i in range(40)
            ]
            await pub.publish_many(first)
            ids = {e.event_id for e in first}
            await wait_for(
                topics.all, lambda: ids <= set(acks_by_event(topics)), 120, "the first adds", worker
            )

            set_shard_status(settings, LOCKED, "READONLY")
            locked_at = time.monotonic()
            changes = locked_changes()
            locked_ids = {e.event_id for e in changes}
            # load goes on, for both tenants, while the shard refuses writes
            for round_ in range(6):
                await pub.publish_many(changes[round_ * 7 : (round_ + 1) * 7])
                await pub.publish(new_event("memory.add", OTHER, content=f"more {round_}"))
                await asyncio.sleep(2)
            await pub.publish_many(changes[42:])
            while time.monotonic() - locked_at < 60:
                await asyncio.gather(*(r.poll() for r in topics.all))
                assert not locked_ids & set(acks_by_event(topics)), "acked while READONLY"
            # the objects to delete and erase are still there: nothing was acked for them
            held = weaviate_objects(settings, [LOCKED])[LOCKED]
            assert {f"m-{i}" for i in range(10, 30)} <= set(held)
            assert worker.health("/healthz")[0] == 200
            assert worker.metric("agentmem_retries_total", {"operation": "weaviate_object"}) > 0

            set_shard_status(settings, LOCKED, "READY")
            await wait_for(
                topics.all,
                lambda: locked_ids <= set(acks_by_event(topics)),
                120,
                "every change of the locked tenant",
                worker,
            )
        outcomes = acks_by_event(topics)
        assert {outcomes[i] for i in locked_ids} == {"applied"}
        assert topics.deadletter.records == []
        stored = weaviate_objects(settings, [LOCKED])[LOCKED]
        expected = {f"m-{i}": (f"changed {i}", 2) for i in range(10)}
        expected |= {f"m-{i}": (f"{LOCKED} memory {i}", 1) for i in range(30, 40)}
        expected |= {f"m-{i}": (f"new {i}", 1) for i in range(40, 50)}
        assert stored == expected
    finally:
        await topics.close()
        worker.stop()


async def test_a_crashed_agent_fails_liveness(stack: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(stack, tmp_path / "state", fault_crash_agent="index")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while worker.health("/healthz")[0] == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        status, problems = worker.health("/healthz")
        assert status == 503, worker.log_tail()
        assert "fault injected" in problems["crashed:index"]
        assert worker.health("/readyz")[0] == 503
        assert worker.metric("agentmem_agent_crashes_total", {"agent": "index"}) >= 1
        assert worker.metric("agentmem_worker_health", {"check": "live"}) == 0
    finally:
        worker.stop()


async def test_a_wrong_events_topic_stops_the_worker_with_the_fix(
    stack: Settings, tmp_path: Path
) -> None:
    """memory.events created with one partition before the first worker started (as a
    producer on a broker that auto-creates topics would): the worker refuses to run and
    says which topic and how to fix it."""
    settings = isolated_settings(stack, tmp_path / "state", events_partitions=4)
    events = Topics.from_settings(settings).events
    admin = clients.kafka_admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(events, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streams.cli", "worker"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"topic {events} has 1 partition(s), 4 expected" in done.stderr
    assert f"kafka-topics.sh --delete --topic {events}" in done.stderr
