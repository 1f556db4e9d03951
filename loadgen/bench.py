"""Benchmarks, each a ratio against a baseline measured in the same run.

- fast: fast-mode drain of N fresh events, against fastembed alone on the same
  texts with the same batch size;
- vector: drain of events carrying precomputed vectors, against a plain batched
  Weaviate import (the python client) of the same objects;
- duplicate: re-published, already indexed events (no-ops), events per second
  (the first pass of the same events is the reference);
- latency: p50/p95/p99 end to end at half the fast drain rate, open loop;
- intelligent: intelligent mode with the fake LLM at 150 ms, against fast mode on
  the same events.

Each benchmark starts its own worker (`agentmem worker`, private topic prefix,
collection, state folder and metrics port), drives it through Kafka only, and
afterwards stops it and deletes its topics and Weaviate collection. Absolute
numbers depend on the machine; the ratios are what to compare between runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import weaviate
from aiokafka.admin import AIOKafkaAdminClient
from weaviate.classes.config import Configure, DataType, Property

from loadgen.replay import Pace, ReplayOptions, ReplayRecord, ReplayResult, parse_line, replay
from loadgen.report import latency_summary, md_table
from loadgen.synth import SynthConfig, synth_events, to_line
from streams.settings import Settings
from streams.stack.modelpack import pack_dir

log = logging.getLogger(__name__)

WARM_UP_EVENTS = 20
BENCHMARKS = ("fast", "vector", "duplicate", "latency", "intelligent")
FAKE_LLM = Path(__file__).parent / "fake_llm" / "server.py"
RESULT_KEYS = (
    "fast_vs_embed_ratio",
    "vector_path_vs_weaviate_ratio",
    "duplicate_events_per_s",
    "p99_ms_at_half_load",
    "intelligent_vs_fast_ratio",
)


@dataclass(frozen=True)
class BenchConfig:
    fast_events: int = 20_000
    vector_events: int = 10_000
    duplicate_events: int = 10_000
    latency_seconds: float = 60.0
    latency_rate: float | None = None  # events/s; default: half the fast drain rate
    intelligent_events: int = 5_000
    llm_latency_ms: float = 150.0
    tenants: int = 50
    seed: int = 7
    only: frozenset[str] = frozenset(BENCHMARKS)
    drain_timeout_s: float = 1800.0
    intelligent_stall_s: float = 120.0
    progress: bool = False
    workdir: Path = Path(".")


# ---------------------------------------------------------------- private workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def private_settings(base: Settings, workdir: Path, **overrides: Any) -> Settings:
    """The shared stack with a private topic prefix, collection, state and metrics port."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        **base.model_dump(),
        "topic_prefix": f"bench.{tag}.",
        "worker_id": f"bench-{tag}",
        "weaviate_collection": f"Bench{tag}",
        "worker_metrics_port": free_port(),
        "stack_dir": workdir / tag,
        **overrides,
    }
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment of a child process that builds exactly these settings."""
    return settings.child_env(os.environ)


def weaviate_client(settings: Settings) -> weaviate.WeaviateClient:
    return weaviate.connect_to_local(
        host=settings.weaviate_host,
        port=settings.weaviate_http_port,
        grpc_port=settings.weaviate_grpc_port,
    )


async def delete_topics(bootstrap: str, prefixes: Sequence[str]) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not start within {timeout_s:.0f}s")


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``: a benchmark worker's state is deleted
    right after, so a slow graceful shutdown would only lengthen the run."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def delete_collection(settings: Settings, name: str) -> None:
    try:
        with weaviate_client(settings) as client:
            client.collections.delete(name)
    except Exception:  # cleanup must not hide the benchmark's own error
        log.warning("could not delete collection %s", name, exc_info=True)


class PrivateWorker:
    """`agentmem worker` on private settings; stopped and cleaned up on exit: its
    collection, topics and state are deleted.

    Collections go one at a time: Weaviate deletes a collection with many tenants in
    seconds, and several deletions at once time out (they queue behind each other)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrivateWorker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env=settings_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{self.settings.worker_metrics_port}/metrics"
        started = time.monotonic()
        try:
            _wait_http(url, self.proc, f"the worker (log {self.log_path})", 180)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        log.info("worker %s up in %.1fs", self.settings.worker_id, time.monotonic() - started)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        started = time.monotonic()
        if self.proc is not None:
            _stop(self.proc)
        s = self.settings
        delete_collection(s, s.weaviate_collection)
        try:
            asyncio.run(
                delete_topics(s.kafka_bootstrap_servers, [s.topic_prefix, f"{s.worker_id}-"])
            )
        except Exception:  # cleanup must not hide the benchmark's own error
            log.warning("could not delete topics of %s", s.topic_prefix, exc_info=True)
        shutil.rmtree(s.stack_dir, ignore_errors=True)
        log.info(
            "worker %s stopped and cleaned up in %.1fs", s.worker_id, time.monotonic() - started
        )


# ---------------------------------------------------------------- drains


def records_of(docs: Sequence[dict[str, object]]) -> list[ReplayRecord]:
    return [parse_line(to_line(d).encode()) for d in docs]


def drain(
    settings: Settings,
    records: Sequence[ReplayRecord],
    config: BenchConfig,
    follow: str = "memory.indexed",
    stall_s: float | None = None,
) -> ReplayResult:
    """Publish all at once; wait until every event has its record on ``follow``."""
    options = ReplayOptions(
        pace=Pace(),
        follow=follow,
        wait_s=config.drain_timeout_s,
        stall_s=stall_s,
        progress=config.progress,
    )
    return asyncio.run(replay(settings, records, options))


def warm_up(settings: Settings, config: BenchConfig) -> None:
    """Drain a few events first: a fresh worker serves /metrics before its consumer has
    its partitions and before the first embedding, and neither belongs in a measurement."""
    docs = _adds(config, WARM_UP_EVENTS, 99)
    result = drain(settings, records_of(docs), config)
    _rate(result, "warm-up")
    log.info("warm-up drained in %.1fs", result.drain_seconds)


def _rate(result: ReplayResult, what: str) -> float:
    if not result.complete or not result.drain_seconds:
        raise RuntimeError(
            f"{what}: only {result.acked} of {result.expected_acks} records on "
            f"{result.followed} (see the worker log)"
        )
    return result.sent / result.drain_seconds


def embed_rate(texts: list[str], batch: int, model_dir: Path) -> float:
    """fastembed alone on the texts, in this process (the baseline): the same model
    pack and batch size as the worker, called directly, without our code around it."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = "bench/all-MiniLM-L6-v2-int8"
    if name not in {m["model"] for m in TextEmbedding.list_supported_models()}:
        TextEmbedding.add_custom_model(
            model=name,
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"),
            dim=384,
            model_file="model.onnx",
        )
    model = TextEmbedding(name, specific_model_path=str(model_dir))
    list(model.embed(texts[:batch], batch_size=batch))  # warm-up
    started = time.perf_counter()
    list(model.embed(texts, batch_size=batch))
    return len(texts) / (time.perf_counter() - started)


def model_dir(settings: Settings) -> Path:
    """The offline model pack the worker loads."""
    return pack_dir(settings.cache_dir)


def _adds(config: BenchConfig, count: int, seed_offset: int, **kw: Any) -> list[dict[str, object]]:
    synth = SynthConfig(
        count=count,
        tenants=config.tenants,
        seed=config.seed + seed_offset,
        update_ratio=0.0,
        delete_ratio=0.0,
        **kw,
    )
    return list(synth_events(synth))


# ---------------------------------------------------------------- the benchmarks


def bench_fast(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Fast-mode drain of fresh events vs fastembed alone on the same texts."""
    docs = _adds(config, config.fast_events, 0)
    texts = [str(d["content"]) for d in docs]
    baseline = embed_rate(texts, base.max_batch, model_dir(base))
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "fast-worker.log"):
        warm_up(settings, config)
        rate = _rate(drain(settings, records_of(docs), config), "fast drain")
    return {
        "fast_vs_embed_ratio": rate / baseline,
        "fast_drain_events_per_s": rate,
        "embed_alone_per_s": baseline,
        "fast_events": len(docs),
        "batch": base.max_batch,
    }


@dataclass(frozen=True)
class ImportObject:
    tenant: str
    uuid: str
    properties: dict[str, Any]
    vector: list[float]


IMPORT_PROPERTIES = [
    Property(name="content", data_type=DataType.TEXT),
    Property(name="memory_id", data_type=DataType.TEXT),
    Property(name="agent_id", data_type=DataType.TEXT),
    Property(name="run_id", data_type=DataType.TEXT),
    Property(name="metadata_json", data_type=DataType.TEXT, index_searchable=False),
    Property(name="version", data_type=DataType.INT),
    Property(name="event_id", data_type=DataType.TEXT),
    Property(name="occurred_at", data_type=DataType.DATE),
]


def import_objects(docs: Sequence[dict[str, object]]) -> list[ImportObject]:
    """The objects the worker would store for these adds, as a plain import writes them."""
    out = []
    for d in docs:
        tenant, memory_id = str(d["tenant"]), str(d["memory_id"])
        vector = d.get("vector")
        if not isinstance(vector, list):
            raise ValueError(f"event {d.get('event_id')} carries no vector")
        out.append(
            ImportObject(
                tenant,
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{memory_id}")),
                {
                    "content": d["content"],
                    "memory_id": memory_id,
                    "agent_id": d["agent_id"],
                    "run_id": d["run_id"],
                    "metadata_json": json.dumps(d["metadata"], sort_keys=True),
                    "version": 1,
                    "event_id": d["event_id"],
                    "occurred_at": d["occurred_at"],
                },
                [float(v) for v in vector],
            )
        )
    return out


def weaviate_import_rate(
    base: Settings, objects: Sequence[ImportObject], batch_size: int
) -> dict[str, Any]:
    """The weaviate client's batch import into a fresh multi-tenant collection."""
    name = f"BenchImport{uuid.uuid4().hex[:8]}"
    with weaviate_client(base) as client:
        try:
            client.collections.create(
                name,
                properties=IMPORT_PROPERTIES,
                vector_config=Configure.Vectors.self_provided(),
                multi_tenancy_config=Configure.multi_tenancy(
                    enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
                ),
            )
            started = time.perf_counter()
            with client.batch.fixed_size(batch_size=batch_size, concurrent_requests=2) as batch:
                for o in objects:
                    batch.add_object(
                        collection=name,
                        properties=o.properties,
                        uuid=o.uuid,
                        vector=o.vector,
                        tenant=o.tenant,
                    )
            seconds = time.perf_counter() - started
            failed = len(client.batch.failed_objects)
        finally:
            delete_collection(base, name)
    if failed:
        raise RuntimeError(f"the Weaviate import baseline lost {failed} objects")
    return {"objects": len(objects), "seconds": seconds, "per_s": len(objects) / seconds}


def bench_vector(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Events with precomputed vectors vs a plain batched Weaviate import of the same objects."""
    docs = _adds(config, config.vector_events, 1, vector_dim=base.embedding_dim)
    baseline = weaviate_import_rate(base, import_objects(docs), base.max_batch)
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "vector-worker.log"):
        warm_up(settings, config)
        rate = _rate(drain(settings, records_of(docs), config), "vector drain")
    return {
        "vector_path_vs_weaviate_ratio": rate / baseline["per_s"],
        "vector_path_events_per_s": rate,
        "weaviate_import_per_s": baseline["per_s"],
        "vector_events": len(docs),
    }


def bench_duplicate(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """Re-publishing already indexed events (acked as noop:duplicate_event)."""
    docs = _adds(config, config.duplicate_events, 2, vector_dim=base.embedding_dim)
    records = records_of(docs)
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "duplicate-worker.log"):
        warm_up(settings, config)
        first = _rate(drain(settings, records, config), "duplicate benchmark, first pass")
        again = drain(settings, records, config)
        rate = _rate(again, "duplicate benchmark, re-publication")
    outcomes: dict[str, int] = {}
    for ack in again.acks:
        outcomes[str(ack["outcome"])] = outcomes.get(str(ack["outcome"]), 0) + 1
    return {
        "duplicate_events_per_s": rate,
        "duplicate_vs_first_pass_ratio": rate / first,
        "duplicate_first_pass_events_per_s": first,
        "duplicate_events": len(records),
        "duplicate_outcomes": outcomes,
    }


def bench_latency(base: Settings, config: BenchConfig, drain_rate: float) -> dict[str, Any]:
    """Open-loop replay at half the drain rate; latency from the acks."""
    rate = config.latency_rate or drain_rate / 2
    count = max(1, math.ceil(rate * config.latency_seconds))
    docs = list(
        synth_events(SynthConfig(count=count, tenants=config.tenants, seed=config.seed + 3))
    )
    settings = private_settings(base, config.workdir)
    with PrivateWorker(settings, config.workdir / "latency-worker.log"):
        warm_up(settings, config)
        options = ReplayOptions(
            pace=Pace(rate=rate),
            wait_s=max(120.0, config.latency_seconds),
            progress=config.progress,
        )
        result = asyncio.run(replay(settings, records_of(docs), options))
    _rate(result, "latency run")
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
        "half_load_target_per_s": rate,
        "half_load_offered_per_s": result.offered_per_s,
        "half_load_events": result.sent,
        "half_load_late_sends": result.lateness.late,
        "fast_drain_rate_used_per_s": drain_rate,
    }


class FakeLlm:
    """`loadgen fake-llm` in a child process."""

    def __init__(self, latency_ms: float, log_path: Path) -> None:
        self.port = free_port()
        self.latency_ms, self.log_path = latency_ms, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=5).json()
        return answer

    def __enter__(self) -> FakeLlm:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "loadgen.cli",
                    "fake-llm",
                    "--port",
                    str(self.port),
                    "--latency-ms",
                    str(self.latency_ms),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_http(f"http://127.0.0.1:{self.port}/stats", self.proc, "the fake LLM", 60)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def stop(self) -> None:
        """Stop the server: from now on nothing listens on its port."""
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


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
    docs = _adds(config, config.intelligent_events, 5, mode="intelligent")
    # the same events in fast mode, under other tenants so that they are new memories too
    fast_docs = [{**d, "mode": "fast", "tenant": f"fast-{d['tenant']}"} for d in docs]
    cached = {d["content"] for d in docs}
    down_docs = [
        d
        for d in _adds(config, config.intelligent_events, 6, mode="intelligent")
        if d["content"] not in cached
    ]
    down_fast_docs = [{**d, "mode": "fast", "tenant": f"fast-{d['tenant']}"} for d in down_docs]
    with FakeLlm(config.llm_latency_ms, config.workdir / "fake-llm.log") as llm:
        settings = private_settings(base, config.workdir, llm_base_url=llm.base_url)
        with PrivateWorker(settings, config.workdir / "intelligent-worker.log"):
            warm_up(settings, config)
            fast = _rate(drain(settings, records_of(fast_docs), config), "intelligent baseline")
            result = drain(
                settings,
                records_of(docs),
                config,
                follow="memory.enriched",
                stall_s=config.intelligent_stall_s,
            )
            requests = llm.stats().get("requests")
            up = _rate(drain(settings, records_of(down_fast_docs), config), "LLM down baseline")
            llm.stop()
            down = _rate(drain(settings, records_of(down_docs), config), "LLM down")
    down_results = {
        "llm_down_index_events_per_s": down,
        "llm_down_fast_events_per_s": up,
        "llm_down_vs_fast_ratio": down / up,
        "llm_down_events": len(down_docs),
    }
    if not result.complete or not result.drain_seconds:
        return {
            "intelligent_vs_fast_ratio": None,
            "intelligent_fast_events_per_s": fast,
            "intelligent_enriched": result.acked,
            "intelligent_events": len(docs),
            "llm_requests": requests,
            **down_results,
            "note": (
                "intelligent mode not available: "
                f"{result.acked} of {len(docs)} events enriched, none for "
                f"{config.intelligent_stall_s:.0f}s"
            ),
        }
    rate = result.sent / result.drain_seconds
    return {
        "intelligent_vs_fast_ratio": rate / fast,
        "intelligent_events_per_s": rate,
        "intelligent_fast_events_per_s": fast,
        "intelligent_events": len(docs),
        "llm_latency_ms": config.llm_latency_ms,
        "llm_requests": requests,
        **down_results,
    }


# ---------------------------------------------------------------- the run


@dataclass
class BenchRun:
    results: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(RESULT_KEYS))
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def run(self, name: str, config: BenchConfig, step: Callable[[], dict[str, Any]]) -> None:
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
            },
        }


def run_all(base: Settings, config: BenchConfig) -> BenchRun:
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
    return run


def render_markdown(doc: dict[str, Any]) -> str:
    """The results as one table: benchmark, measured, baseline, result, note."""

    def num(key: str, unit: str = "", digits: int = 1) -> str:
        value = doc.get(key)
        if not isinstance(value, int | float):
            return "-"
        return f"{value:,.{digits}f}{unit}"

    notes = doc.get("notes", {})
    rows = [
        [
            "fast drain vs fastembed alone",
            f"{num('fast_drain_events_per_s', ' ev/s')} ({num('fast_events', '', 0)} events)",
            num("embed_alone_per_s", " texts/s"),
            num("fast_vs_embed_ratio", "", 3),
            notes.get("fast", ""),
        ],
        [
            "precomputed vectors vs Weaviate batch import",
            f"{num('vector_path_events_per_s', ' ev/s')} ({num('vector_events', '', 0)} events)",
            num("weaviate_import_per_s", " obj/s"),
            num("vector_path_vs_weaviate_ratio", "", 3),
            notes.get("vector", ""),
        ],
        [
            "duplicate events (no-ops)",
            f"{num('duplicate_events_per_s', ' ev/s')} ({num('duplicate_events', '', 0)} events)",
            f"first pass {num('duplicate_first_pass_events_per_s', ' ev/s')}",
            num("duplicate_vs_first_pass_ratio", "", 3),
            notes.get("duplicate", ""),
        ],
        [
            "latency at half the drain rate (open loop)",
            f"p50 {num('p50_ms_at_half_load', ' ms', 0)}, "
            f"p95 {num('p95_ms_at_half_load', ' ms', 0)}, "
            f"p99 {num('p99_ms_at_half_load', ' ms', 0)}",
            f"{num('half_load_target_per_s', ' ev/s')} offered, "
            f"{num('half_load_events', '', 0)} events",
            f"p99 {num('p99_ms_at_half_load', ' ms', 0)}",
            notes.get("latency", ""),
        ],
        [
            "intelligent (fake LLM) vs fast",
            f"{num('intelligent_events_per_s', ' ev/s')} "
            f"({num('intelligent_events', '', 0)} events)",
            num("intelligent_fast_events_per_s", " ev/s"),
            num("intelligent_vs_fast_ratio", "", 3),
            notes.get("intelligent", ""),
        ],
        [
            "indexing with the LLM down vs fast",
            f"{num('llm_down_index_events_per_s', ' ev/s')} "
            f"({num('llm_down_events', '', 0)} events)",
            num("llm_down_fast_events_per_s", " ev/s"),
            num("llm_down_vs_fast_ratio", "", 3),
            notes.get("intelligent", ""),
        ],
    ]
    return md_table(["benchmark", "measured", "baseline", "result", "note"], rows) + "\n"


def write_results(doc: dict[str, Any], json_path: Path, md_path: Path | None = None) -> None:
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    if md_path is not None:
        md_path.write_text(render_markdown(doc))
