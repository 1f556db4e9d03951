"""The benchmark's report: a markdown table (variant x metric), hit@10 by question
kind, and the JSON document. Pure."""

from __future__ import annotations

from typing import Any

from loadgen.retrieval.dataset import KINDS
from loadgen.retrieval.score import Scores, metric_names
from loadgen.retrieval.variants import Variant


def document(
    counts: dict[str, Any], results: list[tuple[Variant, Scores]], seconds: dict[str, float]
) -> dict[str, Any]:
    return {
        "set": counts,
        "seconds": seconds,
        "variants": [
            {
                "name": v.name,
                "alpha": v.alpha,
                "fusion": v.fusion,
                "metrics": s.metrics,
                "hit@10_by_kind": s.by_kind,
                "misses": list(s.misses),
            }
            for v, s in results
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    names = metric_names()
    s = doc["set"]
    lines = [
        f"retrieval set: {s['turns']} turns, {s['questions']} questions, {s['tenants']} tenants",
        "",
        "| variant | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for v in doc["variants"]:
        cells = " | ".join(f"{v['metrics'][n]:.3f}" for n in names)
        lines.append(f"| {v['name']} | {cells} |")
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
