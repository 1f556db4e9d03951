"""The fake LLM's deterministic answers, and their contract with the worker's parser."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadgen.fake_llm.answers import (
    Slot,
    answer,
    decide,
    facts_of,
    importance_of,
    jaccard,
    normalized,
    slot_of,
    words,
)
from processors.core.enrichment import Candidate, decision_from_answer, decision_item
from processors.core.llm_answers import Verdict, read_answer
from processors.core.llm_prompts import (
    DecisionResult,
    FactsResult,
    ImportanceResult,
    Prompt,
    PromptKind,
)

# -- words ----------------------------------------------------------------------------------


def test_words_and_normalized() -> None:
    assert words("Alice's NEW flat, in 2024!") == ["alice's", "new", "flat", "in", "2024"]
    assert normalized("  Alice   lives in LONDON. ") == "alice lives in london"


def test_jaccard() -> None:
    assert jaccard("a b c", "c b a") == 1.0
    assert jaccard("a b", "c d") == 0.0
    assert jaccard("a b c", "a b d") == 0.5
    assert jaccard("", "") == 1.0
    assert jaccard("", "a") == 0.0


# -- facts_of -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        ("Hello", ["Hello"]),
        ("  I like tea.  ", ["I like tea"]),
        (
            "Alice lives in London and works at Initech, but she hates commuting. "
            "She has a cat; it is black!",
            [
                "Alice lives in London",
                "works at Initech",
                "she hates commuting",
                "She has a cat",
                "it is black",
            ],
        ),
        ("Tea? Yes! Coffee.", ["Tea", "Yes", "Coffee"]),
        ("...", ["..."]),
    ],
)
def test_facts_are_clauses(text: str, facts: list[str]) -> None:
    assert facts_of(text) == facts


def test_facts_are_capped_at_eight() -> None:
    text = "one. two. three. four. five. six. seven. eight. nine. ten."
    assert facts_of(text) == ["one", "two", "three", "four", "five", "six", "seven", "eight"]


# -- importance_of ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "importance"),
    [
        ("hello", 0.31),  # base 0.3 + 1 word
        ("a b c", 0.33),
        ("Alice lives in London", 0.64),  # weighty "lives" + 4 words
        ("Meeting at 10", 0.43),  # 2 digits (0.1) + 3 words
        ("My daughter's birthday is 2024-05-17", 0.87),  # weighty, digits capped at 0.2
        ("", 0.3),
    ],
)
def test_importance_values(text: str, importance: float) -> None:
    assert importance_of(text) == importance


def test_importance_is_capped_at_one() -> None:
    text = "My wife's birthday is 1990-02-03 " + " ".join(["word"] * 150)
    assert importance_of(text) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "I am allergic to peanuts",
        "0123456789" * 50,
        " ".join(["diagnosed medication husband deadline 2025"] * 100),
        "Zoë ☕ 12",
    ],
)
def test_importance_is_in_unit_interval_and_deterministic(text: str) -> None:
    value = importance_of(text)
    assert 0.0 <= value <= 1.0
    assert importance_of(text) == value
    assert round(value, 2) == value


# -- slot_of --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("Alice lives in London", Slot("residence", "london", False)),
        ("Alice moved to Paris", Slot("residence", "paris", False)),
        ("Dan is living in Berlin now", Slot("residence", "berlin", False)),
        ("Eve relocated to New York", Slot("residence", "new york", False)),
        ("Bob joined Acme Corp", Slot("employer", "acme corp", False)),
        ("Frank works for the BBC", Slot("employer", "the bbc", False)),
        ("Carol no longer works at Initech", Slot("employer", "initech", True)),
        ("Carol doesn't work at Initech", Slot("employer", "initech", True)),
        ("My favourite colour is blue", Slot("favourite colour", "blue", False)),
        ("Favorite food is sushi", Slot("favourite food", "sushi", False)),
    ],
)
def test_slots(text: str, slot: Slot) -> None:
    assert slot_of(text) == slot


@pytest.mark.parametrize("text", ["Hello there", "", "London is big", "Alice likes tea"])
def test_no_slot(text: str) -> None:
    assert slot_of(text) is None


# -- decide ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "existing", "expected"),
    [
        (
            "Alice moved to Paris",
            "Alice lives in London",
            {"action": "UPDATE", "target": "0", "text": "Alice moved to Paris"},
        ),
        (
            "Carol no longer works at Initech",
            "Carol works at Initech",
            {"action": "DELETE", "target": "0", "text": None},
        ),
        (
            "Dan is living in Berlin now",
            "Dan lives in Berlin",
            {"action": "NOOP", "target": "0", "text": None},
        ),
        (
            "Alice likes tea",
            "Alice likes tea",
            {"action": "NOOP", "target": "0", "text": None},
        ),
        (
            "alice LIKES tea!",
            "Alice likes tea.",
            {"action": "NOOP", "target": "0", "text": None},
        ),
        (
            "tea alice likes",
            "Alice likes tea",
            {"action": "NOOP", "target": "0", "text": None},
        ),
        (
            "Bob plays the piano",
            "Alice lives in London",
            {"action": "ADD", "target": None, "text": None},
        ),
        (
            "Carol no longer works at Globex",
            "Carol works at Initech",
            {"action": "ADD", "target": None, "text": None},
        ),
        (
            "Alice moved to Paris",
            "Alice no longer lives in London",
            {"action": "ADD", "target": None, "text": None},
        ),
        (
            "Alice works at Initech",
            "Alice lives in London",
            {"action": "ADD", "target": None, "text": None},
        ),
        (
            "My favourite colour is green",
            "My favourite colour is blue",
            {"action": "UPDATE", "target": "0", "text": "My favourite colour is green"},
        ),
        (
            "My favourite food is green",
            "My favourite colour is blue",
            {"action": "ADD", "target": None, "text": None},
        ),
    ],
)
def test_decide_scripted_cases(new: str, existing: str, expected: dict[str, Any]) -> None:
    assert decide(new, [("0", existing)]) == expected


def test_decide_with_nothing_existing_is_add() -> None:
    assert decide("Alice moved to Paris", []) == {"action": "ADD", "target": None, "text": None}


def test_decide_targets_the_matching_memory() -> None:
    existing = [("0", "Alice likes tea"), ("1", "Bob plays chess"), ("2", "Alice lives in London")]
    assert decide("Alice moved to Paris", existing) == {
        "action": "UPDATE",
        "target": "2",
        "text": "Alice moved to Paris",
    }


def test_decide_prefers_a_duplicate_over_a_slot_change() -> None:
    existing = [("0", "Alice lives in London"), ("1", "Alice moved to Paris")]
    assert decide("Alice moved to Paris", existing) == {
        "action": "NOOP",
        "target": "1",
        "text": None,
    }


# -- answer: the contract with the worker ------------------------------------------------------


def ask(kind: PromptKind, items: list[dict[str, Any]]) -> str:
    """What the fake server answers to the worker's request for ``items``."""
    messages = Prompt(kind, f"{kind.value}.v1", "system").messages(items)
    return json.dumps(answer(kind.value, json.loads(messages[1]["content"])))


def test_facts_answer_parses() -> None:
    items = [
        {"id": "0", "memory": "Alice lives in London and works at Initech"},
        {"id": "7", "memory": "Hi"},
    ]
    answer_read = read_answer(PromptKind.FACTS, ask(PromptKind.FACTS, items), ["0", "7"])
    assert answer_read.verdict == Verdict.VALID  # the fake's answers need no repair
    parsed = answer_read.results
    assert parsed == {
        "0": FactsResult(id="0", facts=["Alice lives in London", "works at Initech"]),
        "7": FactsResult(id="7", facts=["Hi"]),
    }


def test_importance_answer_parses() -> None:
    items = [{"id": "a", "memory": "Alice lives in London"}, {"id": "b", "memory": "hello"}]
    parsed = read_answer(
        PromptKind.IMPORTANCE, ask(PromptKind.IMPORTANCE, items), ["a", "b"]
    ).results
    assert parsed == {
        "a": ImportanceResult(id="a", importance=0.64),
        "b": ImportanceResult(id="b", importance=0.31),
    }


def test_decision_answer_parses_and_maps_to_memory_ids() -> None:
    candidates = {
        "0": [Candidate("m-london", "Alice lives in London", 0.1), Candidate("m-tea", "tea", 0.4)],
        "1": [Candidate("m-initech", "Carol works at Initech", 0.2)],
        "2": [Candidate("m-berlin", "Dan lives in Berlin", 0.2)],
        "3": [Candidate("m-x", "Something else entirely", 0.6)],
    }
    texts = {
        "0": "Alice moved to Paris",
        "1": "Carol no longer works at Initech",
        "2": "Dan is living in Berlin now",
        "3": "Bob plays the piano",
    }
    items = [{"id": i, **decision_item(texts[i], candidates[i])} for i in texts]
    parsed = read_answer(PromptKind.DECISION, ask(PromptKind.DECISION, items), list(texts)).results
    assert parsed == {
        "0": DecisionResult(id="0", action="UPDATE", target="0", text="Alice moved to Paris"),
        "1": DecisionResult(id="1", action="DELETE", target="0", text=None),
        "2": DecisionResult(id="2", action="NOOP", target="0", text=None),
        "3": DecisionResult(id="3", action="ADD", target=None, text=None),
    }
    decisions = {
        i: decision_from_answer(r.model_dump(exclude={"id"}), candidates[i])
        for i, r in parsed.items()
    }
    assert [(d.action, d.target, d.text) for d in decisions.values()] == [
        ("UPDATE", "m-london", "Alice moved to Paris"),
        ("DELETE", "m-initech", None),
        ("NOOP", "m-berlin", None),
        ("ADD", None, None),
    ]


@pytest.mark.parametrize("kind", list(PromptKind))
def test_answer_with_no_items(kind: PromptKind) -> None:
    assert answer(kind.value, {"task": kind.value, "items": []}) == {"results": []}
    assert read_answer(kind, ask(kind, []), []).results == {}


def test_decision_item_without_existing_is_add() -> None:
    assert answer("decision", {"items": [{"id": "0", "memory": "m"}]}) == {
        "results": [{"id": "0", "action": "ADD", "target": None, "text": None}]
    }


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown prompt kind 'summary'"):
        answer("summary", {"items": []})
