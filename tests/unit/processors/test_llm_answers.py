"""read_answer: strict answers, the repairs a small model needs, and what stays invalid."""

from __future__ import annotations

import json
from typing import Any

import pytest

from processors.core.llm_answers import Verdict, read_answer
from processors.core.llm_prompts import (
    DecisionResult,
    FactsResult,
    ImportanceResult,
    PromptKind,
)


def answer(*results: object) -> str:
    return json.dumps({"results": list(results)})


# -- strict answers ------------------------------------------------------------------------


def test_facts_keeps_valid_items_by_id() -> None:
    content = answer({"id": "0", "facts": ["a", "b"]}, {"id": "1", "facts": []})
    parsed = read_answer(PromptKind.FACTS, content, ["0", "1"])
    assert parsed.results == {
        "0": FactsResult(id="0", facts=["a", "b"]),
        "1": FactsResult(id="1", facts=[]),
    }
    assert (parsed.verdict, parsed.repairs, parsed.problem) == (Verdict.VALID, (), "")


def test_importance_takes_an_integer_bound() -> None:
    content = answer({"id": "a", "importance": 0.25}, {"id": "b", "importance": 1})
    parsed = read_answer(PromptKind.IMPORTANCE, content, ["a", "b"])
    assert parsed.results == {
        "a": ImportanceResult(id="a", importance=0.25),
        "b": ImportanceResult(id="b", importance=1.0),
    }


def test_decision_with_and_without_optional_fields() -> None:
    content = answer(
        {"id": "0", "action": "UPDATE", "target": "1", "text": "Alice moved to Paris"},
        {"id": "1", "action": "ADD"},
        {"id": "2", "action": "NOOP", "target": "0", "text": None},
    )
    assert read_answer(PromptKind.DECISION, content, ["0", "1", "2"]).results == {
        "0": DecisionResult(id="0", action="UPDATE", target="1", text="Alice moved to Paris"),
        "1": DecisionResult(id="1", action="ADD", target=None, text=None),
        "2": DecisionResult(id="2", action="NOOP", target="0", text=None),
    }


def test_unknown_ids_are_dropped_and_missing_ones_named() -> None:
    content = answer({"id": "0", "facts": ["a"]}, {"id": "99", "facts": ["b"]})
    parsed = read_answer(PromptKind.FACTS, content, ["0", "1"])
    assert parsed.results == {"0": FactsResult(id="0", facts=["a"])}
    assert parsed.verdict == Verdict.VALID
    assert parsed.problem == "1 of 2 item(s) missing or invalid"


def test_duplicate_ids_keep_the_first_valid_result() -> None:
    content = answer(
        {"id": "0", "importance": 0.1},
        {"id": "0", "importance": 0.9},
        {"id": "1", "importance": "high"},  # unusable: does not take the id
        {"id": "1", "importance": 0.4},
    )
    assert read_answer(PromptKind.IMPORTANCE, content, ["0", "1"]).results == {
        "0": ImportanceResult(id="0", importance=0.1),
        "1": ImportanceResult(id="1", importance=0.4),
    }


@pytest.mark.parametrize("importance", [-0.01, 101, -1, "NaN"])
def test_importance_out_of_any_scale_is_dropped(importance: object) -> None:
    raw = json.dumps(importance) if not isinstance(importance, str) else importance
    content = '{"results": [{"id": "x", "importance": ' + raw + '}, {"id": "y", "importance": 0}]}'
    parsed = read_answer(PromptKind.IMPORTANCE, content, ["x", "y"])
    assert parsed.results == {"y": ImportanceResult(id="y", importance=0.0)}


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "1"},
        {"id": "1", "facts": 3},
        {"id": "1", "facts": ["f"] * 33},
        "just a string",
        None,
        ["1", ["a"]],
        {"facts": ["a"]},  # no id, and more than one item was asked
    ],
)
def test_unusable_items_fail_alone(bad: object) -> None:
    content = answer({"id": "0", "facts": ["good"]}, bad)
    assert read_answer(PromptKind.FACTS, content, ["0", "1"]).results == {
        "0": FactsResult(id="0", facts=["good"])
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "1", "action": "MERGE", "target": None, "text": None},
        {"id": "1", "target": None, "text": None},
        {"id": "1", "action": 3},
    ],
)
def test_unusable_decisions_fail_alone(bad: dict[str, Any]) -> None:
    content = answer(bad, {"id": "0", "action": "ADD", "target": None, "text": None})
    assert read_answer(PromptKind.DECISION, content, ["0", "1"]).results == {
        "0": DecisionResult(id="0", action="ADD")
    }


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "empty answer"),
        ("", "empty answer"),
        ("   ", "empty answer"),
        ("not json", "answer is not JSON"),
        ('{"results": [', "answer is not JSON"),
        ("{}", "answer has no results list"),
        ('"results"', "answer has no results list"),
        ("42", "answer has no results list"),
        ('{"results": null, "x": 1}', "1 of 1 item(s) missing or invalid"),
        ('{"results": []}', "1 of 1 item(s) missing or invalid"),
        ("[]", "1 of 1 item(s) missing or invalid"),
    ],
)
def test_unusable_answers_are_invalid(content: str | None, problem: str) -> None:
    parsed = read_answer(PromptKind.FACTS, content, ["0", "1"] if content == "{}" else ["0"])
    assert (parsed.results, parsed.verdict, parsed.problem) == ({}, Verdict.INVALID, problem)


# -- repairs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "repair"),
    [
        ('```json\n{"results": [{"id": "0", "facts": ["a"]}]}\n```', "fenced"),
        ('```\n{"results": [{"id": "0", "facts": ["a"]}]}', "fenced"),
        ('Sure! {"results": [{"id": "0", "facts": ["a"]}]} Hope it helps.', "extracted"),
        ('{"results": [{"id": "0", "facts": ["a"]}, {"id": "1", "fac', "truncated"),
        ('[{"id": "0", "facts": ["a"]}]', "bare_list"),
        ('{"items": [{"id": "0", "facts": ["a"]}]}', "renamed_list"),
        ('{"results": [{"id": 0, "facts": ["a"]}]}', "id_type"),
        ('{"results": [{"id": "0", "facts": "a"}]}', "facts_type"),
        ('{"results": [{"id": "0", "facts": [{"fact": "a"}]}]}', "facts_type"),
        ('{"results": [{"id": "0", "facts": ["a"], "why": "x"}]}', "extra_keys"),
    ],
)
def test_recoverable_facts_answers_are_repaired(content: str, repair: str) -> None:
    parsed = read_answer(PromptKind.FACTS, content, ["0", "1"])
    assert parsed.results == {"0": FactsResult(id="0", facts=["a"])}
    assert parsed.verdict == Verdict.REPAIRED
    assert repair in parsed.repairs


def test_a_single_item_answer_without_list_or_id_is_taken_for_the_one_asked() -> None:
    parsed = read_answer(PromptKind.IMPORTANCE, '{"importance": 0.4}', ["7"])
    assert parsed.results == {"7": ImportanceResult(id="7", importance=0.4)}
    assert set(parsed.repairs) == {"single_item", "id_missing"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"0.7"', 0.7), ("7", 0.7), ("70", 0.7), ('"80%"', 0.8), ("true", None)],
)
def test_importance_types_and_scales(value: str, expected: float | None) -> None:
    content = '{"results": [{"id": "0", "importance": ' + value + "}]}"
    parsed = read_answer(PromptKind.IMPORTANCE, content, ["0"])
    if expected is None:
        assert parsed.verdict == Verdict.INVALID
    else:
        assert getattr(parsed.results["0"], "importance", None) == pytest.approx(expected)
        assert parsed.verdict == Verdict.REPAIRED


def test_decision_slips_are_put_right() -> None:
    content = answer({"id": "0", "action": " update", "target": 1, "text": "x"})
    parsed = read_answer(PromptKind.DECISION, content, ["0"])
    assert parsed.results == {"0": DecisionResult(id="0", action="UPDATE", target="1", text="x")}
    assert set(parsed.repairs) == {"action_case", "target_type"}
