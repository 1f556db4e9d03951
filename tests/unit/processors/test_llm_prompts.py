"""The versioned prompts: loading, messages, response format and output modes, cache keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processors.core.llm_prompts import (
    PROMPT_DIR,
    OutputMode,
    Prompt,
    PromptKind,
    answer_schema,
    cache_key,
    load_prompt,
    request_for,
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


def test_a_prompt_set_takes_each_kinds_newest_file_at_or_below_it(tmp_path: Path) -> None:
    for name in ("facts.v1.md", "facts.v3.md", "facts.v10.md", "decision.v2.md"):
        (tmp_path / name).write_text(name, encoding="utf-8")
    assert load_prompt(PromptKind.FACTS, "v1", tmp_path).version == "facts.v1"
    assert load_prompt(PromptKind.FACTS, "v2", tmp_path).version == "facts.v1"
    assert load_prompt(PromptKind.FACTS, "v9", tmp_path).system == "facts.v3.md"
    assert load_prompt(PromptKind.FACTS, "v10", tmp_path).version == "facts.v10"
    assert load_prompt(PromptKind.DECISION, "v3", tmp_path).version == "decision.v2"


def test_shipped_set_v2_is_decision_v2_with_v1_facts_and_importance() -> None:
    versions = {kind: load_prompt(kind, "v2").version for kind in PromptKind}
    assert versions == {
        PromptKind.FACTS: "facts.v1",
        PromptKind.IMPORTANCE: "importance.v1",
        PromptKind.DECISION: "decision.v2",
    }
    assert load_prompt(PromptKind.DECISION, "v1").version == "decision.v1"


def test_missing_version_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "importance.v3.md").write_text("importance", encoding="utf-8")
    with pytest.raises(FileNotFoundError) as info:
        load_prompt(PromptKind.IMPORTANCE, "v2", tmp_path)
    assert str(info.value) == (
        f"no prompt file {tmp_path / 'importance.v2.md'} nor an older version of it"
    )


def test_a_version_that_is_not_v_number_is_refused() -> None:
    with pytest.raises(ValueError, match="not v<number>"):
        load_prompt(PromptKind.FACTS, "latest")


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


# -- output modes -------------------------------------------------------------------------


def test_output_modes_step_down_in_order() -> None:
    assert OutputMode.JSON_SCHEMA.fallback() == OutputMode.JSON_OBJECT
    assert OutputMode.JSON_OBJECT.fallback() == OutputMode.NONE
    assert OutputMode.NONE.fallback() is None


def test_request_for_json_schema_is_the_prompt_as_built() -> None:
    prompt = Prompt(PromptKind.FACTS, "facts.v1", "sys")
    messages, fmt = prompt.messages([]), prompt.response_format()
    assert request_for(OutputMode.JSON_SCHEMA, messages, fmt) == (messages, fmt)


def test_request_for_json_object_sends_the_schema_beside_it() -> None:
    prompt = Prompt(PromptKind.IMPORTANCE, "importance.v1", "sys")
    plain = prompt.messages([{"id": "0"}])
    messages, fmt = request_for(OutputMode.JSON_OBJECT, plain, prompt.response_format())
    assert messages == plain  # the server's grammar holds the answer to the schema
    assert fmt == {"type": "json_object", "schema": answer_schema(PromptKind.IMPORTANCE)}


def test_request_for_none_spells_the_schema_out() -> None:
    prompt = Prompt(PromptKind.IMPORTANCE, "importance.v1", "sys")
    messages, fmt = request_for(
        OutputMode.NONE, prompt.messages([{"id": "0"}]), prompt.response_format()
    )
    schema = answer_schema(PromptKind.IMPORTANCE)
    assert messages[0]["content"].endswith(json.dumps(schema, separators=(",", ":")))
    assert messages[0]["content"].startswith("sys\n\n")
    assert messages[1] == prompt.messages([{"id": "0"}])[1]
    assert fmt is None
