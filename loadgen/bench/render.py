"""The benchmark results as one Markdown table, and both files of a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    ]
    return md_table(["benchmark", "measured", "baseline", "result", "note"], rows) + "\n"


def write_results(doc: dict[str, Any], json_path: Path, md_path: Path | None = None) -> None:
    """The document as JSON and, if asked, the Markdown table."""
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    if md_path is not None:
        md_path.write_text(render_markdown(doc))
