"""The tenants benchmark: the same events (precomputed vectors) over few and over
many tenants, each count drained by a fresh private worker, with Weaviate's RSS,
shards and open files after each. A count that would take Weaviate past its
open-files limit (by the files per shard measured at the count before) is reported
as not run: trying it fails every user of the shared Weaviate while it lasts."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from loadgen.bench.config import BenchConfig
from loadgen.bench.footprint import open_files_limit
from loadgen.bench.growth_probes import files_of, mib_of, ratio, warm, weaviate_pid
from loadgen.bench.harness import (
    CpuShare,
    PrivateWorker,
    drain,
    private_settings,
    rate,
    stack_pids,
)
from loadgen.bench.stage_times import StageTimes
from loadgen.bench.vector_events import vector_adds, vector_records
from loadgen.bench.weaviate_ops import drop_collection, served_collection, tenant_count
from loadgen.replay.records import ReplayRecord
from streams.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["FILES_HEADROOM", "bench_tenants", "files_short"]

#: the share of Weaviate's open-files limit a tenant count may fill (the stack is
#: shared: other collections open files too while a count runs)
FILES_HEADROOM = 0.8


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


def _tenant_run(base: Settings, config: BenchConfig, count: int) -> dict[str, Any]:
    """The run's events over ``count`` tenants, drained by a fresh worker."""
    docs = vector_adds(
        config.tenant_events, count, config.seed + 11, dim=base.embedding_dim, prefix="tn-"
    )
    records = vector_records(docs)
    del docs
    settings = private_settings(base, config.workdir)
    try:
        return _drained_over(base, settings, config, records, count)
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
    base: Settings,
    settings: Settings,
    config: BenchConfig,
    records: list[ReplayRecord],
    count: int,
) -> dict[str, Any]:
    """A fresh worker on ``settings`` (private ones of the stack of ``base``) drains
    ``records`` (over ``count`` tenants); the figures after."""
    weaviate = weaviate_pid(base)
    before = mib_of(weaviate)
    with PrivateWorker(settings, config.workdir / f"tenants-{count}-worker.log") as worker:
        warm(settings, config)
        groups = {"worker": [worker.pid], **stack_pids(base), "load generator": [os.getpid()]}
        with CpuShare(groups) as cpu, StageTimes(settings.worker_metrics_port) as stages:
            result = drain(settings, records, config, stall_s=config.tenant_stall_s)
            per_s = rate(result, f"{count} tenants")
        shards = tenant_count(settings)
        own = files_of(weaviate, served_collection(settings).lower())
        return {
            "tenants": count,
            "events_per_s": per_s,
            "weaviate_rss_mb_before": before,
            "weaviate_rss_mb": mib_of(weaviate),
            "shards": shards,
            "weaviate_open_files": files_of(weaviate),
            "collection_open_files": own,
            "open_files_per_shard": ratio(own, shards),
            "cpu": cpu.summary(),
            "stages": stages.summary(),
        }


def _why_not(base: Settings, count: int, per_shard: float | None) -> str | None:
    """:func:`files_short` for Weaviate now, once a files-per-shard figure exists."""
    pid = weaviate_pid(base)
    if pid is None or not per_shard:
        return None
    try:
        limit = open_files_limit(pid)
    except (OSError, ValueError):
        return None
    return files_short(count, per_shard, files_of(pid), limit)


def _tenant_run_or_error(base: Settings, config: BenchConfig, count: int) -> dict[str, Any]:
    try:
        return _tenant_run(base, config, count)
    except Exception as exc:  # a count Weaviate cannot hold is a finding, not the end
        log.exception("tenants benchmark at %d tenants failed", count)
        return {"tenants": count, "error": str(exc), "weaviate_rss_mb": mib_of(weaviate_pid(base))}


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
            per_shard = measured  # the largest count's: the collection's own files weigh least
        runs.append(run)
        log.info("tenants: %s", run)
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
