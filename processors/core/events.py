"""Memory event schema v1: the typed event and its JSON form on ``memory.events``.

Pure.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_V1 = "agentmem.memory/v1"
TENANT_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Memory ids appear in Weaviate uuids and history keys ("tenant/memory/version"): no slash.
MEMORY_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
SHORT_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")

# Namespace of the memory ids we derive for adds that carry none.
MEMORY_ID_NAMESPACE = uuid.UUID("5b0c3c3e-4b8e-4f55-9a8c-3e1f2b6d7a10")


class EventType(StrEnum):
    ADD = "memory.add"
    UPDATE = "memory.update"
    DELETE = "memory.delete"
    ERASE = "memory.erase"
    # Every memory of the tenant erased, and the tenant itself gone from the store.
    ERASE_TENANT = "memory.erase_tenant"


class Mode(StrEnum):
    FAST = "fast"
    INTELLIGENT = "intelligent"


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp ("Z" or an offset; UTC when it has none), as events carry
    ``occurred_at``; ``ValueError`` when it is not one."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class MemoryEvent(BaseModel):
    """One memory event, validated (limits are checked by :mod:`processors.core.validation`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    schema_: Literal["agentmem.memory/v1"] = Field(default="agentmem.memory/v1", alias="schema")
    event_id: str = Field(min_length=1, max_length=128)
    type: EventType
    tenant: str
    agent_id: str | None = None
    run_id: str | None = None
    memory_id: str | None = None
    content: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    mode: Mode = Mode.FAST
    occurred_at: datetime | None = None
    vector: list[float] | None = None
    # Set on the events an intelligent-mode decision derives: the event id of the
    # memory whose enrichment decided the change (audit trail; no decision on a decision).
    caused_by: str | None = Field(default=None, min_length=1, max_length=128)
    # Set on the delete an UPDATE decision derives for the memory it folds into another:
    # that memory's id (an erase of this memory erases it too).
    folded_into: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("type", mode="before")
    @classmethod
    def _type_from_string(cls, value: object) -> object:
        return EventType(value) if isinstance(value, str) else value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_from_string(cls, value: object) -> object:
        return Mode(value) if isinstance(value, str) else value

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _parse_rfc3339(cls, value: object) -> object:
        return parse_rfc3339(value) if isinstance(value, str) else value

    @field_validator("vector", mode="before")
    @classmethod
    def _ints_are_floats(cls, value: object) -> object:
        if isinstance(value, list):
            if set(map(type, value)) <= {float}:  # the usual case, checked at C speed
                return value
            return [float(v) if type(v) is int else v for v in value]
        return value

    @property
    def resolved_memory_id(self) -> str:
        """The memory this event acts on; an add without one gets an id from its event id."""
        if self.memory_id:
            return self.memory_id
        return str(uuid.uuid5(MEMORY_ID_NAMESPACE, f"{self.tenant}/{self.event_id}"))

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


def new_event(
    type_: EventType | str,
    tenant: str,
    *,
    content: str | None = None,
    memory_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    mode: Mode | str = Mode.FAST,
    vector: list[float] | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> MemoryEvent:
    """Build an event with a fresh id and timestamp (what the SDK and the tests publish)."""
    fields: dict[str, Any] = {
        "schema": SCHEMA_V1,
        "event_id": event_id or str(uuid.uuid4()),
        "type": str(type_),
        "tenant": tenant,
        "agent_id": agent_id,
        "run_id": run_id,
        "memory_id": memory_id,
        "content": content,
        "metadata": metadata or {},
        "mode": str(mode),
        "occurred_at": occurred_at or datetime.now(UTC),
        "vector": vector,
    }
    return MemoryEvent.model_validate(fields)


_COMPACT = (",", ":")
_SAFE_DEPTH = 200  # json_safe cuts nesting here, well inside the recursion limit


def dumps_compact(obj: object) -> bytes:
    """Compact JSON as UTF-8, non-ASCII text as is (not escaped); never raises.

    A lone surrogate, which UTF-8 cannot encode, is written as its ``\\udXXX`` escape
    (as ``ensure_ascii=True`` would write it; the rest stays compact): still valid JSON,
    the escape kept. What ``json.dumps`` refuses (an int past the int-to-string digit
    limit, nesting past the recursion limit, a cycle, a key of another type, a
    ``__str__`` that raises) is first made serializable by :func:`_json_safe`."""
    try:
        text = json.dumps(obj, separators=_COMPACT, ensure_ascii=False, default=str)
    except Exception:  # noqa: BLE001 - the fallback below takes anything
        try:
            text = json.dumps(_json_safe(obj), separators=_COMPACT, ensure_ascii=False)
        except Exception:  # noqa: BLE001 - cannot happen for json_safe's output; be sure
            text = json.dumps(f"<unserializable {type(obj).__name__}>")
    try:
        return text.encode()
    except UnicodeEncodeError:
        # Raw surrogates only occur inside JSON strings: their escape is valid JSON there.
        return text.encode("utf-8", "backslashreplace")


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__
        return f"<unprintable {type(value).__name__}>"


def _safe_scalar(value: object) -> object:
    """A leaf as ``json.dumps`` takes it (what ``default=str`` would have done)."""
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        try:
            str(value)
        except ValueError:  # past the int-to-string digit limit: hex has none
            return hex(value)
        return int(value)
    return _safe_str(value)


def _safe_key(key: object) -> object:
    if key is None or isinstance(key, str | bool | float | int):
        return _safe_scalar(key)
    return _safe_str(key)


def _json_safe(obj: object) -> object:
    """A copy of ``obj`` that ``json.dumps`` always takes, built without recursion: a
    cycle and nesting past :data:`_SAFE_DEPTH` become marker strings."""
    out: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(obj, out, 0, 0)]
    path: set[int] = set()  # ids of the containers being copied (to see cycles)
    while stack:
        value, into, key, depth = stack.pop()
        if into is None:  # every child of container ``value`` is done
            path.discard(value)
        elif not isinstance(value, dict | list | tuple):
            into[key] = _safe_scalar(value)
        elif id(value) in path or depth >= _SAFE_DEPTH:
            into[key] = "<cycle>" if id(value) in path else "<nested too deep>"
        else:
            path.add(id(value))
            stack.append((id(value), None, None, 0))
            if isinstance(value, dict):
                pairs = [(_safe_key(k), v) for k, v in value.items()]
                copy: Any = dict.fromkeys(k for k, _ in pairs)
                stack += [(v, copy, k, depth + 1) for k, v in pairs]
            else:
                copy = [None] * len(value)
                stack += [(v, copy, i, depth + 1) for i, v in enumerate(value)]
            into[key] = copy
    return out[0]
