"""Data, settings and topic reads of the intelligent-mode tests (test_intelligent.py):
a worker against the fake LLM, scripted decisions and bulk texts the fake LLM adds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadgen.fake_llm.answers import decide
from loadgen.fake_llm.process import FakeLlmProcess
from loadgen.synth import SynthConfig, synth_events
from processors.core.events import MemoryEvent, new_event
from streams.settings import Settings
from tests.integration.harness import (
    TopicReader,
    WorkerProcess,
    isolated_settings,
    wait_for,
    weaviate_client,
)
from tests.integration.test_pipeline import publish

BATCH = 16  # memories per prompt in these tests


def start_fake(log: Path, *args: str, port: int | None = None) -> FakeLlmProcess:
    return FakeLlmProcess(log, *args, port=port).start(timeout_s=30)


def intelligent_settings(stack: Settings, work: Path, base_url: str, **extra: Any) -> Settings:
    return isolated_settings(
        stack,
        work,
        llm_base_url=base_url,
        llm_batch_size=BATCH,
        enrich_linger_ms=300,
        **extra,
    )


def records(events: list[MemoryEvent]) -> list[tuple[bytes, bytes]]:
    return [(e.tenant.encode(), e.to_json()) for e in events]


# (tenant, first memory, second memory, expected: what each memory ends as)
SCRIPT = [
    ("script-update", "Alice lives in London", "Alice moved to Paris", "update"),
    (
        "script-noop",
        "Bob's favourite drink is green tea",
        "Bob's favourite drink is green tea",
        "noop",
    ),
    ("script-delete", "Carol works at Initech", "Carol no longer works at Initech", "delete"),
    ("script-same", "Dan lives in Berlin", "Dan is living in Berlin now", "noop"),
]


def bulk_texts(count: int, seed: int) -> list[tuple[str, str]]:
    """Synthetic (tenant, text) pairs that the fake LLM will judge ADD against every
    earlier text of the tenant, so that each bulk memory must survive."""
    chosen: list[tuple[str, str]] = []
    prior: dict[str, list[tuple[str, str]]] = {}
    config = SynthConfig(
        count=count * 3, tenants=40, seed=seed, update_ratio=0.0, delete_ratio=0.0, mode="fast"
    )
    for doc in synth_events(config):
        tenant, text = str(doc["tenant"]), str(doc.get("content") or "")
        if not text or doc.get("type") != "memory.add":
            continue
        earlier = prior.setdefault(tenant, [])
        if decide(text, earlier)["action"] != "ADD":
            continue
        earlier.append((str(len(earlier)), text))
        chosen.append((tenant, text))
        if len(chosen) == count:
            return chosen
    raise AssertionError("not enough distinct synthetic memories")


def fetch_enriched(settings: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    """tenant -> memory_id -> properties (content, version, facts, importance)."""
    with weaviate_client(settings) as client:
        coll = client.collections.use(settings.weaviate_collection)
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for tenant in coll.tenants.get():
            objs = {}
            for obj in coll.with_tenant(tenant).iterator(
                return_properties=["memory_id", "content", "version", "facts", "importance"]
            ):
                objs[str(obj.properties["memory_id"])] = dict(obj.properties)
            out[str(tenant)] = objs
        return out


def enriched_ids(reader: TopicReader) -> dict[str, dict[str, Any]]:
    return {str(v["event_id"]): v for v in reader.json_values()}


async def publish_bulk(
    settings: Settings, worker: WorkerProcess, count: int, seed: int
) -> tuple[
    list[MemoryEvent], dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[dict[str, Any]]
]:
    """Publish ``count`` intelligent adds; wait until each is indexed and has an
    enrichment outcome. Returns the events, their acks, outcomes and the dead letters."""
    events = [
        new_event("memory.add", t, content=text, mode="intelligent")
        for t, text in bulk_texts(count, seed=seed)
    ]
    await publish(settings, records(events))
    indexed, enriched, dead = await indexed_and_enriched(settings, worker, events, 600)
    return events, indexed, enriched, dead


async def indexed_and_enriched(
    settings: Settings, worker: WorkerProcess, events: list[MemoryEvent], timeout_s: float
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Wait until every event is indexed and has an enrichment outcome."""
    indexed = TopicReader(settings, settings.topic("memory.indexed"))
    enriched = TopicReader(settings, settings.topic("memory.enriched"))
    deadletter = TopicReader(settings, settings.topic("memory.deadletter"))
    want = {e.event_id for e in events}
    try:
        await wait_for(
            [indexed, enriched],
            lambda: want <= enriched_ids(indexed).keys() and want <= enriched_ids(enriched).keys(),
            timeout_s,
            "indexing and enrichment",
            worker,
        )
        await deadletter.read_to_end()
        return enriched_ids(indexed), enriched_ids(enriched), deadletter.json_values()
    finally:
        for reader in (indexed, enriched, deadletter):
            await reader.close()
