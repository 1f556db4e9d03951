"""loadgen bench without services: private settings, the results table, the run bookkeeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadgen.bench import suite
from loadgen.bench.baselines import import_objects
from loadgen.bench.config import RESULT_KEYS, BenchConfig
from loadgen.bench.harness import private_settings
from loadgen.bench.render import render_markdown, write_results
from loadgen.bench.suite import BenchRun, bench_intelligent, run_all
from loadgen.synth import SynthConfig, synth_events
from streams.settings import Settings
from streams.stack.launcher import settings_env


def test_private_settings_are_private_and_survive_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = Settings()
    a = private_settings(base, tmp_path)
    b = private_settings(base, tmp_path, llm_base_url="http://127.0.0.1:1/v1")
    assert a.topic_prefix != b.topic_prefix != base.topic_prefix
    assert a.weaviate_collection != b.weaviate_collection
    assert a.stack_dir.parent == tmp_path
    assert b.llm_base_url == "http://127.0.0.1:1/v1"
    assert a.kafka_bootstrap_servers == base.kafka_bootstrap_servers
    for key, value in settings_env(a).items():
        monkeypatch.setenv(key, value)
    assert Settings() == a


def test_import_objects_mirror_the_events() -> None:
    docs = list(synth_events(SynthConfig(count=20, update_ratio=0, delete_ratio=0, vector_dim=384)))
    objects = import_objects(docs)
    assert len(objects) == 20
    assert len({o.uuid for o in objects}) == 20
    assert objects == import_objects(docs)
    first = objects[0]
    assert first.tenant == docs[0]["tenant"]
    assert first.properties["content"] == docs[0]["content"]
    assert len(first.vector) == 384
    with pytest.raises(ValueError, match="carries no vector"):
        import_objects(list(synth_events(SynthConfig(count=1))))


def full_results() -> dict[str, Any]:
    return {
        "fast_vs_embed_ratio": 0.64,
        "fast_drain_events_per_s": 92.3,
        "embed_alone_per_s": 144.6,
        "fast_events": 20000,
        "vector_path_vs_weaviate_ratio": 0.4,
        "vector_path_events_per_s": 800.0,
        "weaviate_import_per_s": 2000.0,
        "vector_events": 10000,
        "duplicate_events_per_s": 3000.0,
        "duplicate_first_pass_events_per_s": 800.0,
        "duplicate_vs_first_pass_ratio": 3.75,
        "duplicate_events": 10000,
        "p50_ms_at_half_load": 120.0,
        "p95_ms_at_half_load": 300.0,
        "p99_ms_at_half_load": 450.0,
        "half_load_target_per_s": 46.1,
        "half_load_events": 2766,
        "intelligent_vs_fast_ratio": None,
        "scale_out_two_vs_one_ratio": 1.16,
        "scale_out_two_workers_per_s": 743.0,
        "scale_out_one_worker_per_s": 638.6,
        "notes": {"intelligent": "intelligent mode not available", "scaleout": "CPU 99%"},
    }


def test_markdown_table_shows_every_benchmark_and_notes() -> None:
    text = render_markdown(full_results())
    lines = text.strip().splitlines()
    assert lines[0] == "| benchmark | measured | baseline | result | note |"
    assert len(lines) == 2 + 7 + 4  # and the four rows of how cost grows
    assert (
        "| fast drain vs fastembed alone | 92.3 ev/s (20,000 events) | 144.6 texts/s | 0.640 |"
        in text
    )
    assert "p99 450 ms" in text
    assert (
        "| precomputed vectors, two workers vs one | 743.0 ev/s (10,000 events) | 638.6 ev/s "
        "| 1.160 | CPU 99% |" in text
    )
    assert "| intelligent (fake LLM) vs fast | - (- events) | - | - | intelligent mode not" in text
    assert (
        "| indexing with the LLM down vs fast | - (- events) | - | - | intelligent mode not" in text
    )


def test_markdown_shows_indexing_with_the_llm_down() -> None:
    doc = full_results()
    doc.update(
        intelligent_vs_fast_ratio=0.6,
        intelligent_events=5000,
        intelligent_events_per_s=90.0,
        intelligent_fast_events_per_s=150.0,
        llm_down_index_events_per_s=141.0,
        llm_down_fast_events_per_s=150.0,
        llm_down_events=4361,
        llm_down_vs_fast_ratio=0.94,
        notes={},
    )
    text = render_markdown(doc)
    assert (
        "| indexing with the LLM down vs fast | 141.0 ev/s (4,361 events) | 150.0 ev/s | 0.940 |"
        in text
    )


def test_a_failing_benchmark_is_noted_and_the_others_run() -> None:
    run = BenchRun()
    config = BenchConfig(only=frozenset({"fast", "vector"}))

    def boom() -> dict[str, Any]:
        raise RuntimeError("worker died")

    run.run("fast", config, boom)
    run.run("vector", config, lambda: {"vector_path_vs_weaviate_ratio": 0.5, "note": "small"})
    run.run("duplicate", config, lambda: {"duplicate_events_per_s": 1.0})
    doc = run.document(config)
    assert run.failed == ["fast"]
    assert doc["notes"] == {
        "fast": "failed: worker died",
        "vector": "small",
        "duplicate": "skipped (not selected)",
    }
    assert doc["vector_path_vs_weaviate_ratio"] == 0.5
    assert doc["duplicate_events_per_s"] is None
    assert all(key in doc for key in RESULT_KEYS)
    assert set(doc["seconds"]) == {"fast", "vector"}


def test_latency_without_a_drain_rate_is_skipped_with_a_note(tmp_path: Path) -> None:
    config = BenchConfig(only=frozenset({"latency"}), workdir=tmp_path)
    run = run_all(Settings(), config)
    assert run.failed == []
    assert "needs the fast drain rate" in run.notes["latency"]
    assert run.results["p99_ms_at_half_load"] is None


def test_intelligent_is_skipped_when_there_is_no_fake_llm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(suite, "FAKE_LLM", tmp_path / "fake_llm.py")
    out = bench_intelligent(Settings(), BenchConfig(workdir=tmp_path))
    assert out == {"intelligent_vs_fast_ratio": None, "note": "intelligent mode not available"}


def test_results_are_written_as_json_and_markdown(tmp_path: Path) -> None:
    doc = full_results()
    write_results(doc, tmp_path / "r.json", tmp_path / "r.md")
    assert '"fast_vs_embed_ratio": 0.64' in (tmp_path / "r.json").read_text()
    assert (tmp_path / "r.md").read_text() == render_markdown(doc)
