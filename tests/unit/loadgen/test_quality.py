"""The labeled quality set and its scores (no endpoint)."""

from __future__ import annotations

from collections import Counter

import pytest

from loadgen.quality.dataset import ACTIONS, BANDS, decision_cases, memory_cases
from loadgen.quality.render import render_markdown
from loadgen.quality.run import PARTS, QualityRun, run_quality
from loadgen.quality.score import (
    FAILED,
    Predicted,
    agrees,
    band_of,
    fact_matches,
    score_decisions,
    score_facts,
    score_importance,
)
from processors.core.enrichment import Candidate, local_decision


def test_the_set_is_large_and_varied_enough() -> None:
    decisions, memories = decision_cases(), memory_cases()
    assert len(decisions) >= 40 and len(memories) >= 60
    actions = Counter(c.expected for c in decisions)
    assert set(actions) == set(ACTIONS) and min(actions.values()) >= 10
    assert Counter(m.importance for m in memories).keys() == BANDS.keys()
    assert {c.target for c in decisions if c.target is not None} >= {0, 1}  # not always first
    assert len({c.id for c in decisions}) == len(decisions)
    assert len({m.memory for m in memories}) == len(memories)


def test_no_decision_case_is_settled_by_rule() -> None:
    """Every pair needs the model: no exact duplicate, always something to compare."""
    for case in decision_cases():
        candidates = [Candidate(str(i), t, 0.0) for i, t in enumerate(case.existing)]
        assert local_decision(case.memory, candidates) is None, case.id


def test_each_expected_fact_is_stated_by_its_memory() -> None:
    for case in memory_cases():
        for fact in case.facts:
            assert fact_matches(fact, [case.memory]), (case.id, fact)


def test_confusion_matrix_and_targets() -> None:
    cases = decision_cases()
    update = next(c for c in cases if c.expected == "UPDATE")
    add = next(c for c in cases if c.expected == "ADD")
    delete = next(c for c in cases if c.expected == "DELETE")
    got = {
        update.id: Predicted("UPDATE", update.target),
        add.id: Predicted("NOOP", 0),
        delete.id: Predicted("DELETE", 5),
    }
    score = score_decisions([update, add, delete], got)
    assert (score.correct, score.total) == (2, 3)
    assert score.confusion["ADD"]["NOOP"] == 1
    assert (score.target_correct, score.target_total) == (1, 2)
    missing = score_decisions([update], {})
    assert missing.confusion["UPDATE"][FAILED] == 1 and missing.failed == 1


def test_fact_recall_counts_expected_facts_found() -> None:
    case = next(m for m in memory_cases() if m.id == "m01")
    score = score_facts([case], {"m01": ["Anna lives in Berlin.", "She is a doctor."]})
    assert (score.matched, score.expected, score.recall) == (1, 2, 0.5)
    assert score_facts([case], {"m01": None}).answered == 0


@pytest.mark.parametrize(
    ("band", "value", "ok"),
    [("low", 0.1, True), ("low", 0.54, True), ("low", 0.6, False), ("high", 0.77, True)],
)
def test_importance_agrees_within_a_tolerance(band: str, value: float, ok: bool) -> None:
    assert agrees(band, value) is ok


def test_importance_bands() -> None:
    assert [band_of(v) for v in (0.0, 0.49, 0.5, 0.79, 0.8, 1.0)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
    case = next(m for m in memory_cases() if m.importance == "high")
    score = score_importance([case], {case.id: 0.9})
    assert (score.agreeing, score.confusion["high"]["high"]) == (1, 1)


# -- a run limited to some parts (`loadgen quality --only`) --------------------------------


def _run(parts: tuple[str, ...]) -> QualityRun:
    cases = decision_cases()
    got = {c.id: Predicted(c.expected, c.target) for c in cases[:10]}
    return QualityRun(
        "http://x/v1",
        "m",
        8,
        "decision.v2",
        "json_object",
        score_decisions(cases, got),
        score_facts([], {}),
        score_importance([], {}),
        1.0,
        {"decision": {"valid": 2.0}},
        {"ok": 2.0},
        parts,
    )


def test_a_decisions_only_run_renders_no_facts_or_importance() -> None:
    text = render_markdown(_run(("decisions",)))
    assert "decisions: **21%** right (10/48" in text
    assert "prompts decision.v2" in text and "1.0 s for decisions" in text
    assert "facts: recall" not in text and "importance:" not in text
    assert "band \\ answered" not in text and "expected \\ decided" in text
    assert "facts: recall" in render_markdown(_run(PARTS))


async def test_unknown_or_no_parts_are_refused() -> None:
    from streams.settings import Settings

    for parts in (("decision",), ()):
        with pytest.raises(ValueError, match="quality parts must be among"):
            await run_quality(Settings(), parts=parts)
