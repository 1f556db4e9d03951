"""How cost grows: many tenants, a large collection, a long-running worker.

- tenants: the same events (precomputed vectors) over few and over many tenants, each
  count drained by a fresh private worker; Weaviate's RSS and shard count after each;
- collection: the worker's collection bulk-loaded to each size (precomputed vectors,
  straight into Weaviate, a few large tenants), then a drain into those tenants and
  sequential searches as the service's reader issues them;
- endurance: many events through one worker in chunks, its RSS and the size of its
  state folder after each chunk.

Each is a ratio measured in one run; the per-step figures go into the document for
the report's table and chart (:mod:`loadgen.bench.render`, :mod:`loadgen.bench.chart`).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from loadgen.bench.config import BenchConfig
from loadgen.bench.footprint import (
    MIB,
    open_files,
    open_files_limit,
    rss_bytes,
    tree_bytes,
    wal_bytes,
)
from loadgen.bench.harness import (
    WARM_UP_EVENTS,
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
    drop_collection,
    object_count,
    search_latencies_ms,
    served_collection,
    tenant_count,
)
from loadgen.replay.records import ReplayRecord
from loadgen.stats import latency_summary
from streams.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "bench_collection",
    "bench_endurance",
    "bench_tenants",
    "chunk_sizes",
    "files_short",
    "growth_sizes",
    "ratio",
]

#: the share of Weaviate's open-files limit a tenant count may fill (the stack is
#: shared: other collections open files too while a count runs)
FILES_HEADROOM = 0.8

#: objects generated and imported at a time while a collection is filled
FILL_CHUNK = 10_000


def chunk_sizes(total: int, chunk: int) -> list[int]:
    """``total`` split into chunks of ``chunk`` (the last one smaller). Pure."""
    return [min(chunk, total - start) for start in range(0, total, chunk)]


def ratio(top: float | None, bottom: float | None) -> float | None:
    """``top / bottom``, None when either is missing or the bottom is 0. Pure."""
    if top is None or not bottom:
        return None
    return top / bottom


def files_short(count: int, per_shard: float, held: int, limit: int | None) -> str | None:
    """Why ``count`` new shards cannot open in Weaviate, at ``per_shard`` open files
    each, with ``held`` open of ``limit`` (of which :data:`FILES_HEADROOM` may be
    used); None when they fit. Pure."""
    needed = math.ceil(count * per_shard)
    if limit is None or held + needed <= FILES_HEADROOM * limit:
        return None
    return (
        f"not run: {count:,} shards need ~{needed:,} open files at {per_shard:.1f} per shard "
        f"(measured at the count before), Weaviate holds {held:,} of its limit of {limit:,}"
    )


def _warm(settings: Settings, config: BenchConfig) -> None:
    """A few events into a tenant of their own: the worker has its partitions and has
    written to Weaviate once before anything is measured."""
    docs = vector_adds(
        WARM_UP_EVENTS,
        1,
        config.seed + 99,
        dim=settings.embedding_dim,
        prefix="warm-",
        tenant_prefix="warm",
    )
    rate(drain(settings, vector_records(docs), config), "warm-up")


def _mib(pid: int | None) -> float | None:
    try:
        return None if pid is None else rss_bytes(pid) / MIB
    except (OSError, ValueError):
        return None


def _weaviate_pid(base: Settings) -> int | None:
    pids = stack_pids(base).get("weaviate")
    return pids[0] if pids else None


def _tenant_run(base: Settings, config: BenchConfig, count: int) -> dict[str, Any]:
    """The run's events over ``count`` tenants, drained by a fresh worker."""
    docs = vector_adds(
        config.tenant_events, count, config.seed + 11, dim=base.embedding_dim, prefix="tn-"
    )
    records = vector_records(docs)
    del docs
    settings = private_settings(base, config.workdir)
    try:
        return _drained_over(settings, config, records, count)
    finally:
        _dropped(settings)


def _dropped(settings: Settings) -> None:
    """Whatever of the worker's collection its cleanup could not delete in time."""
    try:
        left = drop_collection(settings)
    except Exception:  # cleanup must not hide the benchmark's own error
        log.warning("could not delete %s", settings.weaviate_collection, exc_info=True)
    else:
        if left:
            log.info("deleted %s after the worker's cleanup", ", ".join(left))


def _drained_over(
    settings: Settings, config: BenchConfig, records: list[ReplayRecord], count: int
) -> dict[str, Any]:
    """A fresh worker drains ``records`` (over ``count`` tenants); the figures after."""
    weaviate = _weaviate_pid(settings)
    before, files_before = _mib(weaviate), _files(weaviate)
    with PrivateWorker(settings, config.workdir / f"tenants-{count}-worker.log") as worker:
        _warm(settings, config)
        groups = {"worker": [worker.pid], **stack_pids(settings), "load generator": [os.getpid()]}
        with CpuShare(groups) as cpu, StageTimes(settings.worker_metrics_port) as stages:
            result = drain(settings, records, config, stall_s=config.tenant_stall_s)
            per_s = rate(result, f"{count} tenants")
        shards, files = tenant_count(settings), _files(weaviate)
        return {
            "tenants": count,
            "events_per_s": per_s,
            "weaviate_rss_mb_before": before,
            "weaviate_rss_mb": _mib(weaviate),
            "shards": shards,
            "weaviate_open_files": files,
            "open_files_per_shard": ratio(files - files_before, shards) if files else None,
            "cpu": cpu.summary(),
            "stages": stages.summary(),
        }


def _files(pid: int | None) -> int:
    try:
        return 0 if pid is None else open_files(pid)
    except OSError:
        return 0


def _why_not(base: Settings, count: int, per_shard: float | None) -> str | None:
    """:func:`files_short` for Weaviate now, once a files-per-shard figure exists."""
    pid = _weaviate_pid(base)
    if pid is None or not per_shard:
        return None
    try:
        limit = open_files_limit(pid)
    except (OSError, ValueError):
        return None
    return files_short(count, per_shard, _files(pid), limit)


def _tenant_run_or_error(base: Settings, config: BenchConfig, count: int) -> dict[str, Any]:
    try:
        return _tenant_run(base, config, count)
    except Exception as exc:  # a count Weaviate cannot hold is a finding, not the end
        log.exception("tenants benchmark at %d tenants failed", count)
        return {"tenants": count, "error": str(exc), "weaviate_rss_mb": _mib(_weaviate_pid(base))}


def bench_tenants(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """The same events over each of ``tenant_counts``: the rate at the last count over
    the rate at the first; the largest count that worked if some did not."""
    runs: list[dict[str, Any]] = []
    per_shard: float | None = None
    for count in config.tenant_counts:
        why = _why_not(base, count, per_shard) if config.tenant_fd_guard else None
        run = {"tenants": count, "error": why} if why else _tenant_run_or_error(base, config, count)
        measured = run.get("open_files_per_shard")
        if isinstance(measured, float) and measured > 0:
            per_shard = max(per_shard or 0.0, measured)
        runs.append(run)
    worked = [r for r in runs if "error" not in r]
    first = runs[0].get("events_per_s")
    largest = max(worked, key=lambda r: int(r["tenants"]), default={})
    out: dict[str, Any] = {
        "tenants_10k_ratio": ratio(runs[-1].get("events_per_s"), first),
        "tenant_events": config.tenant_events,
        "tenants_runs": runs,
        "tenants_largest_ok": largest.get("tenants"),
        "tenants_largest_ok_ratio": ratio(largest.get("events_per_s"), first),
        "note": "; ".join(
            f"{r['tenants']:,} tenants: "
            + (f"failed: {r['error']}" if "error" in r else f"{r['cpu']}; worker {r['stages']}")
            for r in runs
        ),
    }
    if not worked or first is None:
        raise RuntimeError(out["note"])
    return out


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
    settings: Settings, config: BenchConfig, worker: PrivateWorker, step: int
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
    groups = {"worker": [worker.pid], **stack_pids(settings), "load generator": [os.getpid()]}
    with CpuShare(groups) as cpu, StageTimes(settings.worker_metrics_port) as stages:
        per_s = rate(drain(settings, vector_records(docs), config), f"collection step {step}")
    latencies = latency_summary(search_latencies_ms(settings, _queries(settings, config, step)))
    return {
        "events_per_s": per_s,
        "search_p50_ms": latencies["p50"],
        "search_p99_ms": latencies["p99"],
        "search_max_ms": latencies["max"],
        "cpu": cpu.summary(),
        "stages": stages.summary(),
    }


def bench_collection(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Drain rate and search latency with each of ``collection_sizes`` memories stored."""
    settings = private_settings(base, config.workdir)
    weaviate = _weaviate_pid(base)
    steps: list[dict[str, Any]] = []
    with PrivateWorker(settings, config.workdir / "collection-worker.log") as worker:
        _warm(settings, config)
        log.info("collection benchmark: filling %s", served_collection(settings))
        loaded = 0
        tenants = [tenant_name("c", i) for i in range(config.collection_tenants)]
        for step, size in enumerate(config.collection_sizes):
            load_per_s = _fill(settings, config, loaded, size)
            loaded = size
            stored = size + step * config.collection_drain_events
            log.info("collection benchmark: %d stored", stored)
            measured = _collection_step(settings, config, worker, step)
            measured["counted"] = object_count(settings, tenants)
            steps.append(
                {
                    "stored": stored,
                    "size": size,
                    "load_per_s": load_per_s,
                    **measured,
                    "weaviate_rss_mb": _mib(weaviate),
                }
            )
    first, last = steps[0], steps[-1]
    return {
        "rate_300k_vs_10k": ratio(last["events_per_s"], first["events_per_s"]),
        "search_p99_ms_300k": last["search_p99_ms"],
        "search_p50_ms_300k": last["search_p50_ms"],
        "collection_steps": steps,
        "collection_tenants": config.collection_tenants,
        "note": "searches: MemoryReader.search (hybrid, the service's defaults) with a "
        "precomputed query vector, sequential: Weaviate and the reader, no embedding; "
        + "; ".join(f"{s['stored']:,} stored: {s['cpu']}; worker {s['stages']}" for s in steps),
    }


def bench_endurance(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """``endurance_events`` through one worker in chunks: its RSS after the first chunk
    against at the end, and RSS, state on disk and rate after every chunk."""
    settings = private_settings(base, config.workdir)
    points: list[dict[str, Any]] = []
    with PrivateWorker(settings, config.workdir / "endurance-worker.log") as worker:
        _warm(settings, config)
        done = 0
        for n, size in enumerate(chunk_sizes(config.endurance_events, config.endurance_chunk)):
            docs = vector_adds(
                size,
                config.tenants,
                config.seed + 400 + n,
                dim=settings.embedding_dim,
                prefix=f"e{n}-",
            )
            records = vector_records(docs)
            del docs
            per_s = rate(drain(settings, records, config), f"endurance chunk {n}")
            done += size
            points.append(
                {
                    "events": done,
                    "events_per_s": per_s,
                    "worker_rss_mb": rss_bytes(worker.pid) / MIB,
                    "state_mb": tree_bytes(settings.stack_dir) / MIB,
                    "state_unflushed_mb": wal_bytes(settings.stack_dir) / MIB,
                }
            )
            log.info("endurance: %s", points[-1])
    return {
        "rss_growth_ratio": points[-1]["worker_rss_mb"] / points[0]["worker_rss_mb"],
        "endurance_points": points,
        "endurance_events": done,
    }


def growth_sizes(config: BenchConfig) -> dict[str, Any]:
    """The growth benchmarks' sizes, for the run's document. Pure."""
    return {
        "tenant_events": config.tenant_events,
        "tenant_counts": list(config.tenant_counts),
        "collection_sizes": list(config.collection_sizes),
        "collection_tenants": config.collection_tenants,
        "collection_drain_events": config.collection_drain_events,
        "search_queries": config.search_queries,
        "endurance_events": config.endurance_events,
        "endurance_chunk": config.endurance_chunk,
    }
