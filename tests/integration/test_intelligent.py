"""Intelligent mode end to end: a real worker, Kafka, Weaviate, and the fake LLM over HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadgen.fake_llm.process import FakeLlmProcess
from processors.core.events import MemoryEvent, new_event
from streams.service.requeue import requeue
from streams.settings import Settings
from streams.stack.launcher import free_port
from tests.integration.harness import (
    TopicReader,
    WorkerProcess,
    wait_for,
)
from tests.integration.intelligent import (
    BATCH,
    SCRIPT,
    bulk_texts,
    enriched_ids,
    fetch_enriched,
    indexed_and_enriched,
    intelligent_settings,
    publish_bulk,
    records,
    start_fake,
)
from tests.integration.test_pipeline import publish


@pytest.fixture
def fake_llm(tmp_path: Path) -> Iterator[FakeLlmProcess]:
    fake = start_fake(tmp_path / "fake-llm.log", "--latency-ms", "50")
    yield fake
    fake.stop()


def check_decisions(
    state: dict[str, dict[str, dict[str, Any]]],
    acks: dict[str, dict[str, Any]],
    bulk: list[MemoryEvent],
    seconds: list[MemoryEvent],
) -> None:
    """Bulk memories are enriched; each script's second memory decided as expected."""
    for e in bulk:
        obj = state[e.tenant][e.resolved_memory_id]
        assert obj["content"] == e.content
        assert obj["facts"], f"{e.resolved_memory_id} has no facts"
        assert 0.0 <= obj["importance"] <= 1.0
    live = {t: state.get(t, {}) for t, *_ in SCRIPT}
    # UPDATE: the older memory now says what the newer one said; the newer is folded in.
    assert set(live["script-update"]) == {"script-update-1"}
    updated = live["script-update"]["script-update-1"]
    assert (updated["content"], updated["version"]) == ("Alice moved to Paris", 2)
    assert updated["facts"] == ["Alice moved to Paris"]
    assert updated["importance"] is not None
    # NOOP: the duplicate is dropped, the original stays.
    assert set(live["script-noop"]) == {"script-noop-1"}
    assert set(live["script-same"]) == {"script-same-1"}
    # DELETE: the memory the newer one negates is removed; the newer one stays.
    assert set(live["script-delete"]) == {"script-delete-2"}
    decisions = {acks[e.event_id]["memory_id"]: acks[e.event_id]["decision"] for e in seconds}
    assert decisions == {
        "script-update-2": "UPDATE",
        "script-noop-2": "NOOP",
        "script-delete-2": "DELETE",
        "script-same-2": "NOOP",
    }


async def check_history(history: TopicReader, seconds: list[MemoryEvent]) -> None:
    # Every decided change is in the history, with the event that caused it.
    await history.read_to_end()
    caused = {
        (h["memory_id"], h["change"]): h["caused_by"]
        for h in history.json_values()
        if h and "caused_by" in h
    }
    by_memory = {e.resolved_memory_id: e.event_id for e in seconds}
    assert caused == {
        ("script-update-1", "upsert"): by_memory["script-update-2"],
        ("script-update-2", "delete"): by_memory["script-update-2"],
        ("script-noop-2", "delete"): by_memory["script-noop-2"],
        ("script-delete-1", "delete"): by_memory["script-delete-2"],
        ("script-same-2", "delete"): by_memory["script-same-2"],
    }


def check_batching(
    stats: dict[str, Any], events: list[MemoryEvent], prompts: list[dict[str, Any]]
) -> None:
    """Prompt batching: a prompt packs up to BATCH memories of one tenant, so a batch of
    the enrich stage asks at most ceil(n_t / BATCH) prompts for each tenant t with n_t
    memories in it, never one per memory; each distinct text is asked once."""
    assert stats["errors"] == {}
    for kind in ("facts", "importance"):
        sizes = [len(p["items"]) for p in prompts if p["kind"] == kind]
        assert sum(sizes) == stats["items_by_kind"][kind]
        assert max(sizes) <= BATCH, (kind, max(sizes))
        # 2,000 memories over 44 tenants: several of a tenant share each prompt
        assert sum(sizes) / len(sizes) >= 3, (kind, len(sizes), sum(sizes))
    # Each distinct text of a tenant is asked once: its repeats hit the tenant's llm_cache
    # or share one prompt slot. Another tenant's same text is asked again (no answer
    # crosses tenants).
    distinct = len({(e.tenant, e.content) for e in events})
    assert stats["items_by_kind"]["facts"] == distinct
    assert stats["items_by_kind"]["importance"] == distinct


async def replay_from_cache(
    settings: Settings,
    worker: WorkerProcess,
    fake_llm: FakeLlmProcess,
    readers: tuple[TopicReader, TopicReader],
    earlier: list[MemoryEvent],
    requests_before: int,
) -> None:
    enriched, history = readers
    # Replaying the same contents (as new memories): facts and importance come from
    # llm_cache, and each copy is dropped as a duplicate of its original.
    hits_before = worker.metric("agentmem_llm_cache_total", {"result": "hit"})
    misses_before = worker.metric("agentmem_llm_cache_total", {"result": "miss"})
    # (the update and delete scripts changed what their originals hold)
    changed = {"script-update", "script-delete"}
    originals = [e for e in earlier if e.tenant not in changed]
    copies = [
        new_event(
            "memory.add", e.tenant, content=e.content, memory_id=f"copy-{i}", mode="intelligent"
        )
        for i, e in enumerate(originals)
    ]
    await publish(settings, records(copies))
    copy_ids = {e.event_id for e in copies}
    await wait_for(
        [enriched], lambda: copy_ids <= set(enriched_ids(enriched)), 600, "replay", worker
    )
    hits = worker.metric("agentmem_llm_cache_total", {"result": "hit"}) - hits_before
    misses = worker.metric("agentmem_llm_cache_total", {"result": "miss"}) - misses_before
    assert hits / (hits + misses) >= 0.95, (hits, misses)
    grown = fake_llm.stats()["requests"] - requests_before
    assert grown <= 0.05 * requests_before, (grown, requests_before)
    replay_acks = enriched_ids(enriched)
    assert Counter(replay_acks[e.event_id]["decision"] for e in copies) == {"NOOP": len(copies)}
    await wait_for(
        [history],
        lambda: (
            sum(1 for h in history.json_values() if h and h.get("caused_by") in copy_ids)
            == len(copies)
        ),
        300,
        "the duplicates' deletes",
        worker,
    )


async def test_intelligent_events_are_enriched_decided_and_cached(
    stack: Settings, tmp_path: Path, fake_llm: FakeLlmProcess
) -> None:
    settings = intelligent_settings(stack, tmp_path / "w", fake_llm.base_url)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    enriched = TopicReader(settings, settings.topic("memory.enriched"))
    history = TopicReader(settings, settings.topic("memory.history"))
    deadletter = TopicReader(settings, settings.topic("memory.deadletter"))
    try:
        firsts = [
            new_event("memory.add", t, content=a, memory_id=f"{t}-1", mode="intelligent")
            for t, a, _, _ in SCRIPT
        ]
        bulk = [
            new_event("memory.add", t, content=text, memory_id=f"bulk-{i}", mode="intelligent")
            for i, (t, text) in enumerate(bulk_texts(2000 - 2 * len(SCRIPT), seed=11))
        ]
        seconds = [
            new_event("memory.add", t, content=b, memory_id=f"{t}-2", mode="intelligent")
            for t, _, b, _ in SCRIPT
        ]
        events = firsts + bulk + seconds
        assert len(events) == 2000
        await publish(settings, records(events))
        want = {e.event_id for e in events}
        rewritten = "script-update-1"

        def done() -> bool:
            got = enriched_ids(enriched)
            rewrites = [
                v for v in got.values() if v["memory_id"] == rewritten and v["version"] == 2
            ]
            return want <= set(got) and bool(rewrites)

        await wait_for([enriched], done, 600, "2,000 enrichments", worker)
        acks = enriched_ids(enriched)
        assert Counter(acks[e].get("outcome") for e in want) == {"enriched": 2000}

        state = fetch_enriched(settings)
        check_decisions(state, acks, bulk, seconds)
        await check_history(history, seconds)
        stats = fake_llm.stats()
        check_batching(stats, events, fake_llm.requests())
        await replay_from_cache(
            settings, worker, fake_llm, (enriched, history), firsts + bulk, stats["requests"]
        )
        after = fetch_enriched(settings)
        assert sum(len(v) for v in after.values()) == sum(len(v) for v in state.values())
        await deadletter.read_to_end()
        assert deadletter.json_values() == []
        assert worker.running
    finally:
        worker.stop()
        for reader in (enriched, history, deadletter):
            await reader.close()


async def test_flaky_llm_never_loses_a_memory(stack: Settings, tmp_path: Path) -> None:
    fake = start_fake(
        tmp_path / "fake.log",
        "--latency-ms",
        "30",
        "--error-rate",
        "0.5",
        "--hang-s",
        "5",
        "--seed",
        "3",
    )
    settings = intelligent_settings(stack, tmp_path / "w", fake.base_url, llm_timeout_s=1.0)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        events, indexed, enriched, dead = await publish_bulk(settings, worker, 300, 5)
        assert {indexed[e.event_id]["outcome"] for e in events} == {"applied"}
        outcomes = Counter(enriched[e.event_id]["outcome"] for e in events)
        assert outcomes["enriched"] > 0
        assert set(outcomes) <= {"enriched", "partial", "failed"}
        unfinished = {e.event_id for e in events if enriched[e.event_id]["outcome"] != "enriched"}
        dead_enrich = {d["event_id"] for d in dead if d["stage"] == "enrich"}
        assert unfinished == dead_enrich
        assert all(d["stage"] == "enrich" for d in dead)
        stats = fake.stats()
        assert sum(stats["errors"].values()) > 0
        assert worker.metric("agentmem_llm_requests_total", {"outcome": "ok"}) > 0
        failed = sum(
            worker.metric("agentmem_llm_requests_total", {"outcome": o})
            for o in ("rate_limited", "server_error", "timeout")
        )
        assert failed > 0
        assert worker.running
        # Every memory is searchable whatever its enrichment became.
        state = fetch_enriched(settings)
        assert sum(len(v) for v in state.values()) == len(events)
    finally:
        worker.stop()
        fake.stop()


async def test_llm_down_opens_the_circuit_and_indexing_goes_on(
    stack: Settings, tmp_path: Path
) -> None:
    port = free_port()
    down = f"http://127.0.0.1:{port}/v1"  # nothing listens there (yet)
    settings = intelligent_settings(
        stack,
        tmp_path / "w",
        down,
        llm_circuit_min_calls=5,
        llm_circuit_window=10,
        llm_circuit_cooldown_s=2.0,
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        events, indexed, enriched, dead = await publish_bulk(settings, worker, 500, 9)
        assert {indexed[e.event_id]["outcome"] for e in events} == {"applied"}
        assert {enriched[e.event_id]["outcome"] for e in events} == {"failed"}
        reasons = Counter(d["reason"] for d in dead if d["stage"] == "enrich")
        assert sum(reasons.values()) == len(events)
        assert set(reasons) <= {"connection_error", "circuit_open"}
        assert reasons["circuit_open"] > 0
        assert worker.metric("agentmem_llm_requests_total", {"outcome": "circuit_open"}) > 0
        assert worker.metric("agentmem_llm_circuit_state") == 2.0  # open
        assert sum(len(v) for v in fetch_enriched(settings).values()) == len(events)
        assert worker.running

        # The endpoint comes back; the dead-lettered enrichments are sent again and
        # complete: the circuit closes through its probe, and nothing was lost.
        fake = start_fake(tmp_path / "fake.log", port=port)
        try:
            assert len((await requeue(settings, "enrich")).records) == len(events)
            enriched_reader = TopicReader(settings, settings.topic("memory.enriched"))
            want = {e.event_id for e in events}

            def all_enriched() -> bool:
                last = enriched_ids(enriched_reader)  # the newest outcome per event
                return all(last.get(e, {}).get("outcome") == "enriched" for e in want)

            try:
                await wait_for([enriched_reader], all_enriched, 300, "re-enrichment", worker)
            finally:
                await enriched_reader.close()
            assert worker.metric("agentmem_llm_circuit_state") == 0.0  # closed
            state = fetch_enriched(settings)
            assert all(state[e.tenant][e.resolved_memory_id]["facts"] for e in events), (
                "a requeued memory has no facts"
            )
        finally:
            fake.stop()
    finally:
        worker.stop()


async def test_fake_llm_rejects_a_malformed_request(fake_llm: FakeLlmProcess) -> None:
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            f"{fake_llm.base_url}/chat/completions", json={"model": "m", "messages": []}
        )
    assert reply.status_code == 400
    assert "messages" in reply.json()["error"]["message"]


async def test_no_llm_request_holds_memories_of_two_tenants(
    stack: Settings, tmp_path: Path, fake_llm: FakeLlmProcess
) -> None:
    """An intelligent batch with memories of 20 tenants (several memories each, some
    near one another so that decisions ask about older ones): every prompt the fake
    LLM received holds the texts of one tenant only."""
    settings = intelligent_settings(stack, tmp_path / "w", fake_llm.base_url)
    tenants = [f"mix-{i:02d}" for i in range(20)]
    owner: dict[str, str] = {}
    events = []
    for n in range(4):
        for tenant in tenants:
            text = f"{tenant} note {n}: likes tea with {tenant} friends"
            owner[text] = tenant
            events.append(new_event("memory.add", tenant, content=text, mode="intelligent"))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, records(events))
        await indexed_and_enriched(settings, worker, events, 300)
    finally:
        worker.stop()
    mixed, asked = [], 0
    for request in fake_llm.requests():
        texts = [item.get("memory") for item in request["items"]]
        texts += [
            old.get("memory") for item in request["items"] for old in item.get("existing", [])
        ]
        holders = {owner[t] for t in texts if t in owner}
        asked += bool(holders)
        if len(holders) > 1:
            mixed.append((request["kind"], sorted(holders)))
    assert asked >= 20  # every tenant was asked about
    assert mixed == []
