"""The versioned prompts: loading, messages, response format, cache keys, answer parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processors.core.llm_prompts import (
    PROMPT_DIR,
    AnswerError,
    DecisionResult,
    FactsResult,
    ImportanceResult,
    Prompt,
    PromptKind,
    answer_schema,
    cache_key,
    load_prompt,
    parse_answer,
)

# -- load_prompt ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PromptKind))
def test_shipped_v1_prompts_load(kind: PromptKind) -> None:
    prompt = load_prompt(kind, "v1")
    assert prompt.kind is kind
    assert prompt.version == f"{kind.value}.v1"
    expected = (PROMPT_DIR / f"{kind.value}.v1.md").read_text(encoding="utf-8").strip()
    assert prompt.system == expected
    assert prompt.system != ""
    assert f'`task` is "{kind.value}"' in prompt.system


def test_prompt_dir_is_next_to_the_module() -> None:
    assert Path(__file__).resolve().parents[3] / "processors" / "core" / "prompts" == PROMPT_DIR


def test_load_prompt_strips_surrounding_whitespace(tmp_path: Path) -> None:
    (tmp_path / "facts.v7.md").write_text("\n\n  Extract facts.\nPlease.  \n\n", encoding="utf-8")
    prompt = load_prompt(PromptKind.FACTS, "v7", tmp_path)
    assert prompt == Prompt(PromptKind.FACTS, "facts.v7", "Extract facts.\nPlease.")


def test_missing_version_fails_clearly() -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_prompt(PromptKind.IMPORTANCE, "v99")
    assert str(info.value) == f"no prompt file {PROMPT_DIR / 'importance.v99.md'}"


def test_missing_kind_file_in_directory_fails(tmp_path: Path) -> None:
    (tmp_path / "facts.v1.md").write_text("facts", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"decision\.v1\.md"):
        load_prompt(PromptKind.DECISION, "v1", tmp_path)


def test_a_directory_named_like_a_prompt_is_not_a_prompt(tmp_path: Path) -> None:
    (tmp_path / "facts.v1.md").mkdir()
    with pytest.raises(FileNotFoundError, match="no prompt file"):
        load_prompt(PromptKind.FACTS, "v1", tmp_path)


# -- messages and response format ---------------------------------------------------------


def test_messages_are_system_then_json_user() -> None:
    prompt = Prompt(PromptKind.FACTS, "facts.v1", "SYSTEM TEXT")
    items = [{"id": "0", "memory": "Alice lives in London"}, {"id": "1", "memory": "Zoë ☕"}]
    messages = prompt.messages(items)
    assert len(messages) == 2
    assert messages[0] == {"role": "system", "content": "SYSTEM TEXT"}
    assert messages[1]["role"] == "user"
    assert json.loads(messages[1]["content"]) == {"task": "facts", "items": items}
    # non-ASCII is sent as is, not escaped
    assert "Zoë ☕" in messages[1]["content"]


def test_messages_task_follows_kind() -> None:
    prompt = Prompt(PromptKind.DECISION, "decision.v1", "s")
    item = {"id": "3", "memory": "m", "existing": [{"id": "0", "memory": "o"}]}
    user = json.loads(prompt.messages([item])[1]["content"])
    assert user == {"task": "decision", "items": [item]}


def test_messages_with_no_items() -> None:
    prompt = Prompt(PromptKind.IMPORTANCE, "importance.v1", "s")
    assert json.loads(prompt.messages([])[1]["content"]) == {"task": "importance", "items": []}


def test_response_format_is_strict_json_schema() -> None:
    prompt = Prompt(PromptKind.IMPORTANCE, "importance.v1", "s")
    assert prompt.response_format() == {
        "type": "json_schema",
        "json_schema": {
            "name": "agentmem_importance",
            "schema": {
                "type": "object",
                "properties": {
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "importance": {"type": "number", "minimum": 0, "maximum": 1},
                            },
                            "required": ["id", "importance"],
                            "additionalProperties": False,
                        },
                    }
                },
                "required": ["results"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (PromptKind.FACTS, ["id", "facts"]),
        (PromptKind.IMPORTANCE, ["id", "importance"]),
        (PromptKind.DECISION, ["id", "action", "target", "text"]),
    ],
)
def test_answer_schema_requires_every_item_property(kind: PromptKind, fields: list[str]) -> None:
    item = answer_schema(kind)["properties"]["results"]["items"]
    assert item["required"] == fields
    assert list(item["properties"]) == fields
    assert item["additionalProperties"] is False
    name = Prompt(kind, f"{kind.value}.v1", "s").response_format()["json_schema"]["name"]
    assert name == f"agentmem_{kind.value}"


def test_decision_schema_enumerates_actions_and_allows_null_target() -> None:
    props = answer_schema(PromptKind.DECISION)["properties"]["results"]["items"]["properties"]
    assert props["action"] == {"type": "string", "enum": ["ADD", "UPDATE", "DELETE", "NOOP"]}
    assert props["target"] == {"type": ["string", "null"]}
    assert props["text"] == {"type": ["string", "null"]}


# -- cache_key --------------------------------------------------------------------------

ITEM: dict[str, Any] = {"id": "0", "memory": "Alice lives in London"}


def test_cache_key_is_a_sha256_hex_digest() -> None:
    key = cache_key(PromptKind.FACTS, "m", "facts.v1", ITEM)
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert key == cache_key(PromptKind.FACTS, "m", "facts.v1", dict(ITEM))


def test_cache_key_ignores_the_item_id() -> None:
    a = cache_key(PromptKind.FACTS, "m", "facts.v1", {"id": "0", "memory": "x"})
    b = cache_key(PromptKind.FACTS, "m", "facts.v1", {"id": "17", "memory": "x"})
    c = cache_key(PromptKind.FACTS, "m", "facts.v1", {"memory": "x"})
    assert a == b == c


def test_cache_key_ignores_key_order() -> None:
    a = cache_key(PromptKind.DECISION, "m", "decision.v1", {"memory": "x", "existing": []})
    b = cache_key(PromptKind.DECISION, "m", "decision.v1", {"existing": [], "memory": "x"})
    assert a == b


@pytest.mark.parametrize(
    ("kind", "model", "version", "item"),
    [
        (PromptKind.IMPORTANCE, "m", "facts.v1", ITEM),
        (PromptKind.FACTS, "other-model", "facts.v1", ITEM),
        (PromptKind.FACTS, "m", "facts.v2", ITEM),
        (PromptKind.FACTS, "m", "facts.v1", {"id": "0", "memory": "Alice lives in Paris"}),
        (PromptKind.FACTS, "m", "facts.v1", {"id": "0", "memory": "Alice lives in London "}),
        (PromptKind.FACTS, "m", "facts.v1", {**ITEM, "existing": []}),
    ],
)
def test_cache_key_changes_with_everything_else(
    kind: PromptKind, model: str, version: str, item: dict[str, Any]
) -> None:
    base = cache_key(PromptKind.FACTS, "m", "facts.v1", ITEM)
    assert cache_key(kind, model, version, item) != base


def test_decision_cache_key_depends_on_existing_memories() -> None:
    a = {"memory": "x", "existing": [{"id": "0", "memory": "y"}]}
    b = {"memory": "x", "existing": [{"id": "0", "memory": "z"}]}
    assert cache_key(PromptKind.DECISION, "m", "v", a) != cache_key(
        PromptKind.DECISION, "m", "v", b
    )


# -- parse_answer -----------------------------------------------------------------------


def answer(*results: object) -> str:
    return json.dumps({"results": list(results)})


def test_parse_facts_keeps_valid_items_by_id() -> None:
    content = answer({"id": "0", "facts": ["a", "b"]}, {"id": "1", "facts": []})
    assert parse_answer(PromptKind.FACTS, content, ["0", "1"]) == {
        "0": FactsResult(id="0", facts=["a", "b"]),
        "1": FactsResult(id="1", facts=[]),
    }


def test_parse_importance() -> None:
    content = answer({"id": "a", "importance": 0.25}, {"id": "b", "importance": 1})
    parsed = parse_answer(PromptKind.IMPORTANCE, content, ["a", "b"])
    assert parsed == {
        "a": ImportanceResult(id="a", importance=0.25),
        "b": ImportanceResult(id="b", importance=1.0),
    }


def test_parse_decision_with_and_without_optional_fields() -> None:
    content = answer(
        {"id": "0", "action": "UPDATE", "target": "1", "text": "Alice moved to Paris"},
        {"id": "1", "action": "ADD"},
        {"id": "2", "action": "NOOP", "target": "0", "text": None},
    )
    assert parse_answer(PromptKind.DECISION, content, ["0", "1", "2"]) == {
        "0": DecisionResult(id="0", action="UPDATE", target="1", text="Alice moved to Paris"),
        "1": DecisionResult(id="1", action="ADD", target=None, text=None),
        "2": DecisionResult(id="2", action="NOOP", target="0", text=None),
    }


@pytest.mark.parametrize("importance", [-0.01, 1.01, 2, -1])
def test_importance_outside_unit_interval_is_dropped(importance: float) -> None:
    content = answer({"id": "x", "importance": importance}, {"id": "y", "importance": 0.0})
    parsed = parse_answer(PromptKind.IMPORTANCE, content, ["x", "y"])
    assert parsed == {"y": ImportanceResult(id="y", importance=0.0)}


@pytest.mark.parametrize("importance", ["NaN", "Infinity", "-Infinity"])
def test_importance_not_finite_is_dropped(importance: str) -> None:
    content = '{"results": [{"id": "x", "importance": ' + importance + "}]}"
    assert parse_answer(PromptKind.IMPORTANCE, content, ["x"]) == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "1", "facts": "not a list"},
        {"id": "1", "facts": ["ok", 3]},
        {"id": "1"},
        {"id": "1", "facts": ["a"], "extra": True},
        {"id": 1, "facts": ["a"]},
        {"facts": ["a"]},
        {"id": "1", "facts": ["f"] * 33},
        "just a string",
        None,
        ["1", ["a"]],
    ],
)
def test_malformed_items_fail_alone(bad: object) -> None:
    content = answer({"id": "0", "facts": ["good"]}, bad)
    assert parse_answer(PromptKind.FACTS, content, ["0", "1"]) == {
        "0": FactsResult(id="0", facts=["good"])
    }


def test_facts_list_at_the_limit_is_kept() -> None:
    content = answer({"id": "0", "facts": ["f"] * 32})
    assert parse_answer(PromptKind.FACTS, content, ["0"]) == {
        "0": FactsResult(id="0", facts=["f"] * 32)
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "1", "action": "MERGE", "target": None, "text": None},
        {"id": "1", "action": "update", "target": "0", "text": "x"},
        {"id": "1", "action": "UPDATE", "target": 0, "text": "x"},
        {"id": "1", "target": None, "text": None},
    ],
)
def test_malformed_decisions_fail_alone(bad: dict[str, Any]) -> None:
    content = answer(bad, {"id": "0", "action": "ADD", "target": None, "text": None})
    assert parse_answer(PromptKind.DECISION, content, ["0", "1"]) == {
        "0": DecisionResult(id="0", action="ADD")
    }


def test_unknown_ids_are_dropped() -> None:
    content = answer({"id": "0", "facts": ["a"]}, {"id": "99", "facts": ["b"]})
    assert parse_answer(PromptKind.FACTS, content, ["0", "1"]) == {
        "0": FactsResult(id="0", facts=["a"])
    }


def test_duplicate_ids_keep_the_first_valid_result() -> None:
    content = answer(
        {"id": "0", "importance": 0.1},
        {"id": "0", "importance": 0.9},
        {"id": "1", "importance": 7},  # malformed: does not take the id
        {"id": "1", "importance": 0.4},
    )
    assert parse_answer(PromptKind.IMPORTANCE, content, ["0", "1"]) == {
        "0": ImportanceResult(id="0", importance=0.1),
        "1": ImportanceResult(id="1", importance=0.4),
    }


def test_missing_items_are_simply_absent() -> None:
    content = answer({"id": "2", "facts": ["c"]})
    assert parse_answer(PromptKind.FACTS, content, ["0", "1", "2"]) == {
        "2": FactsResult(id="2", facts=["c"])
    }


def test_empty_results_list_is_valid_and_empty() -> None:
    assert parse_answer(PromptKind.FACTS, '{"results": []}', ["0"]) == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "empty answer"),
        ("", "empty answer"),
        ("not json", "answer is not JSON"),
        ('{"results": [', "answer is not JSON"),
        ("{}", "answer has no results list"),
        ('{"result": []}', "answer has no results list"),
        ('{"results": {"id": "0"}}', "answer has no results list"),
        ('{"results": null}', "answer has no results list"),
        ("[]", "answer has no results list"),
        ('"results"', "answer has no results list"),
        ("42", "answer has no results list"),
    ],
)
def test_unusable_answers_raise(content: str | None, message: str) -> None:
    with pytest.raises(AnswerError, match=message):
        parse_answer(PromptKind.FACTS, content, ["0"])


def test_answer_error_is_a_value_error() -> None:
    assert issubclass(AnswerError, ValueError)
