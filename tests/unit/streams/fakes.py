"""Fakes of the SDK's collaborators and of a Kafka consumer, shared by the unit tests
of streams/ (SDK, HTTP API, topic followers): no Kafka, no Weaviate, no model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from pydantic import SecretStr

from processors.adapters.weaviate.reader import Memory
from processors.core.events import MemoryEvent
from processors.core.search import DEFAULT_ALPHA, DEFAULT_FUSION, Fusion
from streams.client.sdk import AgentMem
from streams.settings import Settings

API_KEYS = "key-a=tenant-a,tenant-b;key-admin=*"


def settings(**overrides: Any) -> Settings:
    return Settings(api_keys=SecretStr(API_KEYS), api_wait_timeout_s=1.0, **overrides)


def memory(memory_id: str, content: str = "likes tea", **fields: Any) -> Memory:
    values: dict[str, Any] = {
        "memory_id": memory_id,
        "content": content,
        "score": None,
        "agent_id": None,
        "run_id": None,
        "metadata": {},
        "version": 1,
        "facts": [],
        "importance": None,
    }
    return Memory(**{**values, **fields})


class Calls:
    """The lifecycle calls of every fake, in order (start and stop order tests)."""

    def __init__(self) -> None:
        self.log: list[str] = []


class FakeLifecycle:
    def __init__(self, name: str, calls: Calls | None = None) -> None:
        self.name, self.calls = name, calls or Calls()
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True
        self.calls.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.stopped = True
        self.calls.log.append(f"stop {self.name}")


class FakePublisher(FakeLifecycle):
    """Keeps what it is given; ``fail_with`` makes every publish raise it."""

    def __init__(self, calls: Calls | None = None) -> None:
        super().__init__("publisher", calls)
        self.events: list[MemoryEvent] = []
        self.fail_with: Exception | None = None

    async def publish(self, event: MemoryEvent) -> str:
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: Sequence[MemoryEvent]) -> list[str]:
        if self.fail_with is not None:
            raise self.fail_with
        self.events.extend(events)
        return [e.event_id for e in events]


class FakeAcks(FakeLifecycle):
    """Acks by event id; ``auto`` acks every event asked for with that outcome."""

    def __init__(self, calls: Calls | None = None, auto: str | None = "applied") -> None:
        super().__init__("acks", calls)
        self.acks: dict[str, dict[str, Any]] = {}
        self.auto = auto
        self.kafka_down = False

    async def wait(self, event_ids: Sequence[str], timeout_s: float) -> dict[str, dict[str, Any]]:
        if self.auto is not None:
            for e in event_ids:
                self.acks.setdefault(e, {"event_id": e, "outcome": self.auto, "version": 1})
        missing = [e for e in event_ids if e not in self.acks]
        if missing:
            raise TimeoutError(f"{len(missing)} of {len(event_ids)} events not indexed yet")
        return {e: self.acks[e] for e in event_ids}

    async def catch_up(self, timeout_s: float = 10.0) -> None:
        if self.kafka_down:
            raise ConnectionError("broker away")


class FakeHistory(FakeLifecycle):
    def __init__(self, calls: Calls | None = None) -> None:
        super().__init__("history", calls)
        self.changes: dict[str, list[dict[str, Any]]] = {}
        self.catching_up = False

    async def history(self, tenant: str, memory_id: str) -> list[dict[str, Any]]:
        if self.catching_up:
            raise TimeoutError("not caught up")
        return self.changes.get(f"{tenant}/{memory_id}", [])


class FakeReader(FakeLifecycle):
    """Memories by tenant; a search returns the tenant's memories and records its call."""

    def __init__(self, calls: Calls | None = None) -> None:
        super().__init__("reader", calls)
        self.memories: dict[str, dict[str, Memory]] = {}
        self.searches: list[dict[str, Any]] = []
        self.is_ready = True

    def put(self, tenant: str, found: Memory) -> None:
        self.memories.setdefault(tenant, {})[found.memory_id] = found

    async def search(
        self,
        tenant: str,
        query: str,
        vector: list[float],
        *,
        limit: int = 10,
        alpha: float = DEFAULT_ALPHA,
        fusion: Fusion = DEFAULT_FUSION,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[Memory]:
        self.searches.append(
            {
                "tenant": tenant,
                "query": query,
                "vector": vector,
                "limit": limit,
                "alpha": alpha,
                "fusion": fusion,
                "agent_id": agent_id,
                "run_id": run_id,
                "metadata": metadata,
            }
        )
        return list(self.memories.get(tenant, {}).values())[:limit]

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        return self.memories.get(tenant, {}).get(memory_id)

    async def ready(self) -> bool:
        return self.is_ready


class FakeEmbedder:
    """A vector of the text's length, so a test can tell which text was embedded."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> list[list[float]]:
        self.texts.extend(texts)
        return [[float(len(t)), 1.0] for t in texts]


class FakeSdk:
    """An :class:`AgentMem` on fakes, with the fakes at hand."""

    def __init__(self, config: Settings | None = None) -> None:
        self.calls = Calls()
        self.publisher = FakePublisher(self.calls)
        self.acks = FakeAcks(self.calls)
        self.history = FakeHistory(self.calls)
        self.reader = FakeReader(self.calls)
        self.embedder = FakeEmbedder()
        self.sdk = AgentMem(
            config or settings(),
            publisher=self.publisher,
            acks=self.acks,
            history=self.history,
            reader=self.reader,
            embedder=self.embedder,
        )


# -- Kafka ------------------------------------------------------------------------------


def record(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic, partition, offset, 0, 0, key, value, None, len(key or b""), len(value or b""), []
    )


def ack(event_id: str, outcome: str = "applied", version: int = 1) -> bytes:
    return json.dumps({"event_id": event_id, "outcome": outcome, "version": version}).encode()


class FakeConsumer:
    """An assigned-partitions consumer over an in-memory log per partition.

    ``stalled`` makes getmany return nothing (a consumer that cannot fetch)."""

    def __init__(self, topic: str, partitions: int = 2) -> None:
        self.topic = topic
        self.log: dict[int, list[ConsumerRecord[bytes, bytes]]] = {p: [] for p in range(partitions)}
        self.positions: dict[TopicPartition, int] = {}
        self.started = self.stopped = self.stalled = False

    def append(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        records = self.log[partition]
        records.append(record(self.topic, partition, len(records), key, value))

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = {tp: 0 for tp in partitions}

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = 0

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = len(self.log[tp.partition])

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log[tp.partition]) for tp in partitions}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        if not self.stalled:
            for tp, at in self.positions.items():
                new = self.log[tp.partition][at:]
                if new:
                    batch[tp] = new
                    self.positions[tp] = at + len(new)
        if not batch:
            await asyncio.sleep(0.01)
        return batch

    async def partitions(self) -> list[int]:
        """The partition lookup a follower is given."""
        return sorted(self.log)
