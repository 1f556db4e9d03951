"""The benchmark against the live stack: a private worker on the shared Kafka and
Weaviate, the set published through the SDK and waited for on its acks, then every
question searched by every variant through ``AgentMem.search``. Network I/O.

The worker's topics, collection and state are its own (deleted afterwards), so the
benchmark can run beside anything else on the stack; each user of the set is a tenant.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.bench.harness import PrivateWorker, private_settings
from loadgen.retrieval import render
from loadgen.retrieval.dataset import RetrievalSet, counts
from loadgen.retrieval.render import Measured
from loadgen.retrieval.score import KS, score
from loadgen.retrieval.variants import Variant
from processors.core.events import EventType, MemoryEvent, new_event
from streams.client.sdk import AgentMem
from streams.settings import Settings

log = logging.getLogger(__name__)

PUBLISH_BATCH = 200


@dataclass(frozen=True)
class RetrievalOptions:
    variants: list[Variant]
    workdir: Path
    index_timeout_s: float = 600.0
    concurrency: int = 4
    limit: int = field(default=max(KS))


def events_of(data: RetrievalSet) -> list[MemoryEvent]:
    """One fast-mode add per turn: its id is the memory id, its time the turn's."""
    return [
        new_event(
            EventType.ADD,
            t.tenant,
            content=t.text,
            memory_id=t.id,
            metadata={"speaker": t.speaker, "session": t.session},
            occurred_at=t.at,
        )
        for t in data.turns
    ]


async def load_set(mem: AgentMem, data: RetrievalSet, timeout_s: float) -> None:
    """Publish every turn and wait until each is acknowledged as indexed."""
    events = events_of(data)
    ids: list[str] = []
    for start in range(0, len(events), PUBLISH_BATCH):
        ids += await mem.publish(events[start : start + PUBLISH_BATCH])
    acks = await mem.wait_indexed(ids, timeout_s=timeout_s)
    refused = {e: a for e, a in acks.items() if str(a.get("outcome", "")).startswith("rejected")}
    if refused:
        raise RuntimeError(f"{len(refused)} turns were refused, e.g. {next(iter(refused.items()))}")


async def search_all(
    mem: AgentMem, data: RetrievalSet, variant: Variant, options: RetrievalOptions
) -> tuple[dict[str, list[str]], list[float]]:
    """Each question's ranked memory ids under ``variant``, and each search's time in
    milliseconds (the query's embedding included, ``concurrency`` at a time)."""
    gate = asyncio.Semaphore(options.concurrency)
    took_ms: list[float] = []

    async def one(tenant: str, query: str) -> list[str]:
        async with gate:
            started = time.monotonic()
            found = await mem.search(tenant, query, limit=options.limit, **variant.options())
            took_ms.append((time.monotonic() - started) * 1000)
        return [m.memory_id for m in found]

    ranked = await asyncio.gather(*(one(q.tenant, q.question) for q in data.questions))
    return {q.id: r for q, r in zip(data.questions, ranked, strict=True)}, took_ms


async def measure(
    settings: Settings, data: RetrievalSet, options: RetrievalOptions
) -> tuple[list[Measured], dict[str, float]]:
    seconds: dict[str, float] = {}
    async with AgentMem(settings) as mem:
        started = time.monotonic()
        await load_set(mem, data, options.index_timeout_s)
        seconds["index"] = time.monotonic() - started
        await mem.embed_query("warm up")  # the embedder loads on the first search
        results: list[Measured] = []
        for variant in options.variants:
            started = time.monotonic()
            rankings, took_ms = await search_all(mem, data, variant, options)
            seconds[variant.name] = time.monotonic() - started
            results.append(Measured(variant, score(data.questions, rankings), took_ms))
            log.info("%s searched in %.1fs", variant.name, seconds[variant.name])
    return results, seconds


def run_retrieval(base: Settings, data: RetrievalSet, options: RetrievalOptions) -> dict[str, Any]:
    """Index ``data`` into a private worker, search it with every variant; the report."""
    tag = uuid.uuid4().hex[:8]
    settings = private_settings(
        base,
        options.workdir,
        topic_prefix=f"retrieval.{tag}.",
        worker_id=f"retrieval-{tag}",
        weaviate_collection=f"Retrieval{tag}",
    )
    options.workdir.mkdir(parents=True, exist_ok=True)
    with PrivateWorker(settings, options.workdir / f"worker-{tag}.log"):
        results, seconds = asyncio.run(measure(settings, data, options))
    return render.document(counts(data), results, seconds)
