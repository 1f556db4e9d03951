"""Smoke tests of each stack component through the clients the service uses."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import numpy as np
import weaviate
from weaviate.classes.config import Configure, DataType, Property
from weaviate.classes.data import DataObject
from weaviate.classes.tenants import Tenant

from streams import clients
from streams.settings import Settings
from streams.stack import supervisor


async def test_kafka_produce_and_consume(
    stack: Settings, topic_factory: Callable[..., Awaitable[str]]
) -> None:
    topic = await topic_factory(partitions=3)
    payloads = [f"message-{i}".encode() for i in range(50)]
    producer = clients.kafka_producer(stack)
    await producer.start()
    try:
        for i, payload in enumerate(payloads):
            await producer.send_and_wait(topic, payload, key=f"k{i % 5}".encode())
    finally:
        await producer.stop()
    consumer = clients.kafka_consumer(
        stack,
        topic,
        auto_offset_reset="earliest",
        group_id=f"test-{uuid.uuid4().hex}",
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(received) < len(payloads) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            received += [msg.value for msgs in batch.values() for msg in msgs if msg.value]
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(payloads)


def test_weaviate_tenants_do_not_see_each_other(weaviate_client: weaviate.WeaviateClient) -> None:
    name = f"Smoke{uuid.uuid4().hex[:10]}"
    collection = weaviate_client.collections.create(
        name,
        properties=[Property(name="content", data_type=DataType.TEXT)],
        vector_config=Configure.Vectors.self_provided(),
        multi_tenancy_config=Configure.multi_tenancy(enabled=True),
    )
    try:
        collection.tenants.create([Tenant(name="alice"), Tenant(name="bob")])
        rng = np.random.default_rng(7)
        for tenant in ("alice", "bob"):
            objects = [
                DataObject(
                    properties={"content": f"{tenant} memory {i}"},
                    vector=rng.normal(size=8).tolist(),
                )
                for i in range(5)
            ]
            result = collection.with_tenant(tenant).data.insert_many(objects)
            assert not result.errors
        for tenant, other in (("alice", "bob"), ("bob", "alice")):
            found = collection.with_tenant(tenant).query.near_vector(
                rng.normal(size=8).tolist(), limit=20
            )
            contents = [str(o.properties["content"]) for o in found.objects]
            assert len(contents) == 5
            assert all(c.startswith(tenant) for c in contents)
            assert not any(c.startswith(other) for c in contents)
    finally:
        weaviate_client.collections.delete(name)


def test_prometheus_sees_itself_up(stack: Settings) -> None:
    deadline = time.monotonic() + 60
    value = None
    while time.monotonic() < deadline:
        body = httpx.get(
            f"{stack.prometheus_url}/api/v1/query", params={"query": 'up{job="prometheus"}'}
        ).json()
        assert body["status"] == "success"
        if body["data"]["result"]:
            value = body["data"]["result"][0]["value"][1]
            if value == "1":
                break
        time.sleep(1)
    assert value == "1"


def test_model_pack_embeds_and_ranks_paraphrases(stack: Settings) -> None:
    embedder = clients.embedder(stack)
    vectors = np.array(
        embedder.embed(
            [
                "The cat is sleeping on the sofa.",
                "A kitten naps on the couch.",
                "Interest rates rose by half a percent this quarter.",
            ]
        )
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    paraphrase = float(vectors[0] @ vectors[1])
    unrelated = float(vectors[0] @ vectors[2])
    assert paraphrase > unrelated + 0.3


def test_runs_of_near_length_give_each_text_its_own_vector(stack: Settings) -> None:
    """A batch is embedded in runs sorted by length (text_batches.py): every vector
    must still belong to its text, and padding must not change it."""
    texts = [
        "x" * 3,
        "A long note about the trip to Lisbon in May, the hotel by the river and the "
        "tram up the hill to the castle, which the user wants to take again next year.",
        "Likes tea.",
        "Her sister's name is Ana and she lives in Porto.",
        "Allergic to peanuts.",
    ]
    embedder = clients.embedder(stack.model_copy(update={"embedding_run_size": 2}))
    together = np.array(embedder.embed(texts))
    alone = np.array([embedder.embed([text])[0] for text in texts])
    assert together.shape == (len(texts), 384)
    assert np.allclose(together, alone, atol=1e-4)
    # and not merely all alike: each text is nearest its own vector
    assert list(np.argmax(together @ alone.T, axis=1)) == list(range(len(texts)))


def test_stack_up_again_reuses_running_components(stack: Settings) -> None:
    outcome = supervisor.up(stack)
    assert set(outcome) == {"kafka", "weaviate", "prometheus"}
    assert all(state in ("reused", "foreign") for state in outcome.values())
    states = {r.name: r.state for r in supervisor.status(stack)}
    assert states == {
        name: "healthy" if outcome[name] == "reused" else "foreign" for name in outcome
    }
