"""The benchmark results as Markdown (one table, and the growth benchmarks' steps),
and the files of a run: JSON, Markdown and the PNG (:mod:`loadgen.bench.chart`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadgen.bench.chart import render_png
from loadgen.report.render import md_table


def _number(doc: dict[str, Any], key: str, unit: str = "", digits: int = 1) -> str:
    value = doc.get(key)
    if not isinstance(value, int | float):
        return "-"
    return f"{value:,.{digits}f}{unit}"


def _rate(doc: dict[str, Any], key: str, events_key: str) -> str:
    return f"{_number(doc, key, ' ev/s')} ({_number(doc, events_key, '', 0)} events)"


# A benchmark against its baseline: (title, measured per s, events, baseline, its unit,
# ratio, the benchmark whose note goes with the row)
RatioRow = tuple[str, str, str, str, str, str, str]
RATIO_ROWS: dict[str, RatioRow] = {
    "fast": (
        "fast drain vs fastembed alone",
        "fast_drain_events_per_s",
        "fast_events",
        "embed_alone_per_s",
        " texts/s",
        "fast_vs_embed_ratio",
        "fast",
    ),
    "vector": (
        "precomputed vectors vs Weaviate batch import",
        "vector_path_events_per_s",
        "vector_events",
        "weaviate_import_per_s",
        " obj/s",
        "vector_path_vs_weaviate_ratio",
        "vector",
    ),
    "scaleout": (
        "precomputed vectors, two workers vs one",
        "scale_out_two_workers_per_s",
        "vector_events",
        "scale_out_one_worker_per_s",
        " ev/s",
        "scale_out_two_vs_one_ratio",
        "scaleout",
    ),
    "intelligent": (
        "intelligent (fake LLM) vs fast",
        "intelligent_events_per_s",
        "intelligent_events",
        "intelligent_fast_events_per_s",
        " ev/s",
        "intelligent_vs_fast_ratio",
        "intelligent",
    ),
    "llm_down": (
        "indexing with the LLM down vs fast",
        "llm_down_index_events_per_s",
        "llm_down_events",
        "llm_down_fast_events_per_s",
        " ev/s",
        "llm_down_vs_fast_ratio",
        "intelligent",
    ),
}


def _ratio_row(doc: dict[str, Any], row: RatioRow) -> list[str]:
    title, measured, events, baseline, unit, ratio, note = row
    return [
        title,
        _rate(doc, measured, events),
        _number(doc, baseline, unit),
        _number(doc, ratio, "", 3),
        doc.get("notes", {}).get(note, ""),
    ]


def _runs(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows = doc.get(key)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _of(row: dict[str, Any], key: str, unit: str = "", digits: int = 0) -> str:
    return _number(row, key, unit, digits)


def _why(run: dict[str, Any]) -> str:
    """A tenant count's error, as "failed: ..." unless it says it was not run."""
    error = str(run["error"])
    return error if error.startswith("not run") else f"failed: {error}"


def _tenant_run(run: dict[str, Any] | None) -> str:
    if run is None:
        return "-"
    if "error" in run:
        return f"{run['tenants']:,} tenants {_why(run)}"
    return (
        f"{_of(run, 'events_per_s', ' ev/s', 1)} over {run['tenants']:,} tenants; Weaviate "
        f"{_of(run, 'weaviate_rss_mb', ' MiB')}, {_of(run, 'shards')} shards"
    )


def _tenants_result(doc: dict[str, Any]) -> str:
    """The ratio at the last count; else at the largest count that ran, saying so."""
    if isinstance(doc.get("tenants_10k_ratio"), int | float):
        return _number(doc, "tenants_10k_ratio", "", 3)
    if isinstance(doc.get("tenants_largest_ok_ratio"), int | float):
        largest = _number(doc, "tenants_largest_ok", "", 0)
        return f"- ({_number(doc, 'tenants_largest_ok_ratio', '', 3)} at {largest} tenants)"
    return "-"


def growth_rows(doc: dict[str, Any]) -> list[list[str]]:
    """The growth benchmarks' rows of the main table. Pure."""
    notes = doc.get("notes", {})
    tenants, steps = _runs(doc, "tenants_runs"), _runs(doc, "collection_steps")
    points = _runs(doc, "endurance_points")
    first_step, last_step = (steps[0], steps[-1]) if steps else ({}, {})
    first_point, last_point = (points[0], points[-1]) if points else ({}, {})
    return [
        [
            "drain rate, many tenants vs few (precomputed vectors)",
            _tenant_run(tenants[-1] if tenants else None),
            _tenant_run(tenants[0] if tenants else None),
            _tenants_result(doc),
            notes.get("tenants", ""),
        ],
        [
            "drain rate, large collection vs small",
            f"{_of(last_step, 'events_per_s', ' ev/s', 1)} at {_of(last_step, 'stored')} stored",
            f"{_of(first_step, 'events_per_s', ' ev/s', 1)} at {_of(first_step, 'stored')} stored",
            _number(doc, "rate_300k_vs_10k", "", 3),
            notes.get("collection", ""),
        ],
        [
            "search p50 / p99 by memories stored (reader + Weaviate, no embedding)",
            "; ".join(
                f"{_of(s, 'stored')}: {_of(s, 'search_p50_ms', ' ms', 1)} / "
                f"{_of(s, 'search_p99_ms', ' ms', 1)}"
                for s in steps
            )
            or "-",
            f"{_number(doc, 'search_p50_ms_300k', ' ms', 1)} p50 at the largest",
            f"p99 {_number(doc, 'search_p99_ms_300k', ' ms', 1)}",
            "",
        ],
        [
            "worker RSS at the end vs after the first chunk",
            f"{_of(last_point, 'worker_rss_mb', ' MiB')} after {_of(last_point, 'events')} events",
            f"{_of(first_point, 'worker_rss_mb', ' MiB')} after {_of(first_point, 'events')}",
            _number(doc, "rss_growth_ratio", "", 3),
            notes.get("endurance", ""),
        ],
    ]


def _tenant_step(r: dict[str, Any]) -> list[str]:
    after = (
        _why(r)
        if "error" in r
        else f"Weaviate RSS {_of(r, 'weaviate_rss_mb_before', ' MiB')} before, "
        f"{_of(r, 'weaviate_rss_mb', ' MiB')} after; {_of(r, 'shards')} shards, "
        f"Weaviate holds {_of(r, 'weaviate_open_files')} open files, the collection "
        f"{_of(r, 'collection_open_files')} ({_of(r, 'open_files_per_shard', '', 1)} per shard)"
    )
    return ["tenants", f"{r['tenants']:,} tenants", _of(r, "events_per_s", " ev/s", 1), after]


def _collection_step(s: dict[str, Any]) -> list[str]:
    after = (
        f"search p50 {_of(s, 'search_p50_ms', ' ms', 1)}, p99 {_of(s, 'search_p99_ms', ' ms', 1)}"
        f", max {_of(s, 'search_max_ms', ' ms', 1)}; bulk load {_of(s, 'load_per_s', ' obj/s')}"
        f", then Weaviate quiet after {_of(s, 'weaviate_settled_s', ' s')}"
        f"; Weaviate RSS {_of(s, 'weaviate_rss_mb', ' MiB')}"
    )
    return ["collection", f"{_of(s, 'stored')} stored", _of(s, "events_per_s", " ev/s", 1), after]


def _endurance_step(p: dict[str, Any]) -> list[str]:
    after = (
        f"worker RSS {_of(p, 'worker_rss_mb', ' MiB', 1)}, state {_of(p, 'state_mb', ' MiB', 1)}"
        f" ({_of(p, 'state_unflushed_mb', ' MiB', 1)} of it unflushed: RocksDB write-ahead log"
        " = memtable)"
    )
    return ["endurance", f"{_of(p, 'events')} events", _of(p, "events_per_s", " ev/s", 1), after]


def step_rows(doc: dict[str, Any]) -> list[list[str]]:
    """Every step of the growth benchmarks: what was measured after it. Pure."""
    return (
        [_tenant_step(r) for r in _runs(doc, "tenants_runs")]
        + [_collection_step(s) for s in _runs(doc, "collection_steps")]
        + [_endurance_step(p) for p in _runs(doc, "endurance_points")]
    )


def render_markdown(doc: dict[str, Any]) -> str:
    """The results as one table: benchmark, measured, baseline, result, note."""

    def num(key: str, unit: str = "", digits: int = 1) -> str:
        return _number(doc, key, unit, digits)

    notes = doc.get("notes", {})
    duplicate = [
        "duplicate events (no-ops)",
        _rate(doc, "duplicate_events_per_s", "duplicate_events"),
        f"first pass {num('duplicate_first_pass_events_per_s', ' ev/s')}",
        num("duplicate_vs_first_pass_ratio", "", 3),
        notes.get("duplicate", ""),
    ]
    latency = [
        "latency at half the drain rate (open loop)",
        f"p50 {num('p50_ms_at_half_load', ' ms', 0)}, "
        f"p95 {num('p95_ms_at_half_load', ' ms', 0)}, "
        f"p99 {num('p99_ms_at_half_load', ' ms', 0)}",
        f"{num('half_load_target_per_s', ' ev/s')} offered, "
        f"{num('half_load_events', '', 0)} events",
        f"p99 {num('p99_ms_at_half_load', ' ms', 0)}",
        notes.get("latency", ""),
    ]
    rows = [
        _ratio_row(doc, RATIO_ROWS["fast"]),
        _ratio_row(doc, RATIO_ROWS["vector"]),
        duplicate,
        latency,
        _ratio_row(doc, RATIO_ROWS["intelligent"]),
        _ratio_row(doc, RATIO_ROWS["llm_down"]),
        _ratio_row(doc, RATIO_ROWS["scaleout"]),
        *growth_rows(doc),
    ]
    text = md_table(["benchmark", "measured", "baseline", "result", "note"], rows) + "\n"
    steps = step_rows(doc)
    if steps:
        headers = ["benchmark", "step", "drain rate", "measured after it"]
        text += "\nHow cost grows, step by step:\n\n" + md_table(headers, steps) + "\n"
    return text


def write_results(
    doc: dict[str, Any], json_path: Path, md_path: Path | None = None, png_path: Path | None = None
) -> None:
    """The document as JSON and, if asked, the Markdown tables and the growth chart."""
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    if md_path is not None:
        md_path.write_text(render_markdown(doc))
    if png_path is not None:
        render_png(doc, png_path)
