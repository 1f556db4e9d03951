"""Reading a model's answer: strict first, then the repairs a real model needs. Pure.

A hosted model with a JSON schema answers exactly; a small local one does not
always: it wraps the JSON in a Markdown fence or prose, stops mid-way (a token
limit), answers a bare list or a single item, writes ``"0.7"`` for 0.7, ``7`` on a
scale of ten, ``"add"`` for ``ADD`` or ``0`` for the id ``"0"``. :func:`read_answer`
takes what is recoverable and says how the answer was read:

- ``valid``: the answer parsed and validated as asked;
- ``repaired``: usable items were recovered (``repairs`` names how);
- ``invalid``: nothing usable (``problem`` says why).

Items that the answer lacks, or that no repair makes valid, are left out; the
processor asks for them again, alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from processors.core.llm_prompts import RESULT_MODELS, PromptKind

__all__ = ["ParsedAnswer", "Verdict", "read_answer"]

FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
ACTIONS = ("ADD", "UPDATE", "DELETE", "NOOP")
# what a model calls the list when it does not say "results"
LIST_KEYS = ("results", "items", "answers", "result", "data", "output")


class Verdict(StrEnum):
    VALID = "valid"
    REPAIRED = "repaired"
    INVALID = "invalid"


@dataclass(frozen=True)
class ParsedAnswer:
    results: dict[str, BaseModel]  # by item id, only the asked ones
    verdict: Verdict
    repairs: tuple[str, ...] = ()
    problem: str = ""  # why nothing (or not everything) was usable


def read_answer(kind: PromptKind, content: str | None, ids: list[str]) -> ParsedAnswer:
    """The usable results of an answer to the items ``ids``; never raises."""
    repairs: list[str] = []
    doc = _document(content or "", repairs)
    if doc is None:
        problem = "empty answer" if not (content or "").strip() else "answer is not JSON"
        return ParsedAnswer({}, Verdict.INVALID, tuple(repairs), problem)
    raw_items = _items(doc, ids, repairs)
    if raw_items is None:
        return ParsedAnswer({}, Verdict.INVALID, tuple(repairs), "answer has no results list")
    results: dict[str, BaseModel] = {}
    model = RESULT_MODELS[kind]
    wanted = set(ids)
    for raw in raw_items:
        result = _validated(model, raw, kind, ids, repairs)
        rid = getattr(result, "id", None)
        if result is not None and rid in wanted and rid not in results:
            results[str(rid)] = result
    missing = len(wanted) - len(results)
    problem = f"{missing} of {len(wanted)} item(s) missing or invalid" if missing else ""
    if not results:
        return ParsedAnswer({}, Verdict.INVALID, tuple(dict.fromkeys(repairs)), problem)
    verdict = Verdict.REPAIRED if repairs else Verdict.VALID
    return ParsedAnswer(results, verdict, tuple(dict.fromkeys(repairs)), problem)


def _document(content: str, repairs: list[str]) -> Any:
    """The JSON document of the answer: as is, out of a fence or prose, or the complete
    items of a truncated one; None when there is none."""
    text = content.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    fenced = FENCE.search(text)
    if fenced is not None:
        text = fenced.group(1).strip()
        repairs.append("fenced")
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        doc, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        recovered = list(_complete_objects(text, start))
        if not recovered:
            return None
        repairs.append("truncated")
        return recovered
    repairs.append("extracted")  # prose or a second document around the JSON
    return doc


def _complete_objects(text: str, start: int) -> Iterator[Any]:
    """The complete JSON objects inside the first array of a cut-off answer."""
    bracket = text.find("[", start)
    if bracket < 0:
        return
    decoder = json.JSONDecoder()
    pos = bracket + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            return
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return
        yield obj


def _items(doc: Any, ids: list[str], repairs: list[str]) -> list[Any] | None:
    """The list of per-item answers in ``doc``."""
    if isinstance(doc, dict):
        results = doc.get("results")
        if isinstance(results, list):
            return results
        for key in LIST_KEYS:
            if isinstance(doc.get(key), list):
                repairs.append("renamed_list")
                return list(doc[key])
        if "id" in doc or len(ids) == 1:
            repairs.append("single_item")
            return [doc]
        return None
    if isinstance(doc, list):
        repairs.append("bare_list")
        return doc
    return None


def _validated(
    model: type[BaseModel], raw: Any, kind: PromptKind, ids: list[str], repairs: list[str]
) -> BaseModel | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        pass
    if not isinstance(raw, dict):
        return None
    fixed, how = _coerced(kind, raw, ids)
    try:
        result = model.model_validate(fixed)
    except ValidationError:
        return None
    repairs.extend(how)
    return result


def _coerced(
    kind: PromptKind, raw: dict[str, Any], ids: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """``raw`` with the usual slips of a small model put right."""
    fields = set(RESULT_MODELS[kind].model_fields)
    how: list[str] = []
    item = {k: v for k, v in raw.items() if k in fields}
    if len(item) != len(raw):
        how.append("extra_keys")
    rid = item.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool):
        item["id"], rid = str(rid), str(rid)
        how.append("id_type")
    if rid is None and len(ids) == 1:
        item["id"] = ids[0]
        how.append("id_missing")
    if kind == PromptKind.FACTS:
        how += _coerce_facts(item)
    elif kind == PromptKind.IMPORTANCE:
        how += _coerce_importance(item)
    else:
        how += _coerce_decision(item)
    return item, how


def _coerce_facts(item: dict[str, Any]) -> list[str]:
    facts = item.get("facts")
    if isinstance(facts, str):
        item["facts"] = [facts] if facts.strip() else []
        return ["facts_type"]
    if isinstance(facts, list) and not all(isinstance(f, str) for f in facts):
        item["facts"] = [_fact_text(f) for f in facts if _fact_text(f)]
        return ["facts_type"]
    return []


def _fact_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value.values()))).strip()
    return "" if value is None else str(value).strip()


def _coerce_importance(item: dict[str, Any]) -> list[str]:
    value = item.get("importance")
    how = []
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%"))
        except ValueError:
            return []
        how.append("importance_type")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return how
    if 1.0 < value <= 10.0:
        value, how = value / 10.0, [*how, "importance_scale"]
    elif 10.0 < value <= 100.0:
        value, how = value / 100.0, [*how, "importance_scale"]
    item["importance"] = float(value)
    return how


def _coerce_decision(item: dict[str, Any]) -> list[str]:
    how = []
    action = item.get("action")
    if isinstance(action, str) and action.strip().upper() in ACTIONS and action not in ACTIONS:
        item["action"] = action.strip().upper()
        how.append("action_case")
    for key in ("target", "text"):
        value = item.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            item[key] = str(value)
            how.append(f"{key}_type")
        elif isinstance(value, str) and not value.strip():
            item[key] = None
            how.append(f"{key}_empty")
    return how
