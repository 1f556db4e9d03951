"""The worker's metrics for a report: parsed from its /metrics page or from
Prometheus' query API, and summed into counters, means and histogram estimates."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from loadgen.stats import histogram_quantile


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, "")


def parse_exposition(text: str) -> list[Sample]:
    """Samples of a Prometheus text page."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        Sample(s.name, tuple(sorted(s.labels.items())), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def samples_from_query(payload: dict[str, Any]) -> list[Sample]:
    """Samples of a Prometheus ``/api/v1/query`` answer (an instant vector)."""
    out = []
    for item in payload.get("data", {}).get("result", []):
        metric = dict(item["metric"])
        name = metric.pop("__name__", "")
        for drop in ("job", "instance"):
            metric.pop(drop, None)
        out.append(Sample(name, tuple(sorted(metric.items())), float(item["value"][1])))
    return out


def _by(samples: Sequence[Sample], name: str, *keys: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for s in samples:
        if s.name == name:
            out["/".join(s.label(k) for k in keys) if keys else ""] += s.value
    return dict(sorted(out.items()))


def summarize_metrics(samples: Sequence[Sample]) -> dict[str, Any]:
    """The worker's counters and histograms, summed over instances."""
    stage_sum = _by(samples, "agentmem_stage_seconds_sum", "stage")
    stage_count = _by(samples, "agentmem_stage_seconds_count", "stage")
    batch_sum = sum(_by(samples, "agentmem_batch_size_sum").values())
    batch_count = sum(_by(samples, "agentmem_batch_size_count").values())
    e2e: dict[float, float] = defaultdict(float)
    for s in samples:
        if s.name == "agentmem_end_to_end_seconds_bucket":
            e2e[float(s.label("le"))] += s.value
    e2e_buckets = sorted(e2e.items())

    def e2e_ms(q: float) -> float | None:
        value = histogram_quantile(e2e_buckets, q)
        return None if value is None else value * 1000

    return {
        "events_in": sum(_by(samples, "agentmem_events_in_total").values()),
        "applied_by_type": _by(samples, "agentmem_events_applied_total", "type"),
        "noop_by_reason": _by(samples, "agentmem_events_noop_total", "reason"),
        "failed_by_stage_reason": _by(samples, "agentmem_events_failed_total", "stage", "reason"),
        "deadletters_by_stage_reason": _by(
            samples, "agentmem_deadletters_total", "stage", "reason"
        ),
        "retries_by_operation": _by(samples, "agentmem_retries_total", "operation"),
        "batches": batch_count,
        "mean_batch_size": batch_sum / batch_count if batch_count else None,
        "stage_mean_ms": {
            stage: 1000 * stage_sum[stage] / count
            for stage, count in stage_count.items()
            if count and stage in stage_sum
        },
        "end_to_end_p50_ms_estimate": e2e_ms(0.5),
        "end_to_end_p99_ms_estimate": e2e_ms(0.99),
        "consumer_lag": sum(_by(samples, "agentmem_consumer_lag").values()),
    }


def scrape_metrics(url: str) -> dict[str, Any]:
    """The summary of a /metrics page, or {"error": ...}."""
    try:
        response = httpx.get(url, timeout=5)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return {"error": f"{url}: {exc}"}
    return {**summarize_metrics(parse_exposition(response.text)), "source": url}


def query_prometheus(base_url: str, job: str) -> dict[str, Any]:
    """The summary of the worker's series in Prometheus (latest values), or {"error": ...}."""
    query = f'{{__name__=~"agentmem_.+",job="{job}"}}'
    try:
        response = httpx.get(f"{base_url}/api/v1/query", params={"query": query}, timeout=10)
        response.raise_for_status()
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"error": f"{base_url}: {exc}"}
    samples = samples_from_query(payload)
    if not samples:
        return {"error": f"Prometheus at {base_url} has no agentmem series for job {job!r}"}
    return {**summarize_metrics(samples), "source": f"{base_url} job={job}"}
