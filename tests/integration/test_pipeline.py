"""The fast-mode pipeline end to end: a real worker process, Kafka and Weaviate."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from processors.core.events import new_event
from streams import clients
from streams.settings import Settings
from streams.stack import process, supervisor
from streams.stack.components import Weaviate
from tests.integration.harness import (
    PipelineTopics,
    WorkerProcess,
    isolated_settings,
    wait_for,
    weaviate_objects,
)
from tests.integration.scenario import Expected, Scenario, generate


async def publish(settings: Settings, events: Sequence[tuple[bytes, bytes]]) -> None:
    producer = clients.kafka_producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic("memory.events"), value, key=key)
            for key, value in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def dead_letter_reasons(topics: PipelineTopics) -> dict[bytes, str]:
    reasons = {}
    for doc in topics.deadletter.json_values():
        raw = (
            base64.b64decode(doc["value"])
            if doc["value_encoding"] == "base64"
            else doc["value"].encode()
        )
        reasons[raw] = doc["reason"]
    return reasons


def accepted_acks(topics: PipelineTopics) -> list[dict[str, object]]:
    """Acks of applied and no-op events (not of rejected ones)."""
    return [a for a in topics.indexed.json_values() if not a["outcome"].startswith("rejected")]


def applied_acks(topics: PipelineTopics) -> list[str]:
    return [a["event_id"] for a in topics.indexed.json_values() if a["outcome"] == "applied"]


async def drain(
    topics: PipelineTopics,
    exp: Expected,
    worker: WorkerProcess,
    rounds: int = 1,
    timeout_s: float = 600,
) -> None:
    """Wait until every valid event was acknowledged and every invalid one dead-lettered."""
    valid = len(exp.applied_event_ids) * rounds
    invalid = len(exp.invalid) * rounds
    await wait_for(
        topics.all,
        lambda: len(accepted_acks(topics)) >= valid and len(topics.deadletter.records) >= invalid,
        timeout_s,
        f"{valid} acks and {invalid} dead letters",
        worker,
    )


async def wait_applied(
    topics: PipelineTopics, exp: Expected, worker: WorkerProcess, timeout_s: float, what: str
) -> None:
    """Until every event ``exp`` applies has an ``applied`` ack and every invalid one
    its dead letter (acks may repeat after a restart, as no-ops)."""
    await wait_for(
        topics.all,
        lambda: (
            set(applied_acks(topics)) >= exp.applied_event_ids
            and len(dead_letter_reasons(topics)) >= len(exp.invalid)
        ),
        timeout_s,
        what,
        worker,
    )


def assert_final_state(settings: Settings, topics: PipelineTopics, exp: Expected) -> None:
    objects = weaviate_objects(settings)
    actual = {(t, m): v for t, ms in objects.items() for m, v in ms.items()}
    wanted = {(t, m): v for t, ms in exp.live.items() for m, v in ms.items()}
    wrong = {
        k: (actual.get(k), wanted.get(k))
        for k in actual.keys() | wanted.keys()
        if actual.get(k) != wanted.get(k)
    }
    assert wrong == {}, f"{len(wrong)} objects differ (actual, expected): {list(wrong.items())[:5]}"
    assert dead_letter_reasons(topics) == exp.invalid
    values: dict[str, set[bytes | None]] = {}
    for key, value in topics.history.records:
        assert key is not None
        values.setdefault(key.decode(), set()).add(value)
    # one history key per applied change, and each key holds one value
    assert set(values) == exp.history_keys
    assert {k: v for k, v in values.items() if len(v) > 1} == {}
    assert set(applied_acks(topics)) == exp.applied_event_ids


def raw_history_duplicates(topics: PipelineTopics) -> int:
    """Records beyond the first under the same key (byte-identical rewrites)."""
    keys = Counter(k for k, _ in topics.history.records)
    return sum(n - 1 for n in keys.values())


@pytest.fixture
def pipeline(stack: Settings, tmp_path: Path) -> tuple[Settings, WorkerProcess]:
    settings = isolated_settings(stack, tmp_path / "state")
    return settings, WorkerProcess(settings, tmp_path / "worker.log")


async def test_events_drain_exactly_and_replays_change_nothing(
    pipeline: tuple[Settings, WorkerProcess], topics_for: list[PipelineTopics]
) -> None:
    settings, worker = pipeline
    scenario: Scenario = generate(5_000, tenants=50, seed=3)
    exp = scenario.expected
    assert len(exp.invalid) >= 200 and len(set(exp.invalid.values())) == 7
    worker.start()
    try:
        await publish(settings, scenario.events)
        topics = PipelineTopics.open(settings)
        topics_for.append(topics)
        await drain(topics, exp, worker)
        await topics.history.read_to_end()
        assert_final_state(settings, topics, exp)
        assert raw_history_duplicates(topics) == 0
        assert all(
            doc["stage"] == "validate" and doc["source"]["topic"] == settings.topic("memory.events")
            for doc in topics.deadletter.json_values()
        )
        assert worker.metric("agentmem_events_applied_total") == len(exp.applied_event_ids)

        # The same 5,000 events again (same event ids): nothing changes.
        history_before = list(topics.history.records)
        await publish(settings, scenario.events)
        await drain(topics, exp, worker, rounds=2)
        await topics.history.read_to_end()
        assert topics.history.records == history_before
        assert_final_state(settings, topics, exp)
        second_round = accepted_acks(topics)[len(exp.applied_event_ids) :]
        assert {a["outcome"] for a in second_round} == {"noop:duplicate_event"}
        assert worker.metric("agentmem_events_applied_total") == len(exp.applied_event_ids)
    finally:
        worker.stop()


async def test_paraphrase_search_ranks_the_memory_first(
    pipeline: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = pipeline
    memories = {
        "dog": "I adopted a golden retriever puppy and named him Max.",
        "job": "She started a new job as a data engineer at a bank in Zurich.",
        "food": "He cannot eat gluten, so bread and pasta make him ill.",
        "trip": "We are flying to Lisbon for a week of holidays in June.",
        "music": "My daughter practises the violin for an hour every evening.",
    }
    events = [
        new_event("memory.add", "paraphrase", content=c, memory_id=k) for k, c in memories.items()
    ]
    worker.start()
    try:
        await publish(settings, [(e.tenant.encode(), e.to_json()) for e in events])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.metric("agentmem_events_applied_total") < 5:
            await asyncio.sleep(0.3)
        embedder = clients.embedder(settings)
        queries = {
            "dog": "my new dog is called Max",
            "job": "what is her profession now",
            "food": "dietary restriction: wheat intolerance",
            "trip": "summer vacation plans in Portugal",
            "music": "which instrument does the child learn",
        }
        client = clients.weaviate_sync(settings)
        try:
            coll = client.collections.use(settings.weaviate_collection).with_tenant("paraphrase")
            for expected_id, query in queries.items():
                found = coll.query.near_vector(embedder.embed([query])[0], limit=5)
                ranked = [o.properties["memory_id"] for o in found.objects]
                assert ranked[0] == expected_id, (query, ranked)
        finally:
            client.close()
    finally:
        worker.stop()


async def test_sigkill_during_load_loses_and_duplicates_nothing(
    pipeline: tuple[Settings, WorkerProcess], topics_for: list[PipelineTopics]
) -> None:
    settings, worker = pipeline
    scenario = generate(10_000, tenants=50, seed=11)  # kills of several workers: test_scale_out
    exp = scenario.expected
    worker.start()
    try:
        topics = PipelineTopics.open(settings)
        topics_for.append(topics)
        await publish(settings, scenario.events)
        await wait_for(
            topics.all, lambda: len(accepted_acks(topics)) >= 2_000, 300, "2,000 acks", worker
        )
        worker.kill()
        acks_at_kill = len(topics.indexed.records)
        assert acks_at_kill < len(exp.applied_event_ids)
        worker.start()
        # Re-consumed events after the restart may be acknowledged again (as no-ops):
        # wait until every applied event id is acknowledged.
        await wait_applied(topics, exp, worker, 600, "every event after the restart")
        await topics.history.read_to_end()
        assert_final_state(settings, topics, exp)
        # At-least-once: the batch in flight at the kill may be re-processed. Its history
        # records are rewritten byte for byte under the same keys (compaction keeps one);
        # no more than one batch of them.
        assert raw_history_duplicates(topics) <= settings.max_batch
    finally:
        worker.stop()


async def test_weaviate_outage_is_waited_out(
    stack: Settings,
    pipeline: tuple[Settings, WorkerProcess],
    topics_for: list[PipelineTopics],
) -> None:
    settings, worker = pipeline
    weaviate_component = Weaviate(stack)
    if process.running_pid(weaviate_component.files, weaviate_component.marker) is None:
        pytest.fail("this test stops Weaviate, so the session must have started it")
    scenario = generate(6_000, tenants=20, seed=23)
    exp = scenario.expected
    worker.start()
    try:
        topics = PipelineTopics.open(settings)
        topics_for.append(topics)
        await publish(settings, scenario.events)
        await wait_for(
            topics.all, lambda: len(topics.indexed.records) >= 1_000, 300, "1,000 acks", worker
        )
        assert process.stop(weaviate_component.files, weaviate_component.marker)
        stopped_at = time.monotonic()
        acks_when_stopped = len(topics.indexed.records)
        while time.monotonic() - stopped_at < 20:
            await asyncio.gather(*(r.poll() for r in topics.all))
        # At most the batch in flight when Weaviate went away was acknowledged.
        assert len(topics.indexed.records) - acks_when_stopped <= settings.max_batch
        assert worker.running
        assert worker.metric("agentmem_retries_total") > 0
        # Waiting out an outage is no reason to restart: live, but not ready.
        live, _ = worker.health("/healthz")
        ready, problems = worker.health("/readyz")
        assert (live, ready) == (200, 503), problems
        assert any(p.startswith(("waiting:", "dependency:weaviate")) for p in problems)
        supervisor.up(stack)
        await drain(topics, exp, worker)
        await topics.history.read_to_end()
        assert_final_state(settings, topics, exp)
        reasons = {d["reason"] for d in topics.deadletter.json_values()}
        assert "weaviate_rejected" not in reasons and "internal_error" not in reasons
        deadline = time.monotonic() + 30
        while worker.health("/readyz")[0] != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert worker.health("/readyz") == (200, {})
    finally:
        worker.stop()
        supervisor.up(stack)
