"""Raw bytes from ``memory.events`` to a valid event or a precise rejection. Pure."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from processors.events import (
    MEMORY_ID_PATTERN,
    SCHEMA_V1,
    SHORT_ID_PATTERN,
    TENANT_PATTERN,
    EventType,
    MemoryEvent,
)


@dataclass(frozen=True)
class Limits:
    max_content_bytes: int = 32 * 1024
    max_metadata_bytes: int = 8 * 1024
    vector_dim: int = 384


@dataclass(frozen=True)
class Rejection:
    """Why an event cannot be applied; ``reason`` is a stable code, ``detail`` says more."""

    reason: str
    detail: str
    event_id: str | None = None
    tenant: str | None = None


def _reject(reason: str, detail: str, doc: dict[str, Any] | None = None) -> Rejection:
    event_id = doc.get("event_id") if doc else None
    tenant = doc.get("tenant") if doc else None
    return Rejection(
        reason,
        detail,
        event_id if isinstance(event_id, str) else None,
        tenant if isinstance(tenant, str) else None,
    )


def _check_envelope(doc: dict[str, Any], limits: Limits) -> Rejection | None:
    """Checks that give a more specific reason than the schema's type errors."""
    if doc.get("schema", SCHEMA_V1) != SCHEMA_V1:
        return _reject("unsupported_schema", f"schema must be {SCHEMA_V1!r}", doc)
    type_ = doc.get("type")
    if type_ is None:
        return _reject("missing_field", "type is required", doc)
    if not isinstance(type_, str) or type_ not in {t.value for t in EventType}:
        return _reject("unknown_type", f"unknown event type {str(type_)[:80]!r}", doc)
    if not isinstance(doc.get("event_id"), str) or not doc["event_id"]:
        return _reject("missing_field", "event_id (a non-empty string) is required", doc)
    tenant = doc.get("tenant")
    if tenant is None or tenant == "":
        return _reject("missing_tenant", "tenant is required", doc)
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        return _reject("invalid_tenant", "tenant must match [A-Za-z0-9_-]{1,64}", doc)
    content = doc.get("content")
    if isinstance(content, str) and len(content.encode()) > limits.max_content_bytes:
        size = len(content.encode())
        return _reject(
            "content_too_large", f"content is {size} bytes, limit {limits.max_content_bytes}", doc
        )
    metadata = doc.get("metadata")
    if metadata is not None:
        size = len(
            json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        )
        if size > limits.max_metadata_bytes:
            return _reject(
                "metadata_too_large",
                f"metadata is {size} bytes, limit {limits.max_metadata_bytes}",
                doc,
            )
    return None


def _check_semantics(event: MemoryEvent, limits: Limits) -> str | None:
    if event.type in (EventType.ADD, EventType.UPDATE) and not (event.content or "").strip():
        return "missing_content"
    if event.type != EventType.ADD and event.memory_id is None:
        return "missing_memory_id"
    if event.memory_id is not None and not MEMORY_ID_PATTERN.fullmatch(event.memory_id):
        return "invalid_memory_id"
    for name in ("agent_id", "run_id"):
        value = getattr(event, name)
        if value is not None and not SHORT_ID_PATTERN.fullmatch(value):
            return f"invalid_{name}"
    if event.vector is not None:
        if len(event.vector) != limits.vector_dim:
            return "vector_dimension"
        if not all(map(math.isfinite, event.vector)):
            return "invalid_vector"
    return None


_SEMANTIC_DETAIL = {
    "missing_content": "add and update need non-empty content",
    "missing_memory_id": "memory_id is required for update, delete and erase",
    "invalid_memory_id": "memory_id must match [A-Za-z0-9_.:@-]{1,128}",
    "invalid_agent_id": "agent_id must match [A-Za-z0-9_.:@-]{1,128}",
    "invalid_run_id": "run_id must match [A-Za-z0-9_.:@-]{1,128}",
    "vector_dimension": "vector has the wrong number of dimensions",
    "invalid_vector": "vector holds NaN or infinite values",
}


def _loads(raw: bytes, text: str) -> Any:
    """orjson where it can (a 384-float vector parses ten times faster than with the
    standard library); whatever it refuses (NaN, integers past 64 bits, lone
    surrogates, malformed input) goes to ``json.loads``, so that what is accepted and
    every rejection's wording stay the standard library's."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(text)


def parse_event(raw: bytes | None, limits: Limits) -> MemoryEvent | Rejection:
    """Decode, parse and validate one message value."""
    if raw is None:
        return Rejection("empty_value", "message has no value")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("invalid_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        doc = _loads(raw, text)
    except json.JSONDecodeError as exc:
        return Rejection("invalid_json", f"value is not JSON: {exc.msg} at char {exc.pos}")
    if not isinstance(doc, dict):
        return Rejection("not_an_object", f"event must be a JSON object, got {type(doc).__name__}")
    envelope = _check_envelope(doc, limits)
    if envelope is not None:
        return envelope
    try:
        event = MemoryEvent.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "event"
        reason = "unknown_field" if first["type"] == "extra_forbidden" else "invalid_field"
        return _reject(reason, f"{field}: {first['msg']}", doc)
    except ValueError as exc:  # a before-validator (timestamp) raised
        return _reject("invalid_field", str(exc), doc)
    problem = _check_semantics(event, limits)
    if problem is not None:
        detail = _SEMANTIC_DETAIL[problem]
        if problem == "vector_dimension" and event.vector is not None:
            detail = f"vector has {len(event.vector)} dimensions, expected {limits.vector_dim}"
        return Rejection(problem, detail, event.event_id, event.tenant)
    return event
