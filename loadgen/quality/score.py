"""Scores of one quality run: a decision confusion matrix, fact recall, importance
agreement. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from loadgen.quality.dataset import ACTIONS, BANDS, DecisionCase, MemoryCase

FAILED = "FAILED"  # no usable answer: a row or column of its own in the matrix
# an importance this close outside its band still agrees (0.8 for "medium" is no error)
BAND_TOLERANCE = 0.05


@dataclass(frozen=True)
class Predicted:
    """A decision as the pipeline took it: action, target index, and who decided."""

    action: str  # one of ACTIONS or FAILED
    target: int | None = None
    by: str = "llm"  # llm | rule | invalid_target


@dataclass
class DecisionScore:
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # expected -> got
    correct: int = 0
    total: int = 0
    target_correct: int = 0  # right action and right target, of the non-ADD expected
    target_total: int = 0
    by_rule: int = 0
    failed: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def score_decisions(cases: Sequence[DecisionCase], got: Mapping[str, Predicted]) -> DecisionScore:
    columns = (*ACTIONS, FAILED)
    score = DecisionScore(confusion={a: dict.fromkeys(columns, 0) for a in ACTIONS})
    for case in cases:
        predicted = got.get(case.id, Predicted(FAILED))
        score.total += 1
        score.confusion[case.expected][predicted.action] += 1
        score.by_rule += predicted.by == "rule"
        score.failed += predicted.action == FAILED
        if predicted.action == case.expected:
            score.correct += 1
        if case.expected != "ADD":
            score.target_total += 1
            score.target_correct += (
                predicted.action == case.expected and predicted.target == case.target
            )
    return score


def fact_matches(expected: Sequence[str], produced: Sequence[str]) -> bool:
    """One produced fact holds every keyword of the expected fact (case-insensitive)."""
    return any(all(k in fact.lower() for k in expected) for fact in produced)


@dataclass
class FactScore:
    matched: int = 0
    expected: int = 0
    produced: int = 0
    answered: int = 0  # memories with facts (not failed)
    memories: int = 0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 0.0


def score_facts(cases: Sequence[MemoryCase], got: Mapping[str, list[str] | None]) -> FactScore:
    score = FactScore()
    for case in cases:
        produced = got.get(case.id)
        score.memories += 1
        score.expected += len(case.facts)
        if produced is None:
            continue
        score.answered += 1
        score.produced += len(produced)
        score.matched += sum(fact_matches(fact, produced) for fact in case.facts)
    return score


def band_of(value: float) -> str:
    for name, (low, high) in BANDS.items():
        if low <= value < high or (high == 1.0 and value == 1.0):
            return name
    return "low" if value < 0 else "high"


def agrees(band: str, value: float) -> bool:
    low, high = BANDS[band]
    return low - BAND_TOLERANCE <= value <= high + BAND_TOLERANCE


@dataclass
class ImportanceScore:
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # band -> got band
    agreeing: int = 0
    answered: int = 0
    memories: int = 0
    absolute_error: float = 0.0  # from the band's middle, summed over answered

    @property
    def agreement(self) -> float:
        return self.agreeing / self.memories if self.memories else 0.0


def score_importance(
    cases: Sequence[MemoryCase], got: Mapping[str, float | None]
) -> ImportanceScore:
    columns = (*BANDS, FAILED)
    score = ImportanceScore(confusion={b: dict.fromkeys(columns, 0) for b in BANDS})
    for case in cases:
        value = got.get(case.id)
        score.memories += 1
        if value is None:
            score.confusion[case.importance][FAILED] += 1
            continue
        score.answered += 1
        score.confusion[case.importance][band_of(value)] += 1
        score.agreeing += agrees(case.importance, value)
        low, high = BANDS[case.importance]
        score.absolute_error += abs(value - (low + high) / 2)
    return score
