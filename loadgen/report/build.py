"""The report document: counts, throughput per bucket, latency and dead letters. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from loadgen.report.records import Ack, Window
from loadgen.stats import bucket_counts, bucket_index, latency_summary, n_buckets, nearest_rank


def latency_series(
    acks: Sequence[Ack], origin_ms: float, bucket_ms: float, n: int
) -> dict[str, list[float | None]]:
    """p50 and p99 of the acks indexed in each bucket (None for an empty bucket)."""
    per: list[list[float]] = [[] for _ in range(n)]
    for ack in acks:
        if ack.latency_ms is not None and n:
            per[bucket_index(ack.indexed_at_ms, origin_ms, bucket_ms, n)].append(ack.latency_ms)
    out: dict[str, list[float | None]] = {"p50": [], "p99": []}
    for values in per:
        values.sort()
        out["p50"].append(nearest_rank(values, 0.5) if values else None)
        out["p99"].append(nearest_rank(values, 0.99) if values else None)
    return out


def build_report(
    acks: Sequence[Ack],
    dead_letters: Sequence[dict[str, Any]],
    window: Window,
    metrics: dict[str, Any] | None,
    bucket_s: float = 1.0,
) -> dict[str, Any]:
    """Everything the JSON, the Markdown and the chart show."""
    bucket_ms = bucket_s * 1000
    origin = min((a.start_ms for a in acks), default=0)
    last = max((a.indexed_at_ms for a in acks), default=origin)
    n = n_buckets(origin, last, bucket_ms) if acks else 0
    indexed = bucket_counts((a.indexed_at_ms for a in acks), origin, bucket_ms, n)
    produced = bucket_counts((a.start_ms for a in acks), origin, bucket_ms, n)
    span_s = (last - origin) / 1000
    dl_reasons = Counter(f"{d.get('stage', '?')}/{d.get('reason', '?')}" for d in dead_letters)
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "window": window.describe(),
        "acks": {
            "count": len(acks),
            "distinct_events": len({a.event_id for a in acks}),
            "by_outcome": dict(sorted(Counter(a.outcome for a in acks).items())),
            "first_produced_ms": origin if acks else None,
            "last_indexed_ms": last if acks else None,
        },
        "throughput": {
            "seconds": span_s,
            "events_per_s": len(acks) / span_s if span_s > 0 else None,
            "peak_per_s": max(indexed) / bucket_s if indexed else None,
            "bucket_s": bucket_s,
            "indexed_per_bucket": indexed,
            "produced_per_bucket": produced,
        },
        "latency_ms": latency_summary(a.latency_ms for a in acks if a.latency_ms is not None),
        "latency_per_bucket_ms": latency_series(acks, origin, bucket_ms, n),
        "dead_letters": {
            "count": len(dead_letters),
            "by_reason": dict(sorted(dl_reasons.items())),
        },
        "metrics": metrics,
    }
