"""A quality run as Markdown (printed) and JSON (``--out``). Pure."""

from __future__ import annotations

import dataclasses
from typing import Any

from loadgen.quality.run import QualityRun


def _matrix(title: str, rows: dict[str, dict[str, int]]) -> list[str]:
    columns = list(next(iter(rows.values())))
    lines = [f"| {title} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, counts in rows.items():
        lines.append(f"| **{name}** | " + " | ".join(str(counts[c]) for c in columns) + " |")
    return lines


def render_markdown(run: QualityRun) -> str:
    d, f, i = run.decisions, run.facts, run.importance
    answers = {
        verdict: sum(by.get(verdict, 0.0) for by in run.answers.values())
        for verdict in ("valid", "repaired", "invalid")
    }
    parts = run.parts
    lines = [
        f"# LLM quality: {run.model} at {run.base_url}",
        "",
        f"batch size {run.batch_size}, prompts {run.prompt_version}, structured output "
        f"{run.mode}; {run.seconds:.1f} s for {', '.join(parts)}",
        "",
    ]
    if "decisions" in parts:
        lines.append(
            f"- decisions: **{d.accuracy:.0%}** right ({d.correct}/{d.total}; {d.by_rule} "
            f"decided by rule, {d.failed} failed); target right for "
            f"{d.target_correct}/{d.target_total} UPDATE/DELETE/NOOP"
        )
    if "facts" in parts:
        lines.append(
            f"- facts: recall **{f.recall:.0%}** ({f.matched}/{f.expected} expected facts "
            f"found; {f.produced} facts from {f.answered}/{f.memories} memories)"
        )
    if "importance" in parts:
        lines.append(
            f"- importance: **{i.agreement:.0%}** in the expected band ({i.agreeing}/"
            f"{i.memories}; mean distance from the band's middle "
            f"{i.absolute_error / i.answered if i.answered else 0:.2f})"
        )
    lines.append(
        f"- answers: {answers['valid']:.0f} valid, {answers['repaired']:.0f} repaired, "
        f"{answers['invalid']:.0f} invalid; requests by outcome "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(run.requests.items()))
    )
    if "decisions" in parts:
        lines += ["", *_matrix("expected \\ decided", d.confusion)]
    if "importance" in parts:
        lines += ["", *_matrix("band \\ answered", i.confusion)]
    return "\n".join(lines) + "\n"


def as_json(run: QualityRun) -> dict[str, Any]:
    doc = dataclasses.asdict(run)
    doc["decisions"]["accuracy"] = run.decisions.accuracy
    doc["facts"]["recall"] = run.facts.recall
    doc["importance"]["agreement"] = run.importance.agreement
    return doc
