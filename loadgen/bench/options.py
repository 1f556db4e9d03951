"""`loadgen bench`'s command line: its flags and the :class:`BenchConfig` they make.

Sizes come from the defaults (`make bench`), or from ``--quick``'s smaller ones, and
any size given as a flag (or its environment variable) overrides either.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from loadgen.bench.config import BENCHMARKS, BenchConfig, check_growth_sizes, sized

__all__ = ["add_arguments", "config_of", "counts", "selected"]


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def counts(text: str) -> tuple[int, ...]:
    """``"20,1000, 10_000"`` as ``(20, 1000, 10000)``. Pure."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of counts: {text!r}"
        ) from None


def selected(only: str) -> frozenset[str]:
    """The benchmarks of an ``--only`` list; ``ValueError`` naming unknown ones. Pure."""
    names = frozenset(n.strip() for n in only.split(",") if n.strip())
    unknown = names - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    return names


def _sizes(p: argparse.ArgumentParser) -> None:
    env_int = {
        "--events": ("fast_events", "LOADGEN_EVENTS", "fast drain events"),
        "--vector-events": ("vector_events", "LOADGEN_VECTOR_EVENTS", None),
        "--duplicate-events": ("duplicate_events", "LOADGEN_DUPLICATE_EVENTS", None),
        "--intelligent-events": ("intelligent_events", "LOADGEN_INTELLIGENT_EVENTS", None),
    }
    for flag, (dest, env, help_text) in env_int.items():
        value = _env(env)
        p.add_argument(
            flag,
            dest=dest,
            type=int,
            default=None if value is None else int(value),
            help=f"{help_text or dest.replace('_', ' ')} (env {env})",
        )
    seconds = _env("LOADGEN_LATENCY_SECONDS")
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=None if seconds is None else float(seconds),
        help="length of the half-load run (env LOADGEN_LATENCY_SECONDS)",
    )
    d = BenchConfig()
    p.add_argument("--tenant-events", type=int, help=f"default {d.tenant_events:,}")
    p.add_argument(
        "--tenant-counts",
        type=counts,
        help="tenant counts, the first is the base (default 20,10000)",
    )
    p.add_argument(
        "--collection-sizes",
        type=counts,
        help="memories stored before each step (default 10000,100000,300000)",
    )
    p.add_argument("--collection-tenants", type=int, help=f"default {d.collection_tenants}")
    p.add_argument(
        "--collection-drain-events",
        type=int,
        help=f"drained at each size (default {d.collection_drain_events:,})",
    )
    p.add_argument("--search-queries", type=int, help=f"at each size (default {d.search_queries})")
    p.add_argument("--endurance-events", type=int, help=f"default {d.endurance_events:,}")
    p.add_argument("--endurance-chunk", type=int, help=f"default {d.endurance_chunk:,}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench command's flags."""
    _sizes(p)
    p.add_argument(
        "--quick",
        action="store_true",
        default=bool(_env("LOADGEN_BENCH_QUICK")),
        help="smaller sizes for every benchmark (a few minutes in all); size flags override",
    )
    p.add_argument(
        "--tenant-fd-guard",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip a tenant count that would pass Weaviate's open-files limit (by the files "
        "per shard of the count before); --no-tenant-fd-guard tries it anyway",
    )
    p.add_argument("--latency-rate", type=float, help="events/s (default: half the fast drain)")
    p.add_argument("--llm-latency-ms", type=float, default=BenchConfig().llm_latency_ms)
    p.add_argument("--seed", type=int, default=BenchConfig().seed)
    p.add_argument(
        "--only",
        default=_env("LOADGEN_BENCH_ONLY") or ",".join(BENCHMARKS),
        help="comma-separated subset of " + ",".join(BENCHMARKS),
    )
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--out", type=Path, help="default bench-results.json in the checkout")
    p.add_argument("--md-out", type=Path, help="default: --out with .md")
    p.add_argument("--png-out", type=Path, help="default: --out with .png")


SIZE_FLAGS = (
    "fast_events",
    "vector_events",
    "duplicate_events",
    "latency_seconds",
    "intelligent_events",
    "tenant_events",
    "tenant_counts",
    "collection_sizes",
    "collection_tenants",
    "collection_drain_events",
    "search_queries",
    "endurance_events",
    "endurance_chunk",
)


def config_of(args: argparse.Namespace, workdir: Path, progress: bool) -> BenchConfig:
    """The run's config from parsed flags; ``ValueError`` if a size cannot run."""
    sizes = sized(args.quick, **{name: getattr(args, name) for name in SIZE_FLAGS})
    config = BenchConfig(
        **sizes,  # type: ignore[arg-type]
        latency_rate=args.latency_rate,
        llm_latency_ms=args.llm_latency_ms,
        seed=args.seed,
        tenant_fd_guard=args.tenant_fd_guard,
        only=selected(args.only),
        progress=progress,
        workdir=workdir,
    )
    check_growth_sizes(config)
    return config
