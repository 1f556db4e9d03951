"""The SDK (AgentMem, AgentMemSync) and its publisher and reader, on injected fakes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from processors.core.events import EventType, Mode, new_event
from streams.client.publisher import EventPublisher
from streams.client.reader import WeaviateReader
from streams.client.sdk import AgentMem, AgentMemSync
from tests.unit.streams.fakes import FakeSdk, memory, settings


async def test_start_and_stop_every_collaborator_acks_first() -> None:
    fake = FakeSdk()
    async with fake.sdk:
        pass
    assert fake.calls.log == [
        "start acks",
        "start history",
        "start publisher",
        "start reader",
        "stop publisher",
        "stop acks",
        "stop history",
        "stop reader",
    ]


async def test_add_publishes_an_add_event_with_every_field() -> None:
    fake = FakeSdk()
    event_id = await fake.sdk.add(
        "tenant-a",
        "likes tea",
        memory_id="m1",
        agent_id="agent",
        run_id="run",
        metadata={"k": "v"},
        mode="intelligent",
        vector=[0.5, 0.5],
    )
    (event,) = fake.publisher.events
    assert event.event_id == event_id
    assert event.type == EventType.ADD and event.tenant == "tenant-a"
    assert (event.content, event.memory_id, event.agent_id, event.run_id) == (
        "likes tea",
        "m1",
        "agent",
        "run",
    )
    assert event.metadata == {"k": "v"} and event.mode == Mode.INTELLIGENT
    assert event.vector == [0.5, 0.5]


async def test_update_delete_erase_publish_their_event_types() -> None:
    fake = FakeSdk()
    await fake.sdk.update("t", "m1", "new text", metadata={"a": 1}, agent_id="ag", run_id="r")
    await fake.sdk.delete("t", "m1")
    await fake.sdk.erase("t", "m1")
    update, delete, erase = fake.publisher.events
    assert update.type == EventType.UPDATE and update.content == "new text"
    assert update.metadata == {"a": 1} and (update.agent_id, update.run_id) == ("ag", "r")
    assert delete.type == EventType.DELETE and delete.memory_id == "m1"
    assert erase.type == EventType.ERASE and erase.memory_id == "m1"


async def test_erase_tenant_publishes_a_tenant_erasure() -> None:
    fake = FakeSdk()
    event_id = await fake.sdk.erase_tenant("t")
    (event,) = fake.publisher.events
    assert (event.type, event.tenant, event.memory_id) == (EventType.ERASE_TENANT, "t", None)
    assert event.event_id == event_id
    assert {e.tenant for e in fake.publisher.events} == {"t"}


async def test_publish_returns_the_event_ids_in_order() -> None:
    fake = FakeSdk()
    events = [new_event(EventType.ADD, "t", content=f"n{i}") for i in range(5)]
    assert await fake.sdk.publish(events) == [e.event_id for e in events]
    assert fake.publisher.events == events


async def test_wait_indexed_returns_the_acks_and_times_out_on_missing_ones() -> None:
    fake = FakeSdk()
    fake.acks.auto = None
    fake.acks.acks["e1"] = {"event_id": "e1", "outcome": "applied", "version": 3}
    assert (await fake.sdk.wait_indexed(["e1"], timeout_s=0.1))["e1"]["version"] == 3
    with pytest.raises(TimeoutError, match="1 of 2"):
        await fake.sdk.wait_indexed(["e1", "e2"], timeout_s=0.1)


async def test_search_embeds_the_query_and_passes_the_filters() -> None:
    fake = FakeSdk()
    fake.reader.put("t", memory("m1"))
    found = await fake.sdk.search(
        "t", "tea?", limit=3, agent_id="a", run_id="r", filters={"k": 1}, alpha=0.2
    )
    assert [m.memory_id for m in found] == ["m1"]
    assert fake.embedder.texts == ["tea?"]
    assert fake.reader.searches == [
        {
            "tenant": "t",
            "query": "tea?",
            "vector": [4.0, 1.0],
            "limit": 3,
            "alpha": 0.2,
            "fusion": "ranked",  # the default
            "agent_id": "a",
            "run_id": "r",
            "metadata": {"k": 1},
        }
    ]


async def test_search_passes_the_fusion_and_refuses_bad_options() -> None:
    fake = FakeSdk()
    await fake.sdk.search("t", "tea", alpha=0.0, fusion="ranked")
    assert (fake.reader.searches[0]["alpha"], fake.reader.searches[0]["fusion"]) == (0.0, "ranked")
    with pytest.raises(ValueError, match="fusion must be one of relative_score, ranked"):
        await fake.sdk.search("t", "tea", fusion="rrf")
    with pytest.raises(ValueError, match=r"alpha must be between 0 and 1, not 1\.5"):
        await fake.sdk.search("t", "tea", alpha=1.5)
    assert len(fake.reader.searches) == 1  # nothing searched on a bad option


async def test_get_and_history_read_their_sources() -> None:
    fake = FakeSdk()
    fake.reader.put("t", memory("m1", "likes tea"))
    fake.history.changes["t/m1"] = [{"version": 1}, {"version": 2}]
    found = await fake.sdk.get("t", "m1")
    assert found is not None and found.content == "likes tea"
    assert await fake.sdk.get("t", "nope") is None
    assert await fake.sdk.get("other", "m1") is None
    assert await fake.sdk.history("t", "m1") == [{"version": 1}, {"version": 2}]
    assert await fake.sdk.history("t", "m2") == []


async def test_readiness_of_weaviate_and_kafka() -> None:
    fake = FakeSdk()
    assert await fake.sdk.weaviate_ready() and await fake.sdk.kafka_ready()
    fake.reader.is_ready = False
    fake.acks.kafka_down = True
    assert not await fake.sdk.weaviate_ready()
    assert not await fake.sdk.kafka_ready(timeout_s=0.1)


def test_collaborators_not_given_are_built_from_settings_without_connecting() -> None:
    sdk = AgentMem(settings(topic_prefix="x."))
    assert isinstance(sdk.publisher, EventPublisher) and sdk.publisher.topic == "x.memory.events"
    assert isinstance(sdk.reader, WeaviateReader)


def test_sync_sdk_runs_the_async_one_on_its_own_loop() -> None:
    fake = FakeSdk()
    fake.reader.put("t", memory("m1"))
    fake.history.changes["t/m1"] = [{"version": 1}]
    mem = AgentMemSync(settings(), client=fake.sdk)
    try:
        event_id = mem.add("t", "likes tea", memory_id="m1")
        assert mem.update("t", "m1", "likes coffee") != event_id
        mem.delete("t", "m1")
        mem.erase("t", "m1")
        assert mem.publish([new_event(EventType.ADD, "t", content="x")])
        assert mem.wait_indexed([event_id])[event_id]["outcome"] == "applied"
        assert [m.memory_id for m in mem.search("t", "tea")] == ["m1"]
        found = mem.get("t", "m1")
        assert found is not None and found.memory_id == "m1"
        assert mem.history("t", "m1") == [{"version": 1}]
    finally:
        mem.close()
    assert len(fake.publisher.events) == 5
    assert fake.calls.log[-1] == "stop reader"


def test_sync_sdk_builds_its_client_from_the_collaborators() -> None:
    fake = FakeSdk()
    with AgentMemSync(
        settings(),
        publisher=fake.publisher,
        acks=fake.acks,
        history=fake.history,
        reader=fake.reader,
        embedder=fake.embedder,
    ) as mem:
        mem.add("t", "x")
    assert fake.publisher.started and fake.publisher.stopped


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[bytes | None, bytes | None]]]] = []
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def send_all(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
    ) -> None:
        self.sent.append((topic, list(records)))


async def test_publisher_sends_tenant_keyed_json_to_memory_events() -> None:
    producer = FakeProducer()
    events = [new_event(EventType.ADD, f"t{i}", content="x") for i in range(3)]
    async with EventPublisher(settings(topic_prefix="p."), producer=producer) as publisher:
        assert producer.running
        assert await publisher.publish(events[0]) == events[0].event_id
        assert await publisher.publish_many(events[1:]) == [e.event_id for e in events[1:]]
        await publisher.publish_raw(None, b"not json")
    assert not producer.running
    (topic, one), (_, two), (_, raw) = producer.sent
    assert topic == "p.memory.events"
    assert one == [(b"t0", events[0].to_json())]
    assert [json.loads(v or b"")["tenant"] for _, v in two] == ["t1", "t2"]
    assert raw == [(None, b"not json")]


class FakeWeaviate:
    def __init__(self) -> None:
        self.connected = self.closed = False

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.closed = True

    async def is_ready(self) -> bool:
        return self.connected and not self.closed


async def test_weaviate_reader_owns_its_client() -> None:
    client = FakeWeaviate()
    made: list[Any] = []

    def factory(config: Any) -> Any:
        made.append(config)
        return client

    reader = WeaviateReader(settings(), client_factory=factory)
    assert not await reader.ready()
    with pytest.raises(RuntimeError, match="start"):
        await reader.get("t", "m")
    await reader.start()
    assert client.connected and await reader.ready() and len(made) == 1
    await reader.stop()
    assert client.closed
