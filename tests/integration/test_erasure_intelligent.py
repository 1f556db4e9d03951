"""Erasure of a memory that went through intelligent mode, on the real stack: its text
reached facts, a decision folded it into an older memory, an enrichment of another
memory with it was dead-lettered and requeued. After the erases and the compaction
bound, nothing but memory.events (kept by rule, ARCHITECTURE.md "Erasure") holds it:
topics read from the beginning, the worker's local stores (llm_cache, state), and
Weaviate (search, get, a listing of every object)."""

from __future__ import annotations

import asyncio
import random
import string
import time
from pathlib import Path
from typing import Any

from rocksdict import AccessType, Options, Rdict

from processors.core.events import MemoryEvent, new_event
from streams.client.topics import Topics
from streams.service.requeue import requeue
from streams.settings import Settings
from tests.integration.conftest import NewPipeline
from tests.integration.harness import TopicReader, WorkerProcess, wait_for, weaviate_client
from tests.integration.intelligent import BATCH, fetch_enriched, records, start_fake
from tests.integration.test_pipeline import publish
from tests.integration.topic_scan import holds, topic_records

BOUND_MS = 2000
TENANT_PREFIX = "fold"


def letters(rng: random.Random, n: int) -> str:
    """A word of letters only: the fake LLM's slots read '[a-z ]' values, so a marker
    with digits would stop 'moved to Paris <marker>' from being an UPDATE."""
    return "".join(rng.choices(string.ascii_lowercase, k=n))


def folded(objects: dict[str, dict[str, Any]], marker: str) -> bool:
    """Only the older memory is left, with the newer one's text and facts from it."""
    older = objects.get("older", {})
    return (
        objects.keys() == {"older"}
        and marker in str(older.get("content"))
        and any(marker in str(f) for f in older.get("facts") or [])
    )


def newest(reader: TopicReader) -> dict[str, dict[str, Any]]:
    """event id -> the newest record about it."""
    return {str(v["event_id"]): v for v in reader.json_values()}


async def dead_letters_of(settings: Settings, tenant: str, memory_id: str) -> list[bytes]:
    """The live dead letters of a memory (keyed tenant, memory, source position)."""
    prefix = f"{tenant}\x1f{memory_id}\x1f".encode()
    deadletter = Topics.from_settings(settings).deadletter
    latest = dict(await topic_records(settings, deadletter))  # the newest value per key
    return [k for k, v in latest.items() if k is not None and k.startswith(prefix) and v]


def local_stores(root: Path) -> list[Path]:
    """Every RocksDB database under ``root`` (a folder with a CURRENT file)."""
    return sorted(p.parent for p in root.rglob("CURRENT"))


def store_hits(path: Path, marker: bytes) -> int:
    """Keys or values of the database at ``path`` that hold ``marker`` (a logical read)."""
    db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
    try:
        # raw mode: keys and values are bytes
        return sum(marker in k or marker in v for k, v in db.items())  # type: ignore[operator]
    finally:
        db.close()


def weaviate_hits(settings: Settings, tenant: str, marker: str, ids: list[str]) -> dict[str, int]:
    """Where Weaviate still shows ``marker`` for ``tenant``: a keyword search, the memory
    ids asked for by filter, and a listing of every object with all its properties."""
    with weaviate_client(settings) as client:
        coll = client.collections.use(settings.weaviate_collection)
        if tenant not in coll.tenants.get():
            return {}
        mine = coll.with_tenant(tenant)
        search = mine.query.bm25(query=marker, limit=10).objects
        listed = [o for o in mine.iterator() if marker in repr(o.properties)]
        found = [o for o in mine.iterator() if str(o.properties.get("memory_id")) in ids]
    return {
        k: v
        for k, v in {"search": len(search), "listing": len(listed), "ids": len(found)}.items()
        if v
    }


async def test_an_erased_memory_leaves_nothing_after_intelligent_mode(
    new_pipeline: NewPipeline, tmp_path: Path
) -> None:
    rng = random.Random()
    marker = f"mk{letters(rng, 14)}"
    tenant = f"{TENANT_PREFIX}-{letters(rng, 8)}"
    fake = start_fake(tmp_path / "fake.log")
    settings, _ = await new_pipeline(
        compaction_bound_ms=BOUND_MS,
        llm_base_url=fake.base_url,
        llm_batch_size=BATCH,
        enrich_linger_ms=200,
        llm_timeout_s=2.0,
        llm_attempts=2,
        llm_circuit_cooldown_s=1.0,
    )
    topics = Topics.from_settings(settings)
    indexed = TopicReader(settings, topics.indexed)
    enriched = TopicReader(settings, topics.enriched)
    deadletter = TopicReader(settings, topics.deadletter)
    readers = [indexed, enriched, deadletter]

    def intelligent(memory_id: str, content: str) -> MemoryEvent:
        return new_event(
            "memory.add", tenant, content=content, memory_id=memory_id, mode="intelligent"
        )

    async def settle(event: MemoryEvent, outcome: str, what: str) -> None:
        await wait_for(
            readers,
            lambda: newest(enriched).get(event.event_id, {}).get("outcome") == outcome,
            240,
            what,
            worker,
        )

    older = intelligent("older", "Alice lives in London")
    newer = intelligent("newer", f"Alice moved to Paris {marker}")
    failing = intelligent("failing", f"Dentist appointment on Friday about {marker}")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        # 1. facts of the older memory, then a decision folds the newer's text into it
        await publish(settings, records([older]))
        await settle(older, "enriched", "the older memory's enrichment")
        await publish(settings, records([newer]))
        await settle(newer, "enriched", "the newer memory's enrichment")
        # the newer memory folded into the older one, whose new version gets its facts
        deadline = time.monotonic() + 120
        while not folded(fetch_enriched(settings).get(tenant, {}), marker):
            assert time.monotonic() < deadline, f"no fold: {fetch_enriched(settings)}"
            await asyncio.sleep(0.5)

        # 2. an enrichment dead-lettered (the LLM away), then requeued and completed
        port = fake.port
        fake.stop()
        await publish(settings, records([failing]))
        await wait_for(
            readers,
            lambda: any(
                d.get("event_id") == failing.event_id and d.get("stage") == "enrich"
                for d in deadletter.json_values()
            ),
            240,
            "the enrich dead letter",
            worker,
        )
        fake = start_fake(tmp_path / "fake-again.log", port=port)
        assert (await requeue(settings, "enrich")).records
        await settle(failing, "enriched", "the requeued enrichment")
        # the enrich dead letter names the memory (no text: the model never answered)
        assert await dead_letters_of(settings, tenant, "failing")

        # 3. the erases: the newer memory (and so the older one its text went into),
        # and the one whose enrichment was requeued
        erases = [new_event("memory.erase", tenant, memory_id=m) for m in ("newer", "failing")]
        await publish(settings, records(erases))
        await wait_for(
            readers,
            lambda: all(newest(indexed).get(e.event_id) for e in erases),
            120,
            "the erases' acks",
            worker,
        )
        assert {newest(indexed)[e.event_id]["outcome"] for e in erases} == {"applied"}

        # 4. after the bound, no topic but the log holds the marker
        scanned = [t for t in (topics.history, topics.state, topics.indexed,
                               topics.deadletter, topics.enrich, topics.enriched)]  # fmt: skip
        deadline = time.monotonic() + 120
        while left := {t: n for t in scanned if (n := await holds(settings, t, marker.encode()))}:
            assert time.monotonic() < deadline, f"marker still in {left}"
            await asyncio.sleep(2)
        assert await dead_letters_of(settings, tenant, "failing") == []  # tombstoned
        # the two adds as published, and the derived update that carried the fold
        assert await holds(settings, topics.events, marker.encode()) >= 3
        assert weaviate_hits(settings, tenant, marker, ["older", "newer", "failing"]) == {}
    finally:
        worker.stop()
        fake.stop()
        for reader in readers:
            await reader.close()

    # 5. the worker's own stores, read once it let go of them
    stores = local_stores(settings.stack_dir)
    assert any("cache" in str(p) for p in stores), stores  # llm_cache was among them
    hits = {str(p): store_hits(p, marker.encode()) for p in stores}
    assert {p: n for p, n in hits.items() if n} == {}
