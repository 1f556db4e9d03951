"""How cost grows: many tenants, a large collection, a long-running worker.

- tenants (:mod:`loadgen.bench.tenants`): the same events over few and over many
  tenants; Weaviate's RSS, shards and open files after each count;
- collection (:mod:`loadgen.bench.collection`): drain rate and search latency with
  more and more memories stored;
- endurance (here): many events through one worker in chunks, its RSS and the size
  of its state folder after each chunk.

Each is a ratio measured in one run; the per-step figures go into the document for
the report's table and chart (:mod:`loadgen.bench.render`, :mod:`loadgen.bench.chart`).
"""

from __future__ import annotations

import logging
from typing import Any

from loadgen.bench.collection import bench_collection
from loadgen.bench.config import BenchConfig
from loadgen.bench.footprint import MIB, rss_bytes, tree_bytes, wal_bytes
from loadgen.bench.growth_probes import chunk_sizes, ratio, warm
from loadgen.bench.harness import PrivateWorker, drain, private_settings, rate
from loadgen.bench.tenants import bench_tenants, files_short
from loadgen.bench.vector_events import vector_adds, vector_records
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


def bench_endurance(base: Settings, config: BenchConfig) -> dict[str, Any]:
    """``endurance_events`` through one worker in chunks: its RSS after the first chunk
    against at the end, and RSS, state on disk and rate after every chunk."""
    settings = private_settings(base, config.workdir)
    points: list[dict[str, Any]] = []
    with PrivateWorker(settings, config.workdir / "endurance-worker.log") as worker:
        warm(settings, config)
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
