"""loadgen report: percentiles, buckets, windows, metrics and the rendered outputs."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from loadgen.report.build import build_report
from loadgen.report.metrics import parse_exposition, samples_from_query, summarize_metrics
from loadgen.report.records import Ack, Window, parse_duration_s, parse_time_ms
from loadgen.report.render import render_markdown, write_outputs
from loadgen.stats import bucket_counts, histogram_quantile, latency_summary, n_buckets
from processors.metrics import build_metrics

T = 1_750_000_000_000


def ack(event_id: str, produced: int | None, indexed: int, outcome: str = "applied") -> Ack:
    return Ack(event_id, outcome, produced, indexed)


def test_ack_from_its_json() -> None:
    doc = {"event_id": "e", "outcome": "noop:duplicate_event", "produced_at_ms": 5}
    assert Ack.from_doc({**doc, "indexed_at_ms": 9}) == Ack("e", "noop:duplicate_event", 5, 9)
    assert Ack.from_doc({**doc, "indexed_at_ms": 9, "produced_at_ms": None}) == Ack(
        "e", "noop:duplicate_event", None, 9
    )
    assert Ack.from_doc({"event_id": "e"}) is None
    assert Ack.from_doc([1, 2]) is None


def test_latency_summary_nearest_rank() -> None:
    summary = latency_summary(float(v) for v in range(200, 0, -1))
    assert summary == {"count": 200, "p50": 100, "p95": 190, "p99": 198, "max": 200, "mean": 100.5}
    empty = latency_summary([])
    assert empty["count"] == 0 and empty["p99"] is None and empty["max"] is None


def test_bucket_counts_clamp_to_the_ends() -> None:
    assert n_buckets(1000, 3999, 1000) == 3
    assert n_buckets(1000, 1000, 1000) == 1
    assert bucket_counts([1000, 1999, 2000, 3500, 900, 9000], 1000, 1000, 3) == [3, 1, 2]
    assert bucket_counts([1.0], 0, 1000, 0) == []


def test_report_counts_throughput_and_latency() -> None:
    acks = [
        ack("a", T, T + 100),
        ack("b", T + 200, T + 400),
        ack("c", T + 1100, T + 1300, "noop:duplicate_event"),
        ack("d", T + 1500, T + 2900, "rejected:memory_not_found"),
        ack("e", None, T + 2950),
    ]
    dead = [
        {"stage": "validate", "reason": "invalid_json"},
        {"stage": "validate", "reason": "invalid_json"},
        {"stage": "apply", "reason": "memory_not_found"},
    ]
    doc = build_report(acks, dead, Window(), None)
    assert doc["acks"]["count"] == 5
    assert doc["acks"]["by_outcome"] == {
        "applied": 3,
        "noop:duplicate_event": 1,
        "rejected:memory_not_found": 1,
    }
    thr = doc["throughput"]
    assert thr["indexed_per_bucket"] == [2, 1, 2]
    assert thr["produced_per_bucket"] == [2, 2, 1]
    assert thr["seconds"] == pytest.approx(2.95)
    assert thr["events_per_s"] == pytest.approx(5 / 2.95)
    assert thr["peak_per_s"] == 2
    assert doc["latency_ms"] == {
        "count": 4,
        "p50": 200,
        "p95": 1400,
        "p99": 1400,
        "max": 1400,
        "mean": pytest.approx(475),
    }
    assert doc["latency_per_bucket_ms"] == {"p50": [100, 200, 1400], "p99": [200, 200, 1400]}
    assert doc["dead_letters"] == {
        "count": 3,
        "by_reason": {"apply/memory_not_found": 1, "validate/invalid_json": 2},
    }


def test_empty_report_renders() -> None:
    doc = build_report([], [], Window(), {"error": "nothing there"})
    assert doc["acks"]["count"] == 0 and doc["throughput"]["events_per_s"] is None
    text = render_markdown(doc)
    assert "Not available: nothing there" in text


def test_window_by_time_and_by_replay_file() -> None:
    assert Window(since_ms=T).has_ack(ack("a", T, T + 1))
    assert not Window(since_ms=T + 1).has_ack(ack("a", T, T + 1))
    assert not Window(until_ms=T).has_ack(ack("a", T, T + 1))
    by_file = Window(event_ids=frozenset({"a"}), raw_values=frozenset({b"\xffbad", b"{oops"}))
    assert by_file.has_ack(ack("a", T, T + 1)) and not by_file.has_ack(ack("b", T, T + 1))
    raw_b64 = {"value": base64.b64encode(b"\xffbad").decode(), "value_encoding": "base64"}
    assert by_file.has_dead_letter(raw_b64)
    assert by_file.has_dead_letter({"value": "{oops", "value_encoding": "utf-8"})
    assert by_file.has_dead_letter({"event_id": "a", "value": "x", "value_encoding": "utf-8"})
    assert not by_file.has_dead_letter({"value": "{other", "value_encoding": "utf-8"})
    timed = Window(since_ms=T)
    assert timed.has_dead_letter({"source": {"timestamp_ms": T + 5}})
    assert not timed.has_dead_letter({"source": {"timestamp_ms": T - 5}})
    assert not timed.has_dead_letter({"failed_at": "not a time"})


def test_time_and_duration_parsing() -> None:
    assert parse_duration_s("90s") == 90
    assert parse_duration_s("10m") == 600
    assert parse_duration_s("2h") == 7200
    assert parse_duration_s("1.5") == 1.5
    assert parse_time_ms("1750000000000") == 1_750_000_000_000
    assert parse_time_ms("2025-01-01T00:00:01Z") == 1_735_689_601_000
    assert parse_time_ms("2025-01-01T00:00:01") == 1_735_689_601_000
    with pytest.raises(ValueError):
        parse_time_ms("yesterday")


def test_histogram_quantile_like_prometheus() -> None:
    buckets = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (float("inf"), 40.0)]
    assert histogram_quantile(buckets, 0.25) == pytest.approx(0.1)
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)
    assert histogram_quantile(buckets, 1.0) == pytest.approx(1.0)
    overflow = [(0.1, 1.0), (float("inf"), 10.0)]
    assert histogram_quantile(overflow, 0.99) == 0.1
    assert histogram_quantile([(0.1, 0.0), (float("inf"), 0.0)], 0.5) is None
    assert histogram_quantile([], 0.5) is None


def test_metrics_summary_from_the_workers_own_metrics() -> None:
    registry = CollectorRegistry()
    m = build_metrics(registry)
    m.events_in.labels("index").inc(12)
    m.events_applied.labels("memory.add").inc(7)
    m.events_noop.labels("memory.add", "duplicate_event").inc(3)
    m.deadletters.labels("validate", "invalid_json").inc(2)
    m.events_failed.labels("validate", "invalid_json").inc(2)
    for size in (4, 8):
        m.batch_size.labels("index").observe(size)
    m.stage_seconds.labels("embed").observe(0.2)
    m.stage_seconds.labels("embed").observe(0.4)
    for seconds in (0.02, 0.03, 0.04, 2.0):
        m.end_to_end_seconds.observe(seconds)
    summary = summarize_metrics(parse_exposition(generate_latest(registry).decode()))
    assert summary["events_in"] == 12
    assert summary["applied_by_type"] == {"memory.add": 7}
    assert summary["noop_by_reason"] == {"duplicate_event": 3}
    assert summary["deadletters_by_stage_reason"] == {"validate/invalid_json": 2}
    assert summary["batches"] == 2 and summary["mean_batch_size"] == 6
    assert summary["stage_mean_ms"]["embed"] == pytest.approx(300)
    assert 25 <= summary["end_to_end_p50_ms_estimate"] <= 50
    assert 1000 <= summary["end_to_end_p99_ms_estimate"] <= 2500


def test_samples_from_a_prometheus_query() -> None:
    payload = {
        "data": {
            "result": [
                {
                    "metric": {
                        "__name__": "agentmem_events_applied_total",
                        "job": "agentmem-worker",
                        "instance": "127.0.0.1:9108",
                        "type": "memory.add",
                    },
                    "value": [1.0, "41"],
                },
                {
                    "metric": {"__name__": "agentmem_events_in_total", "stage": "index"},
                    "value": [1.0, "50"],
                },
            ]
        }
    }
    summary = summarize_metrics(samples_from_query(payload))
    assert summary["applied_by_type"] == {"memory.add": 41}
    assert summary["events_in"] == 50


def test_outputs_are_written(tmp_path: Path) -> None:
    acks = [ack(str(i), T + i * 37, T + i * 37 + 50 + i % 7 * 10) for i in range(200)]
    metrics: dict[str, Any] = summarize_metrics([])
    doc = build_report(acks, [{"stage": "validate", "reason": "unknown_type"}], Window(), metrics)
    paths = write_outputs(doc, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["acks"]["count"] == 200
    markdown = paths["markdown"].read_text()
    assert "| validate/unknown_type | 1 |" in markdown
    assert f"| 200 | {doc['latency_ms']['p50']:,} |" in markdown
    assert "![throughput and latency per second](report.png)" in markdown
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
