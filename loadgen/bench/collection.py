"""The collection benchmark: the worker's collection bulk-loaded to each size
(precomputed vectors, straight into Weaviate, a few large tenants), then a drain into
those tenants and sequential searches as the service's reader issues them."""

from __future__ import annotations

import logging
import os
from typing import Any

from loadgen.bench.config import BenchConfig
from loadgen.bench.growth_probes import mib_of, ratio, settle, warm, weaviate_pid
from loadgen.bench.harness import (
    CpuShare,
    PrivateWorker,
    drain,
    private_settings,
    rate,
    stack_pids,
)
from loadgen.bench.stage_times import StageTimes
from loadgen.bench.vector_events import tenant_name, vector_adds, vector_objects, vector_records
from loadgen.bench.weaviate_ops import (
    Query,
    bulk_load,
    object_count,
    search_latencies_ms,
    served_collection,
)
from loadgen.stats import latency_summary
from streams.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["FILL_CHUNK", "bench_collection"]

#: objects generated and imported at a time while a collection is filled
FILL_CHUNK = 10_000


#: the longest wait for Weaviate to finish its own work after a bulk load
SETTLE_LIMIT_S = 120.0


def _fill(settings: Settings, config: BenchConfig, start: int, stop: int) -> float:
    """Bulk-load objects ``start``.. ``stop`` of the run into the collection's tenants;
    objects per second."""
    seconds = 0.0
    for offset in range(start, stop, FILL_CHUNK):
        count = min(FILL_CHUNK, stop - offset)
        objects = vector_objects(
            count,
            config.collection_tenants,
            config.seed + 1000 + offset // FILL_CHUNK,
            dim=settings.embedding_dim,
            prefix=f"pre{offset}-",
            tenant_prefix="c",
        )
        seconds += bulk_load(settings, objects, settings.max_batch)
    return (stop - start) / seconds if seconds else 0.0


def _queries(settings: Settings, config: BenchConfig, step: int) -> list[Query]:
    docs = vector_adds(
        config.search_queries,
        config.collection_tenants,
        config.seed + 300 + step,
        dim=settings.embedding_dim,
        prefix="q-",
        tenant_prefix="c",
    )
    return [_query(d) for d in docs]


def _query(doc: dict[str, object]) -> Query:
    """The search of an add's text and vector in its tenant."""
    vector = doc["vector"]
    if not isinstance(vector, list):
        raise TypeError("an add without a vector")
    return Query(str(doc["tenant"]), str(doc["content"]), [float(v) for v in vector])


def _collection_step(
    settings: Settings,
    config: BenchConfig,
    worker: PrivateWorker,
    stack: dict[str, list[int]],
    step: int,
) -> dict[str, Any]:
    """A drain into the collection's tenants, then sequential searches in them."""
    docs = vector_adds(
        config.collection_drain_events,
        config.collection_tenants,
        config.seed + 200 + step,
        dim=settings.embedding_dim,
        prefix=f"d{step}-",
        tenant_prefix="c",
    )
    groups = {"worker": [worker.pid], **stack, "load generator": [os.getpid()]}
    with CpuShare(groups) as cpu, StageTimes(settings.worker_metrics_port) as stages:
        per_s = rate(drain(settings, vector_records(docs), config), f"collection step {step}")
    queries = _queries(settings, config, step)
    with CpuShare(groups) as search_cpu:
        latencies = latency_summary(search_latencies_ms(settings, queries))
    return {
        "events_per_s": per_s,
        "search_p50_ms": latencies["p50"],
        "search_p99_ms": latencies["p99"],
        "search_max_ms": latencies["max"],
        "cpu": cpu.summary(),
        "search_cpu": search_cpu.summary(),
        "stages": stages.summary(),
    }


def bench_collection(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Drain rate and search latency with each of ``collection_sizes`` memories stored."""
    settings = private_settings(base, config.workdir)
    weaviate = weaviate_pid(base)
    steps: list[dict[str, Any]] = []
    with PrivateWorker(settings, config.workdir / "collection-worker.log") as worker:
        warm(settings, config)
        log.info("collection benchmark: filling %s", served_collection(settings))
        loaded = 0
        tenants = [tenant_name("c", i) for i in range(config.collection_tenants)]
        for step, size in enumerate(config.collection_sizes):
            load_per_s = _fill(settings, config, loaded, size)
            loaded = size
            settled_s = settle(weaviate, SETTLE_LIMIT_S)
            stored = size + step * config.collection_drain_events
            log.info("collection benchmark: %d stored", stored)
            measured = _collection_step(settings, config, worker, stack_pids(base), step)
            measured["counted"] = object_count(settings, tenants)
            steps.append(
                {
                    "stored": stored,
                    "size": size,
                    "load_per_s": load_per_s,
                    "weaviate_settled_s": settled_s,
                    **measured,
                    "weaviate_rss_mb": mib_of(weaviate),
                }
            )
            log.info("collection: %s", steps[-1])
    first, last = steps[0], steps[-1]
    return {
        "rate_300k_vs_10k": ratio(last["events_per_s"], first["events_per_s"]),
        "search_p99_ms_300k": last["search_p99_ms"],
        "search_p50_ms_300k": last["search_p50_ms"],
        "collection_steps": steps,
        "collection_tenants": config.collection_tenants,
        "note": "searches: MemoryReader.search (hybrid, the service's defaults) with a "
        "precomputed query vector, sequential: Weaviate and the reader, no embedding; "
        + "; ".join(
            f"{s['stored']:,} stored: drain {s['cpu']}, worker {s['stages']}; searches "
            f"{s['search_cpu']}"
            for s in steps
        ),
    }
