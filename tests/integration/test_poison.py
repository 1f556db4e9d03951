"""Poison pills sent through real Kafka, as any client with access to the topic could
(no SDK: raw bytes and keys): each costs exactly itself, never a neighbour, and the
worker stays live and keeps indexing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.client.topics import ensure_topics
from streams.settings import Settings
from tests.integration.harness import (
    PipelineTopics,
    WorkerProcess,
    isolated_settings,
    wait_for,
    weaviate_objects,
)

TENANT = "poison-tenant"


@dataclass(frozen=True)
class Pill:
    name: str
    key: bytes | None
    value: bytes
    reason: str


def _event(**fields: object) -> dict[str, object]:
    return {
        "schema": "agentmem.memory/v1",
        "event_id": str(uuid.uuid4()),
        "type": "memory.add",
        "tenant": TENANT,
        "content": "a perfectly fine memory",
        **fields,
    }


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()  # ensure_ascii: "\ud800" stays an escape, as kcat sends it


def pills() -> list[Pill]:
    key = TENANT.encode()
    deep = "[" * 5_000 + "]" * 5_000
    return [
        Pill(
            "surrogate in content", key, _json(_event(content="bad \ud800 text")), "invalid_unicode"
        ),
        Pill(
            "surrogate in metadata key",
            key,
            _json(_event(metadata={"k\ud800": "v"})),
            "invalid_unicode",
        ),
        Pill("surrogate in event_id", key, _json(_event(event_id="id-\udfff")), "invalid_unicode"),
        Pill(
            "5,000-digit integer",
            key,
            _json(_event()).replace(b'"content"', b'"n": ' + b"9" * 5_000 + b', "content"'),
            "number_out_of_range",
        ),
        Pill(
            "nesting 5,000 deep",
            key,
            _json(_event()).replace(
                b'"content"', f'"metadata": {{"d": {deep}}}, "content"'.encode()
            ),
            "too_deep",
        ),
        Pill(
            "400-digit integer in vector",
            key,
            _json(_event(vector=[0.1] * 383)).replace(b"[0.1,", b"[" + b"7" * 400 + b", 0.1,", 1),
            "number_out_of_range",
        ),
        Pill(
            "an event of 1.5 MiB",
            key,
            _json(_event(content="x" * (1536 * 1024))),
            "event_too_large",
        ),
        Pill(
            "metadata of 400,000 '\"' characters",
            key,
            _json(_event(metadata={"q": '"' * 400_000})),
            "event_too_large",
        ),
        Pill("an empty value", key, b"", "empty_value"),
        Pill("a BOM-prefixed event", key, b"\xef\xbb\xbf" + _json(_event()), "invalid_json"),
        Pill("a JSON array", key, _json([_event()]), "not_an_object"),
        Pill("a null key", None, _json(_event()), "missing_key"),
        Pill("a key that is not the tenant", b"someone-else", _json(_event()), "key_mismatch"),
    ]


def valid(n: int) -> tuple[bytes, bytes, str]:
    doc = _event(content=f"neighbour memory number {n}", memory_id=f"n-{n}")
    return TENANT.encode(), _json(doc), str(doc["event_id"])


class RawPublisher:
    """A plain producer, as kcat would be: explicit partition, raw key and value."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic("memory.events")
        # deliberately not clients.kafka_producer: a raw client, with room for 1.5 MB pills
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            max_request_size=3 * 1024 * 1024,
        )

    async def __aenter__(self) -> RawPublisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, key: bytes | None, value: bytes, partition: int) -> tuple[int, int]:
        meta = await self.producer.send_and_wait(self.topic, value, key=key, partition=partition)
        return meta.partition, meta.offset


@pytest.fixture
def poisoned(stack: Settings, tmp_path: Path) -> tuple[Settings, WorkerProcess]:
    settings = isolated_settings(stack, tmp_path / "state")
    return settings, WorkerProcess(settings, tmp_path / "worker.log")


def _check_dead_letters(topics: PipelineTopics, sent: dict[tuple[int, int], Pill]) -> None:
    docs = {
        (d["source"]["partition"], d["source"]["offset"]): d
        for d in topics.deadletter.json_values()
    }
    assert set(docs) == set(sent)
    got = {sent[where].name: doc["reason"] for where, doc in docs.items()}
    assert got == {p.name: p.reason for p in sent.values()}
    for where, doc in docs.items():
        pill = sent[where]
        if doc.get("truncated"):
            assert doc["sha256"] == hashlib.sha256(pill.value).hexdigest()
            assert doc["original_size"] == len(pill.value)
    assert "internal_error" not in {d["reason"] for d in docs.values()}
    assert all(len(json.dumps(d).encode()) < 1024 * 1024 for d in docs.values())
    # the two whose dead letter would pass 1 MiB are stored truncated, and say so
    truncated = {sent[w].name for w, d in docs.items() if d.get("truncated")}
    assert {"an event of 1.5 MiB", "metadata of 400,000 '\"' characters"} <= truncated


def _applied(topics: PipelineTopics) -> set[str]:
    return {a["event_id"] for a in topics.indexed.json_values() if a["outcome"] == "applied"}


async def _no_retry_grows(worker: WorkerProcess) -> None:
    first = worker.metric("agentmem_retries_total")
    await asyncio.sleep(3)
    assert worker.metric("agentmem_retries_total") == first
    assert worker.health("/healthz") == (200, {})


async def _fresh_event_indexed(
    worker: WorkerProcess, topics: PipelineTopics, publisher: RawPublisher, partition: int
) -> float:
    key, value, event_id = valid(10_000)
    started = time.monotonic()
    await publisher.send(key, value, partition)
    await wait_for(
        topics.all,
        lambda: event_id in {a["event_id"] for a in topics.indexed.json_values()},
        30,
        "the fresh event's ack",
        worker,
    )
    return time.monotonic() - started


async def _wait_neighbours_and_pills(
    worker: WorkerProcess, topics: PipelineTopics, neighbours: list[str], dead: int, what: str
) -> None:
    """Until every neighbour is applied and there are at least ``dead`` dead letters."""
    await wait_for(
        topics.all,
        lambda: set(neighbours) <= _applied(topics) and len(topics.deadletter.records) >= dead,
        120,
        what,
        worker,
    )


async def test_each_pill_between_two_neighbours_costs_only_itself(
    poisoned: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = poisoned
    worker.start()
    topics = PipelineTopics.open(settings)
    try:
        async with RawPublisher(settings) as publisher:
            first_key, first_value, first_id = valid(0)
            partition, _ = await publisher.send(first_key, first_value, partition=0)
            neighbours, sent = [first_id], {}
            for n, pill in enumerate(pills(), start=1):
                sent[await publisher.send(pill.key, pill.value, partition)] = pill
                key, value, event_id = valid(n)
                await publisher.send(key, value, partition)
                neighbours.append(event_id)
            await _wait_neighbours_and_pills(
                worker,
                topics,
                neighbours,
                len(sent),
                "every neighbour's ack and every pill's dead letter",
            )
            assert _applied(topics) == set(neighbours)
            _check_dead_letters(topics, sent)
            stored = weaviate_objects(settings, [TENANT])[TENANT]
            assert set(stored) == {f"n-{n}" for n in range(len(neighbours))}
            assert await _fresh_event_indexed(worker, topics, publisher, partition) < 5
        await _no_retry_grows(worker)
    finally:
        await topics.close()
        worker.stop()


async def test_the_same_pills_inside_one_batch_of_256(
    poisoned: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = poisoned
    # The topics exist before the producer runs (our brokers do not create topics on
    # first use): created as the worker would create them.
    await ensure_topics(settings)
    topics = PipelineTopics.open(settings)
    try:
        async with RawPublisher(settings) as publisher:
            all_pills = pills()
            neighbours, sent = [], {}
            # Published before the worker starts, so that one batch takes them all.
            slots = set(range(0, 256, 256 // len(all_pills))[: len(all_pills)])
            queue = iter(all_pills)
            for i in range(256):
                if i in slots:
                    pill = next(queue)
                    sent[await publisher.send(pill.key, pill.value, 0)] = pill
                else:
                    key, value, event_id = valid(i)
                    await publisher.send(key, value, 0)
                    neighbours.append(event_id)
            assert len(neighbours) == 243
            worker.start()
            await _wait_neighbours_and_pills(
                worker, topics, neighbours, len(sent), "243 acks and 13 dead letters"
            )
            assert _applied(topics) == set(neighbours)
            _check_dead_letters(topics, sent)
            assert len(weaviate_objects(settings, [TENANT])[TENANT]) == 243
            assert worker.metric("agentmem_batch_size_count", {"stage": "index"}) >= 1
        await _no_retry_grows(worker)
    finally:
        await topics.close()
        worker.stop()
