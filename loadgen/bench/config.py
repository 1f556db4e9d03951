"""What a benchmark run measures, how much of it, and the keys of its results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = ("fast", "vector", "duplicate", "latency", "intelligent", "scaleout")
RESULT_KEYS = (
    "fast_vs_embed_ratio",
    "vector_path_vs_weaviate_ratio",
    "duplicate_events_per_s",
    "p99_ms_at_half_load",
    "intelligent_vs_fast_ratio",
    "scale_out_two_vs_one_ratio",
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
    seed: int = 7
    only: frozenset[str] = frozenset(BENCHMARKS)
    drain_timeout_s: float = 1800.0
    intelligent_stall_s: float = 120.0
    progress: bool = False
    workdir: Path = Path(".")
