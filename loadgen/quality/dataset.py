"""The labeled quality set: decision pairs and memories with expected facts and importance.

Written for this project (``data/decisions.json``, ``data/memories.json``): decision
pairs are a new memory, the older memories it is shown and the expected action
(ADD, UPDATE, DELETE, NOOP) with its target among them; memories carry the facts
they state, each as keywords that one extracted fact must all contain, and the
importance band the prompt's scale puts them in. Pure (reads the shipped files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

ACTIONS = ("ADD", "UPDATE", "DELETE", "NOOP")
# the importance prompt's scale: below 0.5 passing, 0.5-0.8 lasting, 0.8-1 vital
BANDS: dict[str, tuple[float, float]] = {
    "low": (0.0, 0.5),
    "medium": (0.5, 0.8),
    "high": (0.8, 1.0),
}


@dataclass(frozen=True)
class DecisionCase:
    id: str
    memory: str
    existing: tuple[str, ...]
    expected: str  # one of ACTIONS
    target: int | None  # index into existing; None for ADD


@dataclass(frozen=True)
class MemoryCase:
    id: str
    memory: str
    facts: tuple[tuple[str, ...], ...]  # each fact: keywords one extracted fact must hold
    importance: str  # a key of BANDS


def _load(name: str) -> list[dict[str, Any]]:
    text = resources.files("loadgen.quality").joinpath("data", name).read_text(encoding="utf-8")
    rows: list[dict[str, Any]] = json.loads(text)
    return rows


def decision_cases() -> list[DecisionCase]:
    cases = [
        DecisionCase(
            str(r["id"]),
            str(r["memory"]),
            tuple(str(e) for e in r["existing"]),
            str(r["expected"]),
            r.get("target"),
        )
        for r in _load("decisions.json")
    ]
    for case in cases:
        if case.expected not in ACTIONS or (case.target is None) != (case.expected == "ADD"):
            raise ValueError(f"decision case {case.id}: bad expected action or target")
    return cases


def memory_cases() -> list[MemoryCase]:
    cases = [
        MemoryCase(
            str(r["id"]),
            str(r["memory"]),
            tuple(tuple(str(k).lower() for k in fact) for fact in r["facts"]),
            str(r["importance"]),
        )
        for r in _load("memories.json")
    ]
    for case in cases:
        if case.importance not in BANDS or not case.facts:
            raise ValueError(f"memory case {case.id}: bad importance band or no facts")
    return cases
