"""loadgen.retrieval: the shipped set is valid, scoring, slicing, variants, the report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loadgen.retrieval import render
from loadgen.retrieval.dataset import (
    KINDS,
    Question,
    RetrievalSet,
    Turn,
    counts,
    load,
    problems,
    sample,
)
from loadgen.retrieval.run import events_of
from loadgen.retrieval.score import hit_at, recall_at, score
from loadgen.retrieval.variants import Variant, all_variants, choose

AT = datetime(2026, 1, 1, tzinfo=UTC)


def turn(ident: str, tenant: str = "t1", text: str = "hello") -> Turn:
    return Turn(ident, tenant, 1, "user", AT, text)


def question(ident: str, evidence: tuple[str, ...], tenant: str = "t1") -> Question:
    return Question(ident, tenant, "fact", "what?", evidence)


def test_the_shipped_set_is_valid_and_large_enough() -> None:
    data = load()  # raises on any problem
    c = counts(data)
    assert c["turns"] >= 1000 and c["questions"] >= 300, c
    assert c["tenants"] >= 10 and set(c["kinds"]) == set(KINDS), c
    # 'current' questions point at the latest turn of what changed: never the first session
    session = {t.id: t.session for t in data.turns}
    assert all(
        max(session[e] for e in q.evidence) > 1 for q in data.questions if q.kind == "current"
    )


def test_problems_name_bad_ids_and_evidence() -> None:
    data = RetrievalSet(
        (turn("a"), turn("a"), turn("b", tenant="t2"), turn("c", text=" ")),
        (question("q1", ("b",)), question("q2", ("zz",)), question("q3", ())),
    )
    found = problems(data)
    assert "id a used 2 times" in found
    assert "turn c is empty" in found
    assert "question q1: evidence b is of tenant t2" in found
    assert "question q2: evidence zz is no turn" in found
    assert "question q3: no text or no evidence" in found
    assert problems(RetrievalSet((turn("a"),), (question("q", ("a",)),))) == []


def test_recall_and_hit() -> None:
    ranked = ["x", "e1", "y", "e2"]
    assert hit_at(ranked, ["e1", "e2"], 1) == 0.0
    assert hit_at(ranked, ["e1", "e2"], 2) == 1.0
    assert recall_at(ranked, ["e1", "e2"], 2) == 0.5
    assert recall_at(ranked, ["e1", "e2", "e2"], 4) == 1.0  # evidence counted once
    with pytest.raises(ValueError, match="without evidence"):
        recall_at(ranked, [], 1)


def test_score_means_over_questions_and_by_kind() -> None:
    qs = [question("q1", ("a",)), Question("q2", "t1", "date", "when?", ("b", "c"))]
    rankings = {"q1": ["a"] + [f"n{i}" for i in range(12)], "q2": ["n", "b"]}
    s = score(qs, rankings)
    assert s.metrics["hit@1"] == 0.5
    assert s.metrics["hit@5"] == 1.0
    assert s.metrics["recall@10"] == (1.0 + 0.5) / 2
    assert s.by_kind == {"date": 1.0, "fact": 1.0}
    missing = score(qs, {"q1": ["z"]})  # q2 found nothing
    assert missing.metrics["hit@10"] == 0.0 and missing.misses == ("q1", "q2")


def test_sample_keeps_evidence_and_fills_with_distractors() -> None:
    data = load()
    small = sample(data, questions=20, turns=60)
    assert len(small.questions) == 20 and len(small.turns) == 60
    assert problems(small) == []
    kept = {t.id for t in small.turns}
    assert all(set(q.evidence) <= kept for q in small.questions)


def test_variants_cover_each_method_and_choose_by_name() -> None:
    names = [v.name for v in all_variants()]
    assert names[:2] == ["bm25 (alpha 0)", "vector (alpha 1)"] and names[-1] == "default"
    assert {v.fusion for v in all_variants()} >= {"relative_score", "ranked", None}
    assert Variant("default", None, None).options() == {}
    assert Variant("x", 0.3, "ranked").options() == {"alpha": 0.3, "fusion": "ranked"}
    assert [v.name for v in choose(all_variants(), "bm25,default")] == [
        "bm25 (alpha 0)",
        "default",
    ]
    with pytest.raises(ValueError, match="no variant matches"):
        choose(all_variants(), "nothing-like-this")


def test_events_carry_the_turn_ids_and_times() -> None:
    (event,) = events_of(RetrievalSet((turn("u1-s1-t01"),), ()))
    assert (event.memory_id, event.tenant, event.occurred_at) == ("u1-s1-t01", "t1", AT)


def test_markdown_has_a_row_per_variant() -> None:
    qs = [question("q1", ("a",))]
    data = RetrievalSet((turn("a"),), tuple(qs))
    results = [
        render.Measured(v, score(qs, {"q1": ["a"]}), [12.0, 30.0]) for v in all_variants()[:2]
    ]
    text = render.markdown(render.document(counts(data), results, {}))
    assert "| bm25 (alpha 0) | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 12 / 30 |" in text
    assert "| vector (alpha 1) | 1.00 |" in text
