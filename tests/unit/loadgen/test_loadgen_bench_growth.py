"""The growth benchmarks without services: sizes and flags, the events they publish,
footprints, the report rows and the chart's points."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import pytest

from loadgen.bench import options
from loadgen.bench.chart import growth_series, render_png
from loadgen.bench.config import QUICK_SIZES, BenchConfig, check_growth_sizes, sized
from loadgen.bench.footprint import (
    open_files,
    soft_open_files_limit,
    tree_bytes,
    vm_rss_bytes,
    wal_bytes,
)
from loadgen.bench.growth import chunk_sizes, files_short, growth_sizes, ratio
from loadgen.bench.render import growth_rows, render_markdown, step_rows
from loadgen.bench.stage_times import histogram_totals
from loadgen.bench.vector_events import vector_adds, vector_objects, vector_records
from loadgen.replay.records import parse_line
from loadgen.synth import to_line


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    options.add_arguments(parser)
    return parser.parse_args(list(argv))


def config(*argv: str) -> BenchConfig:
    return options.config_of(parse(*argv), Path("w"), progress=False)


def test_the_defaults_are_the_issue_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOADGEN_EVENTS", "LOADGEN_BENCH_QUICK", "LOADGEN_BENCH_ONLY"):
        monkeypatch.delenv(name, raising=False)
    c = config()
    assert c == BenchConfig(workdir=Path("w"))
    assert c.tenant_counts == (20, 500, 10_000) and c.tenant_events == 20_000
    assert c.tenant_fd_guard and not config("--no-tenant-fd-guard").tenant_fd_guard
    assert c.collection_sizes == (10_000, 100_000, 300_000)
    assert c.endurance_events == 200_000
    assert {"tenants", "collection", "endurance"} <= c.only


def test_quick_shrinks_every_size_and_flags_override_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOADGEN_EVENTS", raising=False)
    monkeypatch.delenv("LOADGEN_BENCH_QUICK", raising=False)
    quick = config("--quick")
    full = BenchConfig()
    for name, value in QUICK_SIZES.items():
        assert getattr(quick, name) == value
        assert value != getattr(full, name)
    mixed = config("--quick", "--tenant-counts", "20, 3000", "--events", "500")
    assert mixed.tenant_counts == (20, 3000)
    assert mixed.fast_events == 500
    assert mixed.collection_sizes == QUICK_SIZES["collection_sizes"]


def test_size_environment_variables_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_EVENTS", "1234")
    monkeypatch.setenv("LOADGEN_BENCH_ONLY", "tenants,endurance")
    c = config("--quick")
    assert c.fast_events == 1234
    assert c.only == frozenset({"tenants", "endurance"})


def test_bad_selections_and_sizes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOADGEN_BENCH_ONLY", raising=False)
    with pytest.raises(ValueError, match="unknown benchmarks: shards"):
        config("--only", "tenants,shards")
    with pytest.raises(ValueError, match="collection sizes must grow"):
        config("--collection-sizes", "100000,10000")
    with pytest.raises(ValueError, match="tenant counts"):
        config("--tenant-counts", "20")
    with pytest.raises(ValueError, match="endurance"):
        config("--endurance-events", "100", "--endurance-chunk", "100")
    with pytest.raises(SystemExit):
        parse("--tenant-counts", "twenty")
    with pytest.raises(ValueError, match="not a benchmark size: only"):
        sized(False, only=frozenset())


def test_every_default_and_quick_size_can_run() -> None:
    check_growth_sizes(BenchConfig())
    check_growth_sizes(BenchConfig(**QUICK_SIZES))  # type: ignore[arg-type]
    assert growth_sizes(BenchConfig())["tenant_counts"] == [20, 500, 10_000]


def same(docs: list[dict[str, object]], *also: str) -> list[dict[str, object]]:
    """The documents without their occurred_at (now, when they are made) and ``also``."""
    drop = {"occurred_at", *also}
    return [{k: v for k, v in d.items() if k not in drop} for d in docs]


def test_vector_adds_fill_every_tenant_with_new_memories() -> None:
    docs = vector_adds(50, 20, 3, dim=8, prefix="c1-")
    assert len({d["tenant"] for d in docs}) == 20
    assert [d["tenant"] for d in docs[:2]] == ["t00000", "t00001"]
    assert len({d["memory_id"] for d in docs}) == 50
    assert all(str(d["memory_id"]).startswith("c1-") for d in docs)
    assert all(d["type"] == "memory.add" for d in docs)
    for d in docs:
        vector = d["vector"]
        assert isinstance(vector, list) and len(vector) == 8
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, abs_tol=1e-5)
    assert same(docs) == same(vector_adds(50, 20, 3, dim=8, prefix="c1-"))
    assert docs[0]["vector"] != vector_adds(1, 1, 4, dim=8, prefix="c1-")[0]["vector"]


def test_same_seed_same_events_over_other_tenants() -> None:
    few, many = vector_adds(30, 2, 5, dim=4, prefix="x"), vector_adds(30, 30, 5, dim=4, prefix="x")
    assert same(few, "tenant") == same(many, "tenant")
    assert [d["tenant"] for d in few] != [d["tenant"] for d in many]


def test_vector_records_are_what_replay_makes_of_the_lines() -> None:
    docs = vector_adds(5, 3, 1, dim=4, prefix="r-")
    for fast, d in zip(vector_records(docs), docs, strict=True):
        slow = parse_line(to_line(d).encode())
        assert (fast.key, fast.event_id, fast.occurred_at_ms) == (
            slow.key,
            slow.event_id,
            slow.occurred_at_ms,
        )
        assert parse_line(fast.value) == parse_line(fast.value) and fast.event_id


def test_vector_objects_go_to_the_tenants_of_the_layout() -> None:
    objects = vector_objects(12, 4, 2, dim=4, prefix="p-", tenant_prefix="c")
    assert {o.tenant for o in objects} == {"c00000", "c00001", "c00002", "c00003"}
    assert len({o.uuid for o in objects}) == 12


def test_a_tenant_count_past_the_open_files_limit_is_not_tried() -> None:
    assert files_short(1_000, 12.0, 4_000, 20_000) is None
    assert files_short(1_000, 13.0, 4_000, 20_000) is not None  # past 80% of the limit
    assert files_short(1_000, 13.0, 4_000, None) is None
    why = files_short(10_000, 13.0, 4_000, 20_000)
    assert why is not None
    assert why.startswith("not run: 10,000 shards need ~130,000 open files at 13.0 per shard")
    assert why.endswith("Weaviate holds 4,000 of its limit of 20,000")


def test_open_files_limit_of_proc_limits() -> None:
    text = (
        "Limit                     Soft Limit           Hard Limit           Units\n"
        "Max open files            20000                524288               files\n"
    )
    assert soft_open_files_limit(text) == 20_000
    assert soft_open_files_limit(text.replace("20000 ", "unlimited ")) is None
    with pytest.raises(ValueError, match="no Max open files"):
        soft_open_files_limit("Max processes 1 1 processes\n")


def test_open_files_of_this_process_and_under_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "coll_g1"
    folder.mkdir()
    (folder / "a").write_text("x")
    before = open_files(os.getpid(), "coll_g1")
    with (folder / "a").open() as one, (folder / "a").open() as two:
        assert one and two
        assert open_files(os.getpid(), "coll_g1") == before + 2
        assert open_files(os.getpid()) >= before + 2
    assert open_files(os.getpid(), "coll_g1") == before


def test_vm_rss_and_tree_bytes(tmp_path: Path) -> None:
    assert vm_rss_bytes("Name:\tpython\nVmRSS:\t  2048 kB\nVmSwap: 0 kB\n") == 2048 * 1024
    with pytest.raises(ValueError, match="no VmRSS"):
        vm_rss_bytes("Name:\tkthreadd\n")
    assert tree_bytes(tmp_path / "gone") == 0
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 10_000)
    (tmp_path / "a" / "LOG").write_bytes(b"x" * 10_000)
    assert tree_bytes(tmp_path) >= 20_000
    assert wal_bytes(tmp_path) == 0
    (tmp_path / "a" / "000004.log").write_bytes(b"x" * 10_000)
    assert 10_000 <= wal_bytes(tmp_path) < 20_000


def test_chunks_and_ratios() -> None:
    assert chunk_sizes(200_000, 20_000) == [20_000] * 10
    assert chunk_sizes(25, 10) == [10, 10, 5]
    assert ratio(8.0, 10.0) == 0.8
    assert ratio(None, 10.0) is None and ratio(1.0, 0.0) is None and ratio(1.0, None) is None


def growth_doc() -> dict[str, Any]:
    return {
        "tenants_10k_ratio": 0.5,
        "tenants_runs": [
            {"tenants": 20, "events_per_s": 1500.0, "weaviate_rss_mb_before": 400.0,
             "weaviate_rss_mb": 500.0, "shards": 21, "cpu": "busy"},
            {"tenants": 10_000, "events_per_s": 750.0, "weaviate_rss_mb_before": 450.0,
             "weaviate_rss_mb": 2600.0, "shards": 10_001, "cpu": "busy",
             "weaviate_open_files": 160_000, "collection_open_files": 149_000,
             "open_files_per_shard": 14.9},
        ],
        "rate_300k_vs_10k": 0.9,
        "search_p99_ms_300k": 31.5,
        "search_p50_ms_300k": 12.25,
        "collection_steps": [
            {"stored": 10_000, "events_per_s": 1000.0, "search_p50_ms": 5.0,
             "search_p99_ms": 9.0, "search_max_ms": 20.0, "load_per_s": 3000.0,
             "weaviate_rss_mb": 700.0},
            {"stored": 310_000, "events_per_s": 900.0, "search_p50_ms": 12.25,
             "search_p99_ms": 31.5, "search_max_ms": 60.0, "load_per_s": 2500.0,
             "weaviate_rss_mb": 1900.0},
        ],
        "rss_growth_ratio": 1.1,
        "endurance_points": [
            {"events": 20_000, "events_per_s": 1400.0, "worker_rss_mb": 300.0, "state_mb": 10.0},
            {"events": 40_000, "events_per_s": 1380.0, "worker_rss_mb": 330.0, "state_mb": 19.0,
             "state_unflushed_mb": 18.5},
        ],
        "notes": {"tenants": "CPU split", "collection": "searches note"},
    }  # fmt: skip


def test_growth_rows_show_ratios_memory_shards_and_latency() -> None:
    rows = growth_rows(growth_doc())
    assert rows[0] == [
        "drain rate, many tenants vs few (precomputed vectors)",
        "750.0 ev/s over 10,000 tenants; Weaviate 2,600 MiB, 10,001 shards",
        "1,500.0 ev/s over 20 tenants; Weaviate 500 MiB, 21 shards",
        "0.500",
        "CPU split",
    ]
    assert rows[1][1:4] == [
        "900.0 ev/s at 310,000 stored",
        "1,000.0 ev/s at 10,000 stored",
        "0.900",
    ]
    assert rows[2][1] == "10,000: 5.0 ms / 9.0 ms; 310,000: 12.2 ms / 31.5 ms"
    assert rows[2][3] == "p99 31.5 ms"
    assert rows[3][1:4] == ["330 MiB after 40,000 events", "300 MiB after 20,000", "1.100"]


def test_growth_rows_of_a_failed_count_and_of_nothing_run() -> None:
    doc = growth_doc()
    doc["tenants_runs"][1] = {"tenants": 10_000, "error": "out of memory"}
    doc["tenants_10k_ratio"] = None
    rows = growth_rows(doc)
    assert rows[0][1] == "10,000 tenants failed: out of memory"
    assert rows[0][3] == "-"
    assert step_rows(doc)[1][3] == "failed: out of memory"
    doc["tenants_runs"][1] = {"tenants": 10_000, "error": "not run: 10,000 shards need more"}
    assert growth_rows(doc)[0][1] == "10,000 tenants not run: 10,000 shards need more"
    assert step_rows(doc)[1][3] == "not run: 10,000 shards need more"
    doc.update(tenants_largest_ok=1_000, tenants_largest_ok_ratio=0.75)
    assert growth_rows(doc)[0][3] == "- (0.750 at 1,000 tenants)"
    empty = growth_rows({})
    assert [r[3] for r in empty] == ["-", "-", "p99 -", "-"]
    assert step_rows({}) == []


def test_step_rows_list_every_step() -> None:
    rows = step_rows(growth_doc())
    assert [r[:2] for r in rows] == [
        ["tenants", "20 tenants"],
        ["tenants", "10,000 tenants"],
        ["collection", "10,000 stored"],
        ["collection", "310,000 stored"],
        ["endurance", "20,000 events"],
        ["endurance", "40,000 events"],
    ]
    assert rows[1][3] == (
        "Weaviate RSS 450 MiB before, 2,600 MiB after; 10,001 shards, "
        "Weaviate holds 160,000 open files, the collection 149,000 (14.9 per shard)"
    )
    assert rows[3][3].startswith("search p50 12.2 ms, p99 31.5 ms, max 60.0 ms; bulk load 2,500")
    assert rows[5][3] == (
        "worker RSS 330.0 MiB, state 19.0 MiB (18.5 MiB of it unflushed: RocksDB write-ahead "
        "log = memtable)"
    )
    assert rows[4][3].startswith("worker RSS 300.0 MiB, state 10.0 MiB (- of it")
    text = render_markdown(growth_doc())
    assert "How cost grows, step by step:" in text
    assert "| endurance | 40,000 events | 1,380.0 ev/s | worker RSS 330.0 MiB" in text


def test_chart_points_come_from_the_steps() -> None:
    series = growth_series(growth_doc())
    assert series.rate_by_tenants == [(20.0, 1500.0), (10_000.0, 750.0)]
    assert series.rate_by_stored == [(10_000.0, 1000.0), (310_000.0, 900.0)]
    assert series.p99_by_stored == [(10_000.0, 9.0), (310_000.0, 31.5)]
    assert series.rss_by_events == [(20_000.0, 300.0), (40_000.0, 330.0)]
    assert series.state_by_events == [(20_000.0, 10.0), (40_000.0, 19.0)]
    assert series.unflushed_by_events == [(40_000.0, 18.5)]
    doc = growth_doc()
    doc["tenants_runs"][1] = {"tenants": 10_000, "error": "out of memory"}
    assert growth_series(doc).rate_by_tenants == [(20.0, 1500.0)]
    assert growth_series({}).rss_by_events == []


def test_the_chart_is_a_png_with_or_without_growth_results(tmp_path: Path) -> None:
    render_png(growth_doc(), tmp_path / "full.png")
    render_png({}, tmp_path / "empty.png")
    for name in ("full.png", "empty.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_totals_are_read_from_the_metrics_page() -> None:
    page = "\n".join(
        [
            "# HELP agentmem_stage_seconds Latency of one stage for one batch",
            'agentmem_stage_seconds_bucket{le="0.1",stage="embed"} 3.0',
            'agentmem_stage_seconds_count{stage="embed"} 4.0',
            'agentmem_stage_seconds_sum{stage="embed"} 0.5',
            'agentmem_stage_seconds_sum{stage="weaviate_write"} 2.25',
            'agentmem_stage_seconds_count{stage="weaviate_write"} 4.0',
            'agentmem_batch_size_sum{stage="index"} 1000.0',
            'agentmem_batch_size_count{stage="index"} 4.0',
        ]
    )
    assert histogram_totals(page, "agentmem_stage_seconds") == {
        "embed": (0.5, 4.0),
        "weaviate_write": (2.25, 4.0),
    }
    assert histogram_totals(page, "agentmem_batch_size") == {"index": (1000.0, 4.0)}
    assert histogram_totals(page, "agentmem_missing") == {}


def test_settle_waits_until_the_process_is_quiet_within_its_limit() -> None:
    from loadgen.bench.growth_probes import QUIET_WINDOW_S, settle

    # CPU seconds read at each window's start and end: busy, busy, then quiet
    readings = iter([0.0, 1.9, 1.9, 3.8, 3.8, 3.85])
    slept: list[float] = []
    waited = settle(1, 60.0, used=lambda pid: next(readings), sleep=slept.append)
    assert waited == 3 * QUIET_WINDOW_S and len(slept) == 3
    # always busy: gives up at the limit
    busy = iter(float(i) for i in range(100))
    assert settle(1, 4.0, used=lambda pid: next(busy) * 2, sleep=lambda s: None) == 4.0
    # no process (no local stack): no wait
    assert settle(None, 60.0) == 0.0
