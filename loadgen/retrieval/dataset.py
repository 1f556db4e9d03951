"""The labeled retrieval set: dialogue turns (each one memory) and questions with the
ids of the turns that answer them. Pure (reads the shipped files).

Written for this project (``data/turns.jsonl``, ``data/questions.jsonl``; see
``data/README.md``): several users, each its own tenant, talking to an assistant over
several dated sessions. A question's ``kind`` says what it tests: ``current`` (a fact
that changed; the evidence is the latest turn), ``date``, ``name``, ``place``,
``negation``, ``indirect`` (phrased unlike its turn) or ``fact``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

KINDS = ("current", "date", "name", "place", "negation", "indirect", "fact")


@dataclass(frozen=True)
class Turn:
    id: str
    tenant: str
    session: int
    speaker: str
    at: datetime
    text: str


@dataclass(frozen=True)
class Question:
    id: str
    tenant: str
    kind: str
    question: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class RetrievalSet:
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]

    @property
    def tenants(self) -> list[str]:
        return sorted({t.tenant for t in self.turns})


def _rows(name: str) -> list[dict[str, Any]]:
    text = resources.files("loadgen.retrieval").joinpath("data", name).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def parse(turn_rows: list[dict[str, Any]], question_rows: list[dict[str, Any]]) -> RetrievalSet:
    turns = tuple(
        Turn(
            str(r["id"]),
            str(r["tenant"]),
            int(r["session"]),
            str(r["speaker"]),
            datetime.fromisoformat(str(r["at"])),
            str(r["text"]),
        )
        for r in turn_rows
    )
    questions = tuple(
        Question(
            str(r["id"]),
            str(r["tenant"]),
            str(r["kind"]),
            str(r["question"]),
            tuple(str(e) for e in r["evidence"]),
        )
        for r in question_rows
    )
    return RetrievalSet(turns, questions)


def load() -> RetrievalSet:
    """The shipped set; ``ValueError`` listing its problems if :func:`problems` finds any."""
    data = parse(_rows("turns.jsonl"), _rows("questions.jsonl"))
    found = problems(data)
    if found:
        raise ValueError("the retrieval set is not valid: " + "; ".join(found[:10]))
    return data


def problems(data: RetrievalSet) -> list[str]:
    """What is wrong with ``data``: duplicate ids, empty texts, unknown kinds, evidence that
    is missing, of another tenant, or (for ``current``) not the latest evidence turn."""
    found: list[str] = []
    turns = {t.id: t for t in data.turns}
    for ident, n in Counter([t.id for t in data.turns] + [q.id for q in data.questions]).items():
        if n > 1:
            found.append(f"id {ident} used {n} times")
    found.extend(f"turn {t.id} is empty" for t in data.turns if not t.text.strip())
    for q in data.questions:
        if q.kind not in KINDS:
            found.append(f"question {q.id}: unknown kind {q.kind!r}")
        if not q.evidence or not q.question.strip():
            found.append(f"question {q.id}: no text or no evidence")
        for e in q.evidence:
            if e not in turns:
                found.append(f"question {q.id}: evidence {e} is no turn")
            elif turns[e].tenant != q.tenant:
                found.append(f"question {q.id}: evidence {e} is of tenant {turns[e].tenant}")
    return found


def counts(data: RetrievalSet) -> dict[str, Any]:
    return {
        "tenants": len(data.tenants),
        "sessions": len({(t.tenant, t.session) for t in data.turns}),
        "turns": len(data.turns),
        "questions": len(data.questions),
        "kinds": dict(sorted(Counter(q.kind for q in data.questions).items())),
    }


def sample(data: RetrievalSet, *, questions: int, turns: int) -> RetrievalSet:
    """A small slice: the first ``questions`` questions (in order) whose evidence fits in
    ``turns``, their evidence turns, and the other turns of their tenants in order up to
    ``turns`` in all (the distractors)."""
    chosen: list[Question] = []
    keep: set[str] = set()
    for q in data.questions:
        if len(chosen) == questions:
            break
        if len(keep | set(q.evidence)) <= turns:
            chosen.append(q)
            keep |= set(q.evidence)
    tenants = {q.tenant for q in chosen}
    for t in data.turns:
        if len(keep) >= turns:
            break
        if t.tenant in tenants:
            keep.add(t.id)
    return RetrievalSet(tuple(t for t in data.turns if t.id in keep), tuple(chosen))
