"""The statistics every loadgen tool shares: nearest-rank percentiles, latency
summaries, per-bucket counts and Prometheus' histogram quantile. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) by nearest rank: the smallest value with at least
    q of the values at or below it. NaN for no values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values) - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies_ms: Iterable[float]) -> dict[str, float | int | None]:
    """count, p50/p95/p99 (nearest rank), max and mean; None where there are no values."""
    ordered = sorted(latencies_ms)
    if not ordered:
        return {"count": 0, **dict.fromkeys(QUANTILES), "max": None, "mean": None}
    out: dict[str, float | int | None] = {"count": len(ordered)}
    for name, q in QUANTILES.items():
        out[name] = nearest_rank(ordered, q)
    out["max"] = ordered[-1]
    out["mean"] = sum(ordered) / len(ordered)
    return out


def bucket_index(t: float, origin: float, width: float, n: int) -> int:
    """The bucket of ``t`` among ``n`` of ``width`` from ``origin`` on (clamped)."""
    return min(n - 1, max(0, int((t - origin) // width)))


def bucket_counts(
    times_ms: Iterable[float], origin_ms: float, bucket_ms: float, n: int
) -> list[int]:
    """How many of the times fall into each of ``n`` buckets from ``origin_ms`` on
    (times before the origin go to the first, after the last to the last)."""
    counts = [0] * n
    if n == 0:
        return counts
    for t in times_ms:
        counts[bucket_index(t, origin_ms, bucket_ms, n)] += 1
    return counts


def n_buckets(origin_ms: float, last_ms: float, bucket_ms: float) -> int:
    return int((last_ms - origin_ms) // bucket_ms) + 1 if last_ms >= origin_ms else 0


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs:
    linear interpolation inside the bucket holding the rank; the highest finite
    bound if the rank falls into +Inf. None without observations."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower_bound
            if count == lower_count:
                return upper
            return lower_bound + (upper - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = upper, count
    return lower_bound
