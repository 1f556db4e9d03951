"""`loadgen report`: throughput, end-to-end latency and dead letters of a run.

Reads the acks on ``memory.indexed`` (``produced_at_ms``, ``indexed_at_ms``,
``outcome``), the dead letters on ``memory.deadletter`` (``stage``, ``reason``) and a
snapshot of the worker's metrics (its /metrics page, or Prometheus), and writes
``report.json``, ``report.md`` and ``report.png`` into an output folder.

The maths (percentiles, per-second buckets, histogram quantiles, the Markdown)
are pure functions over plain records; reading topics and scraping are apart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from loadgen.replay import nearest_rank
from streams.client.topics import partitions_of

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


# ---------------------------------------------------------------- pure: records and window


@dataclass(frozen=True)
class Ack:
    event_id: str
    outcome: str
    produced_at_ms: int | None
    indexed_at_ms: int

    @classmethod
    def from_doc(cls, doc: object) -> Ack | None:
        """An ack from its JSON (see processors/core/records.py ack_record); None if unreadable."""
        if not isinstance(doc, dict):
            return None
        indexed, produced = doc.get("indexed_at_ms"), doc.get("produced_at_ms")
        if not isinstance(indexed, int) or not isinstance(doc.get("event_id"), str):
            return None
        return cls(
            str(doc["event_id"]),
            str(doc.get("outcome", "")),
            produced if isinstance(produced, int) else None,
            indexed,
        )

    @property
    def latency_ms(self) -> int | None:
        return None if self.produced_at_ms is None else self.indexed_at_ms - self.produced_at_ms

    @property
    def start_ms(self) -> int:
        return self.indexed_at_ms if self.produced_at_ms is None else self.produced_at_ms


def dead_letter_raw(doc: dict[str, Any]) -> bytes:
    """The original value bytes a dead letter carries."""
    value = doc.get("value")
    if not isinstance(value, str):
        return b""
    if doc.get("value_encoding") == "base64":
        return base64.b64decode(value)
    return value.encode()


def _dead_letter_ms(doc: dict[str, Any]) -> float | None:
    source = doc.get("source")
    if isinstance(source, dict) and isinstance(source.get("timestamp_ms"), int):
        return float(source["timestamp_ms"])
    failed = doc.get("failed_at")
    if isinstance(failed, str):
        try:
            return datetime.fromisoformat(failed).timestamp() * 1000
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Window:
    """Which acks and dead letters belong to the run: produced within [since, until)
    and, if given, of the events of a replay file."""

    since_ms: float | None = None
    until_ms: float | None = None
    event_ids: frozenset[str] | None = None
    raw_values: frozenset[bytes] | None = None

    def _in_time(self, at_ms: float | None) -> bool:
        if at_ms is None:
            return self.since_ms is None and self.until_ms is None
        if self.since_ms is not None and at_ms < self.since_ms:
            return False
        return self.until_ms is None or at_ms < self.until_ms

    def has_ack(self, ack: Ack) -> bool:
        if self.event_ids is not None and ack.event_id not in self.event_ids:
            return False
        return self._in_time(ack.start_ms)

    def has_dead_letter(self, doc: dict[str, Any]) -> bool:
        if self.event_ids is not None or self.raw_values is not None:
            by_id = self.event_ids is not None and doc.get("event_id") in self.event_ids
            by_raw = self.raw_values is not None and dead_letter_raw(doc) in self.raw_values
            if not (by_id or by_raw):
                return False
        return self._in_time(_dead_letter_ms(doc))

    def describe(self) -> dict[str, Any]:
        return {
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "events": None if self.event_ids is None else len(self.event_ids),
        }


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> float:
    """``90s``, ``10m``, ``2h``, ``1d`` or plain seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return float(text)


def parse_time_ms(text: str) -> float:
    """Epoch milliseconds, or an ISO 8601 time (UTC when it names no zone)."""
    stripped = text.strip()
    if re.fullmatch(r"\d{10,}", stripped):
        return float(stripped)
    parsed = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000


# ---------------------------------------------------------------- pure: statistics


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


def bucket_counts(
    times_ms: Iterable[float], origin_ms: float, bucket_ms: float, n: int
) -> list[int]:
    """How many of the times fall into each of ``n`` buckets from ``origin_ms`` on
    (times before the origin go to the first, after the last to the last)."""
    counts = [0] * n
    if n == 0:
        return counts
    for t in times_ms:
        counts[min(n - 1, max(0, int((t - origin_ms) // bucket_ms)))] += 1
    return counts


def n_buckets(origin_ms: float, last_ms: float, bucket_ms: float) -> int:
    return int((last_ms - origin_ms) // bucket_ms) + 1 if last_ms >= origin_ms else 0


def latency_series(
    acks: Sequence[Ack], origin_ms: float, bucket_ms: float, n: int
) -> dict[str, list[float | None]]:
    """p50 and p99 of the acks indexed in each bucket (None for an empty bucket)."""
    per: list[list[float]] = [[] for _ in range(n)]
    for ack in acks:
        if ack.latency_ms is not None and n:
            per[min(n - 1, max(0, int((ack.indexed_at_ms - origin_ms) // bucket_ms)))].append(
                ack.latency_ms
            )
    out: dict[str, list[float | None]] = {"p50": [], "p99": []}
    for values in per:
        values.sort()
        out["p50"].append(nearest_rank(values, 0.5) if values else None)
        out["p99"].append(nearest_rank(values, 0.99) if values else None)
    return out


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


# ---------------------------------------------------------------- pure: metrics


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


# ---------------------------------------------------------------- pure: the report


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


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any], chart: str | None = "report.png") -> str:
    acks, thr, lat = report["acks"], report["throughput"], report["latency_ms"]
    window = report["window"]
    parts = [
        "# Load report",
        "",
        f"Generated {report['generated_at']}. Window: since {_fmt(window['since_ms'])} ms, "
        f"until {_fmt(window['until_ms'])} ms, "
        f"events of a replay file: {_fmt(window['events'])}.",
        "",
        "## Summary",
        "",
        md_table(
            ["acks", "distinct events", "seconds", "events/s", "peak/s", "dead letters"],
            [
                [
                    acks["count"],
                    acks["distinct_events"],
                    thr["seconds"],
                    thr["events_per_s"],
                    thr["peak_per_s"],
                    report["dead_letters"]["count"],
                ]
            ],
        ),
        "",
        "## End-to-end latency (produced → indexed, ms)",
        "",
        md_table(
            ["count", "p50", "p95", "p99", "max", "mean"],
            [[lat["count"], lat["p50"], lat["p95"], lat["p99"], lat["max"], lat["mean"]]],
        ),
        "",
        "## Outcomes",
        "",
        md_table(["outcome", "acks"], sorted(acks["by_outcome"].items())),
        "",
        "## Dead letters",
        "",
        md_table(["stage/reason", "count"], sorted(report["dead_letters"]["by_reason"].items()))
        if report["dead_letters"]["by_reason"]
        else "None.",
    ]
    metrics = report.get("metrics")
    if metrics:
        parts += ["", "## Worker metrics", ""]
        if "error" in metrics:
            parts.append(f"Not available: {metrics['error']}")
        else:
            rows: list[list[object]] = [
                ["events in", metrics["events_in"]],
                ["batches", metrics["batches"]],
                ["mean batch size", metrics["mean_batch_size"]],
                [
                    "worker end-to-end p50 ms (histogram, from occurred_at)",
                    metrics["end_to_end_p50_ms_estimate"],
                ],
                [
                    "worker end-to-end p99 ms (histogram, from occurred_at)",
                    metrics["end_to_end_p99_ms_estimate"],
                ],
                ["consumer lag", metrics["consumer_lag"]],
            ]
            rows += [[f"applied {k}", v] for k, v in metrics["applied_by_type"].items()]
            rows += [[f"no-op {k}", v] for k, v in metrics["noop_by_reason"].items()]
            rows += [[f"mean {k} ms", v] for k, v in metrics["stage_mean_ms"].items()]
            rows += [[f"retries {k}", v] for k, v in metrics["retries_by_operation"].items()]
            parts.append(md_table(["metric", "value"], rows))
            if "source" in metrics:
                parts += ["", f"Source: {metrics['source']}"]
    if chart:
        parts += ["", f"![throughput and latency per second]({chart})"]
    return "\n".join(parts) + "\n"


def render_chart(report: dict[str, Any], path: Path) -> None:
    """Throughput (indexed and produced per second) and p50/p99 latency over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thr, series = report["throughput"], report["latency_per_bucket_ms"]
    bucket_s = float(thr["bucket_s"])
    xs = [i * bucket_s for i in range(len(thr["indexed_per_bucket"]))]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.plot(xs, [c / bucket_s for c in thr["produced_per_bucket"]], label="produced/s", lw=1)
    top.plot(xs, [c / bucket_s for c in thr["indexed_per_bucket"]], label="indexed/s", lw=1.5)
    top.set_ylabel("events per second")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    for name in ("p50", "p99"):
        points = [(x, v) for x, v in zip(xs, series[name], strict=True) if v is not None]
        bottom.plot([p[0] for p in points], [p[1] for p in points], label=f"{name} latency", lw=1)
    bottom.set_ylabel("produced → indexed (ms)")
    bottom.set_xlabel("seconds since the first event")
    bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3)
    lat = report["latency_ms"]
    fig.suptitle(
        f"{report['acks']['count']} acks, p50 {_fmt(lat['p50'], 0)} ms, "
        f"p99 {_fmt(lat['p99'], 0)} ms, max {_fmt(lat['max'], 0)} ms"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "report.md",
        "chart": out_dir / "report.png",
    }
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(render_markdown(report, paths["chart"].name))
    render_chart(report, paths["chart"])
    return paths


# ---------------------------------------------------------------- I/O: topics and metrics


async def read_topic(
    bootstrap: str, topic: str, since_ms: float | None = None
) -> list[bytes | None]:
    """The values on a topic now (from ``since_ms`` by record timestamp, if given)."""
    partitions = await partitions_of(bootstrap, topic)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        # explicit offsets: seek_to_beginning right after assign() can lose a race with
        # the consumer's own initial position reset
        starts = await consumer.beginning_offsets(tps)
        if since_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, int(since_ms)))
            starts = {tp: ends[tp] if at is None else at.offset for tp, at in found.items()}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        values: list[bytes | None] = []
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, messages in batch.items():
                values += [m.value for m in messages if m.offset < ends[tp]]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return values
    finally:
        await consumer.stop()


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


def load_run(
    bootstrap: str, indexed_topic: str, deadletter_topic: str, window: Window
) -> tuple[list[Ack], list[dict[str, Any]]]:
    """The acks and dead letters of the window, read from the topics."""

    async def both() -> tuple[list[bytes | None], list[bytes | None]]:
        return await asyncio.gather(
            read_topic(bootstrap, indexed_topic, window.since_ms),
            read_topic(bootstrap, deadletter_topic, window.since_ms),
        )

    ack_values, dead_values = asyncio.run(both())
    acks = []
    for value in ack_values:
        ack = Ack.from_doc(_json(value))
        if ack is not None and window.has_ack(ack):
            acks.append(ack)
    dead = []
    for value in dead_values:
        doc = _json(value)
        if isinstance(doc, dict) and window.has_dead_letter(doc):
            dead.append(doc)
    return acks, dead


def _json(value: bytes | None) -> object:
    try:
        return json.loads(value or b"null")
    except ValueError:
        return None
