"""The fake LLM's answers: deterministic functions of the prompt content. Pure.

The fake stands in for a real model in tests and benchmarks. Its rules are small
and documented so that tests can script outcomes:

- facts: the memory split into clauses (sentences, ``;``, `` and ``, ``, but``).
- importance: 0.3, plus 0.3 if the memory mentions a weighty topic (health,
  dates, family, home, work), plus up to 0.2 for digits and up to 0.2 for length.
- decision, for a new memory against the existing ones it is shown:
  NOOP if an existing memory says the same (equal words, or word Jaccard >= 0.85,
  or the same value of the same slot); DELETE an existing memory that the new one
  negates ("no longer works at X"); UPDATE an existing memory that holds another
  value of the same slot ("lives in London" -> "moved to Paris"); ADD otherwise.
  Slots: residence (lives in / moved to / living in / relocated to), employer
  (works at / works for / joined), and "favourite <thing> is <value>".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

WORD = re.compile(r"[a-z0-9']+")
WEIGHTY = (
    "allerg",
    "birthday",
    "anniversary",
    "diagnos",
    "medication",
    "married",
    "pregnan",
    "password",
    "deadline",
    "moved",
    "lives",
    "works",
    "daughter",
    "son\\b",
    "wife",
    "husband",
)
NEGATION = re.compile(r"\b(no longer|not anymore|doesn't|does not|don't|do not|stopped|quit)\b")
SLOTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "residence",
        re.compile(
            r"\b(?:lives?|living|lived|moved|moving|relocated|relocating|resides?)\s+"
            r"(?:in|to)\s+([a-z][a-z ]*?)(?:\s+now)?$"
        ),
    ),
    (
        "employer",
        re.compile(r"\b(?:(?:works?|working|worked)\s+(?:at|for)|joined)\s+([a-z][a-z ]*?)$"),
    ),
    ("favourite", re.compile(r"\bfavou?rite\s+([a-z]+)\s+is\s+([a-z][a-z ]*?)$")),
)
CLAUSE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\s+and\s+|,\s+but\s+|;\s*")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def normalized(text: str) -> str:
    return " ".join(words(text))


def jaccard(a: str, b: str) -> float:
    sa, sb = set(words(a)), set(words(b))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


@dataclass(frozen=True)
class Slot:
    name: str
    value: str
    negated: bool


def slot_of(text: str) -> Slot | None:
    """The slot a memory fills, if the fake recognises one."""
    plain = normalized(text)
    negated = NEGATION.search(plain) is not None
    for name, pattern in SLOTS:
        match = pattern.search(plain)
        if match is None:
            continue
        if name == "favourite":
            return Slot(f"favourite {match.group(1)}", match.group(2).strip(), negated)
        return Slot(name, match.group(1).strip(), negated)
    return None


def facts_of(text: str) -> list[str]:
    clauses = [c.strip(" .!?;,") for c in CLAUSE_SPLIT.split(text.strip())]
    found = [c for c in clauses if c]
    return found[:8] or [text.strip()]


def importance_of(text: str) -> float:
    lower = text.lower()
    score = 0.3
    if any(re.search(rf"\b{w}", lower) for w in WEIGHTY):
        score += 0.3
    score += min(0.2, 0.05 * sum(ch.isdigit() for ch in text))
    score += min(0.2, len(words(text)) / 100)
    return round(min(1.0, score), 2)


def decide(text: str, existing: list[tuple[str, str]]) -> dict[str, Any]:
    """The decision for ``text`` against ``existing`` (id, text) pairs, oldest first."""
    plain = normalized(text)
    for cid, other in existing:
        if normalized(other) == plain or jaccard(other, text) >= 0.85:
            return {"action": "NOOP", "target": cid, "text": None}
    mine = slot_of(text)
    if mine is not None:
        for cid, other in existing:
            theirs = slot_of(other)
            if theirs is None or theirs.name != mine.name or theirs.negated:
                continue
            if mine.negated:
                if mine.value == theirs.value:
                    return {"action": "DELETE", "target": cid, "text": None}
                continue
            if mine.value == theirs.value:
                return {"action": "NOOP", "target": cid, "text": None}
            return {"action": "UPDATE", "target": cid, "text": text}
    return {"action": "ADD", "target": None, "text": None}


def answer(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer to one prompt of ``kind`` whose user message is ``payload``."""
    items = payload.get("items", [])
    if kind == "facts":
        return {"results": [{"id": i["id"], "facts": facts_of(i["memory"])} for i in items]}
    if kind == "importance":
        return {
            "results": [{"id": i["id"], "importance": importance_of(i["memory"])} for i in items]
        }
    if kind == "decision":
        return {
            "results": [
                {
                    "id": i["id"],
                    **decide(i["memory"], [(e["id"], e["memory"]) for e in i.get("existing", [])]),
                }
                for i in items
            ]
        }
    raise ValueError(f"unknown prompt kind {kind!r}")
