"""loadgen end to end: synth a file, replay it at a fixed rate into a private worker,
then check the report against the acks and dead letters on the topics."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import weaviate

from loadgen.bench.harness import delete_collection, delete_topics
from loadgen.cli import main
from loadgen.report.topics import read_topic
from streams.settings import Settings
from streams.stack.launcher import settings_env
from tests.integration.harness import WorkerProcess, isolated_settings

EVENTS = 400
RATE = 100


@pytest.fixture
def private(
    stack: Settings, tmp_path: Path, weaviate_client: weaviate.WeaviateClient
) -> Iterator[tuple[Settings, WorkerProcess]]:
    settings = isolated_settings(stack, tmp_path / "state")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    yield settings, worker
    worker.stop()
    delete_collection(settings, settings.weaviate_collection)
    asyncio.run(delete_topics(settings, [settings.topic_prefix, f"{settings.worker_id}-"]))


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1]


def read_all(settings: Settings, topic: str, want: int, worker: WorkerProcess) -> list[Any]:
    """The topic's records, once it holds at least ``want`` (the worker writes dead letters
    of events without an id in batches that carry no ack)."""
    deadline = time.monotonic() + 300
    while True:
        values = asyncio.run(read_topic(settings, topic))
        if len(values) >= want:
            return [json.loads(v or b"null") for v in values]
        assert worker.running, worker.log_tail()
        assert time.monotonic() < deadline, f"{len(values)} of {want} records on {topic}"
        time.sleep(0.5)


def test_synth_replay_report(
    private: tuple[Settings, WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, worker = private
    events = tmp_path / "events.jsonl"
    synth = ["synth", "--count", str(EVENTS), "--tenants", "12", "--agents", "8", "--seed", "11"]
    ratios = ["--invalid-ratio", "0.05", "--duplicate-ratio", "0.05", "--erase-ratio", "0.02"]
    assert main([*synth, *ratios, "--out", str(events)]) == 0
    lines = events.read_text().splitlines()
    docs = []
    for line in lines:
        try:
            docs.append(json.loads(line))
        except ValueError:
            docs.append(None)
    owned = [d for d in docs if isinstance(d, dict) and d.get("tenant") and d.get("event_id")]
    unowned = len(lines) - len(owned)  # no event id or tenant: dead letter, no ack

    worker.start()
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    rate = ["--rate", str(RATE), "--no-progress", "--json", "--wait-s", "300"]
    assert main(["replay", str(events), *rate]) == 0
    replayed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert replayed["sent"] == EVENTS
    assert replayed["expected_acks"] == len(owned)
    assert replayed["complete"], replayed
    assert replayed["target_per_s"] == RATE

    acks = read_all(settings, settings.topic("memory.indexed"), len(owned), worker)
    rejected = sum(1 for a in acks if a["outcome"].startswith("rejected:"))
    dead = read_all(settings, settings.topic("memory.deadletter"), unowned + rejected, worker)
    assert len(acks) == len(owned)
    outcomes = Counter(a["outcome"] for a in acks)
    assert outcomes["noop:duplicate_event"] > 0 and outcomes["applied"] > 0

    out_dir = tmp_path / "report"
    metrics_url = f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"
    argv = ["report", "--events", str(events), "--metrics-url", metrics_url]
    assert main([*argv, "--out-dir", str(out_dir)]) == 0
    check_report(out_dir, acks, dead)


def check_report(out_dir: Path, acks: list[Any], dead: list[Any]) -> None:
    """The report's files agree with the acks and dead letters read from the topics."""
    outcomes = Counter(a["outcome"] for a in acks)
    latencies = [a["indexed_at_ms"] - a["produced_at_ms"] for a in acks]
    doc = json.loads((out_dir / "report.json").read_text())
    assert doc["acks"]["count"] == len(acks)
    assert doc["acks"]["by_outcome"] == dict(outcomes)
    assert sum(doc["throughput"]["indexed_per_bucket"]) == len(acks)
    assert doc["latency_ms"]["count"] == len(latencies)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert doc["latency_ms"][name] == nearest_rank(latencies, q)
    assert doc["latency_ms"]["max"] == max(latencies)
    reasons = Counter(f"{d['stage']}/{d['reason']}" for d in dead)
    assert doc["dead_letters"]["count"] == len(dead)
    assert doc["dead_letters"]["by_reason"] == dict(reasons)
    assert len(reasons) >= 4
    metrics = doc["metrics"]
    assert "error" not in metrics, metrics
    assert sum(metrics["deadletters_by_stage_reason"].values()) == len(dead)
    assert (out_dir / "report.md").read_text().startswith("# Load report")
    assert (out_dir / "report.png").read_bytes()[:4] == b"\x89PNG"
