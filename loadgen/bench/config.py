"""What a benchmark run measures, how much of it, and the keys of its results."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = (
    "fast",
    "vector",
    "duplicate",
    "latency",
    "intelligent",
    "scaleout",
    "tenants",
    "collection",
    "endurance",
)
RESULT_KEYS = (
    "fast_vs_embed_ratio",
    "vector_path_vs_weaviate_ratio",
    "duplicate_events_per_s",
    "p99_ms_at_half_load",
    "intelligent_vs_fast_ratio",
    "scale_out_two_vs_one_ratio",
    "tenants_10k_ratio",
    "rate_300k_vs_10k",
    "search_p99_ms_300k",
    "rss_growth_ratio",
)


@dataclass(frozen=True)
class BenchConfig:
    """Sizes, seeds and limits of one run (the defaults are `make bench`'s)."""

    fast_events: int = 20_000
    vector_events: int = 10_000
    duplicate_events: int = 10_000
    latency_seconds: float = 60.0
    latency_rate: float | None = None  # events/s; default: half the fast drain rate
    intelligent_events: int = 5_000
    llm_latency_ms: float = 150.0
    tenants: int = 50
    # how cost grows (loadgen/bench/growth.py)
    tenant_events: int = 20_000  # the same events over each count of tenant_counts
    # the first is the ratio's base; 500 fits a shared stack's Weaviate (about 14 open
    # files a shard, 20,000 allowed), 1,000 only a stack of its own
    tenant_counts: tuple[int, ...] = (20, 500, 10_000)
    # skip a tenant count that would pass Weaviate's open-files limit, by the files per
    # shard of the count before (trying it fails every Weaviate user on the stack)
    tenant_fd_guard: bool = True
    tenant_stall_s: float = 120.0  # a tenants drain without an ack for this long fails
    collection_sizes: tuple[int, ...] = (10_000, 100_000, 300_000)  # stored before a step
    collection_tenants: int = 10
    collection_drain_events: int = 5_000  # drained at each size
    search_queries: int = 300  # sequential, at each size
    endurance_events: int = 200_000
    endurance_chunk: int = 20_000  # published and drained at a time
    seed: int = 7
    only: frozenset[str] = frozenset(BENCHMARKS)
    drain_timeout_s: float = 1800.0
    intelligent_stall_s: float = 120.0
    progress: bool = False
    workdir: Path = Path(".")


#: the sizes of ``--quick``: every benchmark, smaller (a few minutes in all)
QUICK_SIZES: dict[str, object] = {
    "fast_events": 3_000,
    "vector_events": 3_000,
    "duplicate_events": 3_000,
    "latency_seconds": 20.0,
    "intelligent_events": 1_000,
    "tenant_events": 4_000,
    "tenant_counts": (20, 500),
    "collection_sizes": (5_000, 20_000),
    "collection_drain_events": 2_000,
    "search_queries": 100,
    "endurance_events": 30_000,
    "endurance_chunk": 10_000,
}

#: the fields a size flag may set (``loadgen bench --tenant-counts 20,1000`` ...)
SIZE_FIELDS = frozenset(f.name for f in dataclasses.fields(BenchConfig)) - {
    "only",
    "progress",
    "workdir",
    "tenant_fd_guard",
}


def sized(quick: bool, **explicit: object) -> dict[str, object]:
    """The size fields of a run: the defaults, or :data:`QUICK_SIZES` with ``quick``,
    overridden by the ``explicit`` ones that are not None. Pure."""
    unknown = set(explicit) - SIZE_FIELDS
    if unknown:
        raise ValueError(f"not a benchmark size: {', '.join(sorted(unknown))}")
    base = dict(QUICK_SIZES) if quick else {}
    return {**base, **{k: v for k, v in explicit.items() if v is not None}}


def check_growth_sizes(config: BenchConfig) -> None:
    """``ValueError`` naming the first growth size that cannot run. Pure."""
    if len(config.tenant_counts) < 2 or min(config.tenant_counts) < 1:
        raise ValueError("tenant counts: at least two, each at least 1 (the first is the base)")
    if len(config.collection_sizes) < 2 or min(config.collection_sizes) < 0:
        raise ValueError("collection sizes: at least two, none negative (the first is the base)")
    if list(config.collection_sizes) != sorted(config.collection_sizes):
        raise ValueError("collection sizes must grow (the collection is filled step by step)")
    if min(config.tenant_events, config.collection_drain_events, config.search_queries) < 1:
        raise ValueError("tenant events, collection drain events and searches must be >= 1")
    if config.collection_tenants < 1:
        raise ValueError("collection tenants must be at least 1")
    if config.endurance_chunk < 1 or config.endurance_events < 2 * config.endurance_chunk:
        raise ValueError("endurance: a chunk of at least 1 and at least two chunks of events")
