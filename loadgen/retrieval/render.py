"""The benchmark's report: a markdown table (variant x metric), hit@10 by question
kind, and the JSON document. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadgen.retrieval.dataset import KINDS
from loadgen.retrieval.score import Scores, metric_names
from loadgen.retrieval.variants import Variant
from loadgen.stats import latency_summary


@dataclass(frozen=True)
class Measured:
    variant: Variant
    scores: Scores
    search_ms: list[float]  # each search's time, the query's embedding included


def document(
    counts: dict[str, Any], results: list[Measured], seconds: dict[str, float]
) -> dict[str, Any]:
    return {
        "set": counts,
        "seconds": seconds,
        "variants": [
            {
                "name": m.variant.name,
                "alpha": m.variant.alpha,
                "fusion": m.variant.fusion,
                "metrics": m.scores.metrics,
                "hit@10_by_kind": m.scores.by_kind,
                "misses": list(m.scores.misses),
                "search_ms": latency_summary(m.search_ms),
            }
            for m in results
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    names = metric_names()
    s = doc["set"]
    lines = [
        f"retrieval set: {s['turns']} turns, {s['questions']} questions, {s['tenants']} tenants",
        "",
        "| variant | " + " | ".join(names) + " | search p50 / p99 ms |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for v in doc["variants"]:
        cells = " | ".join(f"{v['metrics'][n]:.3f}" for n in names)
        ms = v["search_ms"]
        took = "-" if ms["p50"] is None else f"{ms['p50']:.0f} / {ms['p99']:.0f}"
        lines.append(f"| {v['name']} | {cells} | {took} |")
    kinds = [k for k in KINDS if k in s["kinds"]]
    lines += [
        "",
        "hit@10 by question kind (questions): "
        + ", ".join(f"{k} ({s['kinds'][k]})" for k in kinds),
        "",
        "| variant | " + " | ".join(kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    for v in doc["variants"]:
        by_kind = v["hit@10_by_kind"]
        lines.append(f"| {v['name']} | " + " | ".join(f"{by_kind[k]:.2f}" for k in kinds) + " |")
    return "\n".join(lines) + "\n"
