"""The benchmarks, each against its same-run baseline, and the run that collects them.

One failed benchmark is noted and the others still run; a benchmark that is not
selected, or cannot run here, says so in the notes instead of a number.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.bench.baselines import embed_rate, import_objects, model_dir, weaviate_import_rate
from loadgen.bench.breakdown import Breakdown
from loadgen.bench.config import RESULT_KEYS, BenchConfig
from loadgen.bench.growth import bench_collection, bench_endurance, bench_tenants, growth_sizes
from loadgen.bench.harness import (
    CpuShare,
    PrivateWorker,
    adds,
    as_fast,
    drain,
    drain_enriched,
    drained_per_s,
    private_settings,
    rate,
    records_of,
    stack_pids,
    wait_split,
    warm_up,
)
from loadgen.fake_llm.process import FakeLlmProcess
from loadgen.replay.records import Pace
from loadgen.replay.run import ReplayOptions, replay
from loadgen.stats import latency_summary
from loadgen.synth import SynthConfig, synth_events
from streams.settings import Settings
from streams.stack import launcher

log = logging.getLogger(__name__)

FAKE_LLM = Path(__file__).parents[1] / "fake_llm" / "server.py"


def bench_fast(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Fast-mode drain of fresh events vs fastembed alone on the same texts."""
    docs = adds(config, config.fast_events, 0)
    texts = [str(d["content"]) for d in docs]
    baseline = embed_rate(texts, base.max_batch, model_dir(base))
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "fast-worker.log") as worker:
        warm_up(settings, config)
        with Breakdown(base, worker) as where:
            measured = drained_per_s(settings, docs, config, "fast drain")
    return {
        "fast_vs_embed_ratio": measured / baseline,
        "fast_drain_events_per_s": measured,
        "embed_alone_per_s": baseline,
        "fast_events": len(docs),
        "batch": base.max_batch,
        "note": f"fast drain: {where.summary()}",
    }


def bench_vector(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Events with precomputed vectors vs the best plain batched Weaviate import of the
    same objects (:mod:`loadgen.bench.imports`)."""
    docs = adds(config, config.vector_events, 1, vector_dim=base.embedding_dim)
    baseline = weaviate_import_rate(base, import_objects(docs), base.max_batch)
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "vector-worker.log") as worker:
        warm_up(settings, config)
        with Breakdown(base, worker) as where:
            measured = drained_per_s(settings, docs, config, "vector drain")
    by_way = baseline["per_s_by_way"]
    return {
        "vector_path_vs_weaviate_ratio": measured / baseline["per_s"],
        "vector_path_events_per_s": measured,
        "weaviate_import_per_s": baseline["per_s"],
        "weaviate_import_best": baseline["best"],
        **{f"weaviate_import_{way}_per_s": rate for way, rate in by_way.items()},
        "vector_events": len(docs),
        "note": "baseline: the best plain import, of "
        + ", ".join(f"{way} {rate:,.0f}" for way, rate in by_way.items())
        + f" obj/s; vector drain: {where.summary()}",
    }


def bench_scale_out(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """The precomputed-vector path drained by one worker, then by two workers of one
    group (same events count, fresh topics each), with where the CPU time went."""
    docs = [adds(config, config.vector_events, seed, vector_dim=base.embedding_dim)
            for seed in (5, 6)]  # fmt: skip
    stack = stack_pids(base)
    one_settings = private_settings(base, config.workdir)
    with PrivateWorker(one_settings, config.workdir / "scale-one.log") as one:
        warm_up(one_settings, config)
        with CpuShare({"worker": [one.pid], **stack, "load generator": [os.getpid()]}) as one_cpu:
            single = drained_per_s(one_settings, docs[0], config, "one worker")
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "scale-a.log") as first:
        second = settings.model_copy(update={"worker_metrics_port": launcher.free_port()})
        with launcher.spawn(
            [sys.executable, "-m", "streams.cli", "worker"],
            config.workdir / "scale-b.log",
            env=launcher.settings_env(second),
            what="the second worker",
        ) as other:
            wait_split(settings, second, other)
            warm_up(settings, config)
            pids = {"workers": [first.pid, other.pid], **stack, "load generator": [os.getpid()]}
            with CpuShare(pids) as two_cpu:
                double = drained_per_s(settings, docs[1], config, "two workers")
    return {
        "scale_out_two_vs_one_ratio": double / single,
        "scale_out_one_worker_per_s": single,
        "scale_out_two_workers_per_s": double,
        "vector_events": len(docs[1]),
        "note": f"one worker: {one_cpu.summary()}; two workers: {two_cpu.summary()}",
    }


def bench_duplicate(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Re-publishing already indexed events (acked as noop:duplicate_event)."""
    docs = adds(config, config.duplicate_events, 2, vector_dim=base.embedding_dim)
    records = records_of(docs)
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "duplicate-worker.log") as worker:
        warm_up(settings, config)
        first = rate(drain(settings, records, config), "duplicate benchmark, first pass")
        with Breakdown(base, worker) as where:
            again = drain(settings, records, config)
        measured = rate(again, "duplicate benchmark, re-publication")
    return {
        "duplicate_events_per_s": measured,
        "duplicate_vs_first_pass_ratio": measured / first,
        "duplicate_first_pass_events_per_s": first,
        "duplicate_events": len(records),
        "duplicate_outcomes": dict(Counter(str(ack["outcome"]) for ack in again.acks)),
        "note": f"re-publication: {where.summary()}",
    }


def bench_latency(base: Settings, config: BenchConfig, drain_rate: float) -> dict[str, Any]:
    """Open-loop replay at half the drain rate; latency from the acks."""
    target = config.latency_rate or drain_rate / 2
    count = max(1, math.ceil(target * config.latency_seconds))
    docs = list(
        synth_events(SynthConfig(count=count, tenants=config.tenants, seed=config.seed + 3))
    )
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "latency-worker.log") as worker:
        warm_up(settings, config)
        options = ReplayOptions(
            pace=Pace(rate=target),
            wait_s=max(120.0, config.latency_seconds),
            progress=config.progress,
        )
        with Breakdown(base, worker) as where:
            result = asyncio.run(replay(settings, records_of(docs), options))
    rate(result, "latency run")
    summary = latency_summary(
        float(a["indexed_at_ms"]) - float(a["produced_at_ms"])
        for a in result.acks
        if isinstance(a.get("produced_at_ms"), int)
    )
    return {
        "p99_ms_at_half_load": summary["p99"],
        "p50_ms_at_half_load": summary["p50"],
        "p95_ms_at_half_load": summary["p95"],
        "max_ms_at_half_load": summary["max"],
        "half_load_target_per_s": target,
        "half_load_offered_per_s": result.offered_per_s,
        "half_load_events": result.sent,
        "half_load_late_sends": result.lateness.late,
        "fast_drain_rate_used_per_s": drain_rate,
        "note": f"half load: {where.summary()}",
    }


def _new_texts(
    docs: list[dict[str, object]], seen: list[dict[str, object]]
) -> list[dict[str, object]]:
    """The ``docs`` whose content none of ``seen`` has (nothing the fake LLM cached)."""
    cached = {d["content"] for d in seen}
    return [d for d in docs if d["content"] not in cached]


def bench_intelligent(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Intelligent mode (fake LLM) vs fast mode on the same events: publish start until
    every event has its ``memory.enriched`` record, against until every ack. One worker
    runs both, fast first (one worker start less in a run that must stay short).

    Then the LLM's effect on the fast path: new texts (none cached, so no enrichment
    can succeed) are drained in fast mode, the fake LLM is stopped, and the same texts
    are drained once more in intelligent mode. Indexing (acks) with the LLM down
    against the adjacent fast run shows whether a dead endpoint slows the fast path."""
    if not FAKE_LLM.exists():
        return {"intelligent_vs_fast_ratio": None, "note": "intelligent mode not available"}
    docs = adds(config, config.intelligent_events, 5, mode="intelligent")
    down_docs = _new_texts(adds(config, config.intelligent_events, 6, mode="intelligent"), docs)
    latency = ("--latency-ms", str(config.llm_latency_ms))
    with FakeLlmProcess(config.workdir / "fake-llm.log", *latency) as llm:
        settings = private_settings(base, config.workdir, llm_base_url=llm.base_url)
        with PrivateWorker(settings, config.workdir / "intelligent-worker.log") as worker:
            warm_up(settings, config)
            fast = drained_per_s(settings, as_fast(docs), config, "intelligent baseline")
            with Breakdown(base, worker) as where:
                result = drain_enriched(settings, docs, config)
            requests = llm.stats().get("requests")
            up = drained_per_s(settings, as_fast(down_docs), config, "LLM down baseline")
            llm.stop()
            down = drained_per_s(settings, down_docs, config, "LLM down")
    out: dict[str, Any] = {
        "intelligent_fast_events_per_s": fast,
        "intelligent_events": len(docs),
        "llm_requests": requests,
        "llm_down_index_events_per_s": down,
        "llm_down_fast_events_per_s": up,
        "llm_down_vs_fast_ratio": down / up,
        "llm_down_events": len(down_docs),
    }
    if not result.complete or not result.drain_seconds:
        note = (
            "intelligent mode not available: "
            f"{result.acked} of {len(docs)} events enriched, none for "
            f"{config.intelligent_stall_s:.0f}s"
        )
        return {
            "intelligent_vs_fast_ratio": None,
            "intelligent_enriched": result.acked,
            **out,
            "note": note,
        }
    measured = result.sent / result.drain_seconds
    return {
        "intelligent_vs_fast_ratio": measured / fast,
        "intelligent_events_per_s": measured,
        "llm_latency_ms": config.llm_latency_ms,
        **out,
        "note": f"intelligent drain: {where.summary()}",
    }


@dataclass
class BenchRun:
    """The results, notes, durations and failures of the benchmarks run so far."""

    results: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(RESULT_KEYS))
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def run(self, name: str, config: BenchConfig, step: Callable[[], dict[str, Any]]) -> None:
        """Run one benchmark if selected; a failure is noted, not raised."""
        if name not in config.only:
            self.notes[name] = "skipped (not selected)"
            return
        log.info("benchmark %s ...", name)
        started = time.monotonic()
        try:
            out = step()
        except Exception as exc:  # one failed benchmark must not stop the others
            log.exception("benchmark %s failed", name)
            self.notes[name] = f"failed: {exc}"
            self.failed.append(name)
        else:
            note = out.pop("note", None)
            if note:
                self.notes[name] = str(note)
            self.results.update(out)
        self.seconds[name] = time.monotonic() - started

    def document(self, config: BenchConfig) -> dict[str, Any]:
        """The JSON document of the run: results, notes, durations and the config."""
        return {
            **self.results,
            "notes": self.notes,
            "seconds": self.seconds,
            "config": {
                "fast_events": config.fast_events,
                "vector_events": config.vector_events,
                "duplicate_events": config.duplicate_events,
                "latency_seconds": config.latency_seconds,
                "intelligent_events": config.intelligent_events,
                "llm_latency_ms": config.llm_latency_ms,
                "tenants": config.tenants,
                "seed": config.seed,
                **growth_sizes(config),
            },
        }


def run_all(base: Settings, config: BenchConfig) -> BenchRun:
    """Every selected benchmark, in order (latency uses the fast drain rate)."""
    run = BenchRun()
    run.run("fast", config, lambda: bench_fast(base, config))
    run.run("vector", config, lambda: bench_vector(base, config))
    run.run("duplicate", config, lambda: bench_duplicate(base, config))
    drain_rate = run.results.get("fast_drain_events_per_s")
    if "latency" in config.only and config.latency_rate is None and not drain_rate:
        run.notes["latency"] = "skipped: needs the fast drain rate (run fast, or --latency-rate)"
    else:
        run.run("latency", config, lambda: bench_latency(base, config, float(drain_rate or 0)))
    run.run("intelligent", config, lambda: bench_intelligent(base, config))
    run.run("scaleout", config, lambda: bench_scale_out(base, config))
    run.run("tenants", config, lambda: bench_tenants(base, config))
    run.run("collection", config, lambda: bench_collection(base, config))
    run.run("endurance", config, lambda: bench_endurance(base, config))
    return run
