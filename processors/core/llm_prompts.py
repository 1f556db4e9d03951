"""The enrichment prompts: versioned files, answer schemas, output modes, packing. Pure.

A prompt's system text lives in ``processors/core/prompts/<kind>.<version>.md``; the
user message is JSON (``{"task": kind, "items": [...]}``) so that many memories
fit one request and the answer (``{"results": [...]}``, one per item id) can be
checked against a JSON schema item by item: a malformed item fails alone
(:mod:`processors.core.llm_answers` reads answers).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"


class PromptKind(StrEnum):
    FACTS = "facts"
    IMPORTANCE = "importance"
    DECISION = "decision"


class _Strict(BaseModel):
    # strict: "0.7" or true is not an importance, whatever a lenient model sends
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FactsResult(_Strict):
    id: str
    facts: list[str] = Field(max_length=32)


class ImportanceResult(_Strict):
    id: str
    importance: float = Field(ge=0.0, le=1.0)


class DecisionResult(_Strict):
    id: str
    action: Literal["ADD", "UPDATE", "DELETE", "NOOP"]
    target: str | None = None
    text: str | None = None


RESULT_MODELS: dict[PromptKind, type[_Strict]] = {
    PromptKind.FACTS: FactsResult,
    PromptKind.IMPORTANCE: ImportanceResult,
    PromptKind.DECISION: DecisionResult,
}

_ITEM_SCHEMAS: dict[PromptKind, dict[str, Any]] = {
    PromptKind.FACTS: {
        "id": {"type": "string"},
        "facts": {"type": "array", "items": {"type": "string"}},
    },
    PromptKind.IMPORTANCE: {
        "id": {"type": "string"},
        "importance": {"type": "number", "minimum": 0, "maximum": 1},
    },
    PromptKind.DECISION: {
        "id": {"type": "string"},
        "action": {"type": "string", "enum": ["ADD", "UPDATE", "DELETE", "NOOP"]},
        "target": {"type": ["string", "null"]},
        "text": {"type": ["string", "null"]},
    },
}


def answer_schema(kind: PromptKind) -> dict[str, Any]:
    """The JSON schema of one whole answer (strict: every property required)."""
    props = _ITEM_SCHEMAS[kind]
    item = {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"results": {"type": "array", "items": item}},
        "required": ["results"],
        "additionalProperties": False,
    }


class OutputMode(StrEnum):
    """How the answer's JSON schema is asked for; endpoints differ in what they take.

    ``json_schema``: ``response_format`` of type json_schema (OpenAI, vLLM, llama.cpp's
    own server); ``json_object``: type json_object with the schema beside it
    (llama-cpp-python's server constrains the output with it: a grammar); ``none``: no
    ``response_format``, the schema spelled out in the system message. The prompts
    describe the answer's shape in words in every mode; the schema's text would cost
    a slow endpoint about 150 prompt tokens a request where a grammar enforces it.
    """

    JSON_SCHEMA = "json_schema"
    JSON_OBJECT = "json_object"
    NONE = "none"

    def fallback(self) -> OutputMode | None:
        """The next mode to try when an endpoint refuses this one."""
        order = list(OutputMode)
        index = order.index(self)
        return order[index + 1] if index + 1 < len(order) else None


def request_for(
    mode: OutputMode, messages: list[dict[str, str]], response_format: dict[str, Any]
) -> tuple[list[dict[str, str]], dict[str, Any] | None]:
    """The messages and ``response_format`` to send in ``mode``, from the json_schema
    request a :class:`Prompt` builds."""
    if mode == OutputMode.JSON_SCHEMA or response_format.get("type") != "json_schema":
        return messages, response_format
    schema = response_format["json_schema"]["schema"]
    if mode == OutputMode.JSON_OBJECT:
        return messages, {"type": "json_object", "schema": schema}
    note = (
        "\n\nAnswer with one JSON object and nothing else, matching this JSON schema:\n"
        + json.dumps(schema, separators=(",", ":"))
    )
    with_schema = [
        {**m, "content": m["content"] + note} if i == 0 and m.get("role") == "system" else m
        for i, m in enumerate(messages)
    ]
    return with_schema, None


@dataclass(frozen=True)
class Prompt:
    kind: PromptKind
    version: str  # e.g. "facts.v1": part of every cache key
    system: str

    def messages(self, items: list[dict[str, Any]]) -> list[dict[str, str]]:
        user = json.dumps({"task": self.kind.value, "items": items}, ensure_ascii=False)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def response_format(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {
                "name": f"agentmem_{self.kind.value}",
                "schema": answer_schema(self.kind),
                "strict": True,
            },
        }


def load_prompt(kind: PromptKind, version: str, directory: Path = PROMPT_DIR) -> Prompt:
    """The prompt of ``kind`` in the prompt set ``version`` ("v2"): the kind's newest
    file at or below that version, so that a new version of one prompt needs no copies
    of the others (set v2 = decision.v2 with facts.v1 and importance.v1). The version
    found is the prompt's ``version``, part of every cache key: answers cached under
    facts.v1 stay valid when the set moves to v2."""
    wanted = _version_number(version)
    if wanted is None:
        raise ValueError(f"prompt version {version!r} is not v<number>")
    found: dict[int, Path] = {}
    for path in directory.glob(f"{kind.value}.v*.md"):
        number = _version_number(path.name[len(kind.value) + 1 : -len(".md")])
        if number is not None and number <= wanted and path.is_file():
            found[number] = path
    if not found:
        path = directory / f"{kind.value}.{version}.md"
        raise FileNotFoundError(f"no prompt file {path} nor an older version of it")
    number = max(found)
    text = found[number].read_text(encoding="utf-8").strip()
    return Prompt(kind, f"{kind.value}.v{number}", text)


def _version_number(version: str) -> int | None:
    match = re.fullmatch(r"v([0-9]+)", version)
    return int(match.group(1)) if match else None


def cache_key(kind: PromptKind, model: str, prompt_version: str, item: dict[str, Any]) -> str:
    """Hash of everything an answer depends on; the item's id is not part of it."""
    content = {k: v for k, v in item.items() if k != "id"}
    blob = json.dumps([kind.value, model, prompt_version, content], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Failure:
    """An item that got no usable answer; ``reason`` is the last outcome (timeout,
    rate_limited, circuit_open, invalid_answer, ...)."""

    reason: str
    detail: str
    raw: str | None = None  # the model's last answer, when it answered but not usably


#: What a processor returns per item: the answer (without its id) or why there is none.
Result = dict[str, Any] | Failure
