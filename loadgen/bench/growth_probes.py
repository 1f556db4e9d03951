"""What the growth benchmarks share: warming a worker up, reading Weaviate's
memory and open files, ratios and chunks."""

from __future__ import annotations

import time
from collections.abc import Callable

from loadgen.bench.config import BenchConfig
from loadgen.bench.footprint import MIB, open_files, rss_bytes
from loadgen.bench.harness import WARM_UP_EVENTS, cpu_seconds, drain, rate, stack_pids
from loadgen.bench.vector_events import vector_adds, vector_records
from streams.settings import Settings

__all__ = ["chunk_sizes", "files_of", "mib_of", "ratio", "settle", "warm", "weaviate_pid"]

#: a process is quiet when it used less than this share of one core over a window
QUIET_SHARE = 0.15
QUIET_WINDOW_S = 2.0


def chunk_sizes(total: int, chunk: int) -> list[int]:
    """``total`` split into chunks of ``chunk`` (the last one smaller). Pure."""
    return [min(chunk, total - start) for start in range(0, total, chunk)]


def ratio(top: float | None, bottom: float | None) -> float | None:
    """``top / bottom``, None when either is missing or the bottom is 0. Pure."""
    if top is None or not bottom:
        return None
    return top / bottom


def warm(settings: Settings, config: BenchConfig) -> None:
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


def mib_of(pid: int | None) -> float | None:
    """The RSS of ``pid`` in MiB (None: no such process)."""
    try:
        return None if pid is None else rss_bytes(pid) / MIB
    except (OSError, ValueError):
        return None


def weaviate_pid(base: Settings) -> int | None:
    """The local stack's Weaviate process, by its pid file."""
    pids = stack_pids(base).get("weaviate")
    return pids[0] if pids else None


def files_of(pid: int | None, under: str | None = None) -> int:
    """The files ``pid`` holds open, all or those under a folder named ``under`` (0: no
    such process)."""
    try:
        return 0 if pid is None else open_files(pid, under)
    except OSError:
        return 0


def settle(
    pid: int | None,
    limit_s: float,
    used: Callable[[int], float] = cpu_seconds,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait until ``pid`` is quiet (under :data:`QUIET_SHARE` of a core over a window of
    :data:`QUIET_WINDOW_S`), at most ``limit_s``; the seconds waited. After a bulk load
    Weaviate goes on with work of its own (flushes, compactions) that a measurement
    right after it would pay for."""
    if pid is None:
        return 0.0
    waited = 0.0
    while waited < limit_s:
        before = used(pid)
        sleep(QUIET_WINDOW_S)
        waited += QUIET_WINDOW_S
        if used(pid) - before < QUIET_SHARE * QUIET_WINDOW_S:
            break
    return waited
