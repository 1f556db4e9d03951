"""The growth benchmarks at tiny sizes on the real stack: every figure is there, the
tenant layouts and the collection's contents are what the figures claim, and the
report's files are written."""

from __future__ import annotations

from pathlib import Path

from loadgen.bench.config import RESULT_KEYS, BenchConfig
from loadgen.bench.render import write_results
from loadgen.bench.suite import run_all
from streams.settings import Settings

GROWTH = frozenset({"tenants", "collection", "endurance"})
GROWTH_KEYS = ("tenants_10k_ratio", "rate_300k_vs_10k", "search_p99_ms_300k", "rss_growth_ratio")


def test_growth_benchmarks_at_tiny_sizes(stack: Settings, tmp_path: Path) -> None:
    config = BenchConfig(
        tenant_events=300,
        tenant_counts=(3, 60),
        collection_sizes=(200, 1_200),
        collection_tenants=4,
        collection_drain_events=100,
        search_queries=20,
        endurance_events=600,
        endurance_chunk=200,
        only=GROWTH,
        workdir=tmp_path,
    )
    run = run_all(stack, config)
    assert run.failed == [], run.notes
    doc = run.document(config)
    assert set(GROWTH_KEYS) <= set(RESULT_KEYS)
    for key in GROWTH_KEYS:
        assert isinstance(doc[key], float) and doc[key] > 0, key

    runs = doc["tenants_runs"]
    assert [r["tenants"] for r in runs] == [3, 60]
    assert [r["shards"] for r in runs] == [4, 61]  # and the warm-up's tenant
    assert all(r["weaviate_rss_mb"] > 0 for r in runs)
    assert all(r["open_files_per_shard"] > 0 for r in runs)  # what the guard goes by

    steps = doc["collection_steps"]
    assert [s["stored"] for s in steps] == [200, 1_300]
    assert [s["counted"] for s in steps] == [300, 1_400]
    assert all(0 < s["search_p50_ms"] <= s["search_p99_ms"] for s in steps)

    points = doc["endurance_points"]
    assert [p["events"] for p in points] == [200, 400, 600]
    assert all(p["worker_rss_mb"] > 0 and p["state_mb"] > 0 for p in points)

    write_results(doc, tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png")
    assert "How cost grows, step by step" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
