"""Raw bytes from ``memory.events`` to a valid event or a precise rejection. Pure.

:func:`parse_event` returns a value for every input and never raises: what it
cannot accept becomes a :class:`Rejection` with a stable reason code (the list is
:class:`processors.core.reasons.Reason`). :func:`check_key` checks the record key
against the event. A rejection only carries an event id and a tenant that are safe
to write into records and logs.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from processors.core.events import (
    MEMORY_ID_NAMESPACE,
    MEMORY_ID_PATTERN,
    SCHEMA_V1,
    SHORT_ID_PATTERN,
    TENANT_PATTERN,
    EventType,
    MemoryEvent,
)
from processors.core.reasons import Reason

MAX_DETAIL_CHARS = 1000  # a rejection's detail is cut to this (plus a note of the length)
_EVENT_TYPES = frozenset(t.value for t in EventType)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # the signed and unsigned 64-bit ranges together
# orjson reads an integer past 64 bits as a float (3.10+) or refuses it (older): a float
# this large may be such an integer, and the document is read again by the standard library.
_BIG = float(2**63)


@dataclass(frozen=True)
class Limits:
    max_content_bytes: int = 32 * 1024
    max_metadata_bytes: int = 8 * 1024
    vector_dim: int = 384
    max_event_bytes: int = 256 * 1024  # the whole value, checked before anything else
    max_depth: int = 32  # nesting of objects and arrays; the event itself is level 1


def printable(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` cut to ``limit`` characters and safe to encode as UTF-8 (a lone
    surrogate becomes its ``\\udXXX`` escape)."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} chars)"
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_event_id(value: object) -> str | None:
    """``value`` if it can go into records as an event id (1..128 chars, UTF-8), else None."""
    if isinstance(value, str) and 1 <= len(value) <= 128 and _encodable(value):
        return value
    return None


def safe_tenant(value: object) -> str | None:
    """``value`` if it is a valid tenant name, else None."""
    if isinstance(value, str) and TENANT_PATTERN.fullmatch(value):
        return value
    return None


@dataclass(frozen=True)
class Rejection:
    """Why an event cannot be applied; ``reason`` is a stable code, ``detail`` says more.

    ``event_id`` and ``tenant`` are kept only when safe to put in records (see
    :func:`safe_event_id`, :func:`safe_tenant`), otherwise None; ``detail`` is bounded
    and encodable."""

    reason: str
    detail: str
    event_id: str | None = None
    tenant: str | None = None
    # the memory it was for, when readable and well-formed (a dead letter's key says it,
    # so that an erase of the memory reaches the dead letter)
    memory_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", printable(self.detail))
        object.__setattr__(self, "event_id", safe_event_id(self.event_id))
        object.__setattr__(self, "tenant", safe_tenant(self.tenant))
        memory_id = self.memory_id
        if not (isinstance(memory_id, str) and MEMORY_ID_PATTERN.fullmatch(memory_id)):
            object.__setattr__(self, "memory_id", None)


def _reject(reason: Reason, detail: str, doc: dict[str, Any] | None = None) -> Rejection:
    if doc is None:
        return Rejection(reason, detail)
    return Rejection(reason, detail, doc.get("event_id"), doc.get("tenant"), _memory_of(doc))


def _memory_of(doc: dict[str, Any]) -> str | None:
    """The memory a rejected document was for: its memory_id, or for an add without
    one the id its event id would have given it (when tenant and event id are safe)."""
    memory_id = doc.get("memory_id")
    if memory_id is not None:
        return memory_id if isinstance(memory_id, str) else None
    tenant, event_id = safe_tenant(doc.get("tenant")), safe_event_id(doc.get("event_id"))
    if doc.get("type") in (None, "memory.add") and tenant and event_id:
        return str(uuid.uuid5(MEMORY_ID_NAMESPACE, f"{tenant}/{event_id}"))
    return None


# -- reading the document ---------------------------------------------------------------

_Path = tuple[Any, str | int] | None  # (parent path, key), built only as deep as the walk


def _render(path: _Path) -> str:
    """A JSON path for details: ``metadata.tags[2]``."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{printable(key, 40)}")
    return "".join(reversed(parts)).removeprefix(".") or "(the event)"


def _norm(items: list[Any]) -> float | None:
    """The Euclidean norm if every item is a number (checked at C speed), else None."""
    try:
        return math.hypot(*items)
    except (TypeError, ValueError, OverflowError):
        return None


_REREAD = Rejection("reread", "")  # internal: a float that may be an integer past 64 bits


def _scan(doc: dict[str, Any], max_depth: int, texts: bool) -> Rejection | None:
    """Walk the document without recursion: its depth, and either every string and key
    (``texts``: after the standard library, which accepts lone surrogates) or every float
    that may stand for an integer orjson could not hold (then :data:`_REREAD`)."""
    stack: list[tuple[dict[str, Any] | list[Any], int, _Path]] = [(doc, 1, None)]
    while stack:
        node, depth, path = stack.pop()
        if depth > max_depth:
            where = _render(path)
            return _reject(
                Reason.TOO_DEEP, f"nested deeper than {max_depth} levels at {where}", doc
            )
        if isinstance(node, list):
            norm = _norm(node)
            if norm is not None and (texts or norm < _BIG):
                continue  # numbers only: no containers, strings or suspect floats
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            kind = type(value)
            if texts and (
                (kind is str and not _encodable(value))
                or (type(key) is str and not _encodable(key))
            ):
                where = _render((path, key))
                return _reject(
                    Reason.INVALID_UNICODE, f"lone surrogate in a string at {where}", doc
                )
            if kind is dict or kind is list:
                stack.append((value, depth + 1, (path, key)))
            elif kind is float and not texts and not -_BIG < value < _BIG:
                return _REREAD
    return None


class _NumberOutOfRange(ValueError):
    pass


def _parse_int(digits: str) -> int:
    """``parse_int`` for ``json.loads``: integers in the 64-bit ranges only (which also
    keeps Python's int-to-string digit limit from ever being reached)."""
    if len(digits) < 19:
        return int(digits)
    if len(digits) <= 21:
        value = int(digits)
        if _INT_MIN <= value <= _INT_MAX:
            return value
    shown = digits if len(digits) <= 24 else f"{digits[:20]}... ({len(digits)} chars)"
    raise _NumberOutOfRange(f"integer {shown} is outside the 64-bit range [-2**63, 2**64-1]")


def _load_slowly(text: str, max_depth: int) -> dict[str, Any] | Rejection:
    """The standard library reads what orjson refuses (NaN, lone surrogates, malformed
    input, ...), so that what is accepted and every rejection's wording stay its own."""
    try:
        doc = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        return Rejection(Reason.INVALID_JSON, f"value is not JSON: {exc.msg} at char {exc.pos}")
    except _NumberOutOfRange as exc:
        return Rejection(Reason.NUMBER_OUT_OF_RANGE, str(exc))
    except RecursionError:
        return Rejection(Reason.TOO_DEEP, f"nested deeper than {max_depth} levels (at parse)")
    if not isinstance(doc, dict):
        return _not_an_object(doc)
    return _scan(doc, max_depth, texts=True) or doc


def _not_an_object(doc: object) -> Rejection:
    return Rejection(Reason.NOT_AN_OBJECT, f"event must be a JSON object, got {type(doc).__name__}")


def _load(raw: bytes, text: str, max_depth: int) -> dict[str, Any] | Rejection:
    """orjson where it can (a 384-float vector parses ten times faster than with the
    standard library); the rest goes to :func:`_load_slowly`."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _load_slowly(text, max_depth)
    if not isinstance(doc, dict):
        return _not_an_object(doc)
    problem = _scan(doc, max_depth, texts=False)
    if problem is _REREAD:
        return _load_slowly(text, max_depth)
    return problem or doc


def _decode(raw: bytes | None, limits: Limits) -> tuple[bytes, str] | Rejection:
    """The value and its text, or why it is not even text."""
    if not raw:
        return Rejection(
            Reason.EMPTY_VALUE, "message has no value" if raw is None else "message value is empty"
        )
    if len(raw) > limits.max_event_bytes:
        return Rejection(
            Reason.EVENT_TOO_LARGE, f"value is {len(raw)} bytes, limit {limits.max_event_bytes}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(
            Reason.INVALID_UTF8, f"value is not UTF-8: {exc.reason} at byte {exc.start}"
        )
    if text.startswith("\ufeff"):
        return Rejection(
            Reason.INVALID_JSON, "value is not JSON: it starts with a UTF-8 byte order mark (BOM)"
        )
    return raw, text


# -- checking the event -----------------------------------------------------------------


def _check_envelope(doc: dict[str, Any], limits: Limits) -> Rejection | None:
    """Checks that give a more specific reason than the schema's type errors."""
    if doc.get("schema", SCHEMA_V1) != SCHEMA_V1:
        return _reject(Reason.UNSUPPORTED_SCHEMA, f"schema must be {SCHEMA_V1!r}", doc)
    type_ = doc.get("type")
    if type_ is None:
        return _reject(Reason.MISSING_FIELD, "type is required", doc)
    if not isinstance(type_, str) or type_ not in _EVENT_TYPES:
        return _reject(Reason.UNKNOWN_TYPE, f"unknown event type {str(type_)[:80]!r}", doc)
    if not isinstance(doc.get("event_id"), str) or not doc["event_id"]:
        return _reject(Reason.MISSING_FIELD, "event_id (a non-empty string) is required", doc)
    tenant = doc.get("tenant")
    if tenant is None or tenant == "":
        return _reject(Reason.MISSING_TENANT, "tenant is required", doc)
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        return _reject(Reason.INVALID_TENANT, "tenant must match [A-Za-z0-9_-]{1,64}", doc)
    content = doc.get("content")
    if isinstance(content, str) and len(content.encode()) > limits.max_content_bytes:
        size = len(content.encode())
        return _reject(
            Reason.CONTENT_TOO_LARGE,
            f"content is {size} bytes, limit {limits.max_content_bytes}",
            doc,
        )
    metadata = doc.get("metadata")
    if metadata is not None:
        size = len(
            json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        )
        if size > limits.max_metadata_bytes:
            return _reject(
                Reason.METADATA_TOO_LARGE,
                f"metadata is {size} bytes, limit {limits.max_metadata_bytes}",
                doc,
            )
    return None


def _check_semantics(event: MemoryEvent, limits: Limits) -> Reason | None:
    if event.type in (EventType.ADD, EventType.UPDATE) and not (event.content or "").strip():
        return Reason.MISSING_CONTENT
    if event.type == EventType.ERASE_TENANT:
        if event.memory_id is not None or event.content is not None or event.vector is not None:
            return Reason.NOT_FOR_TENANT_ERASE
    elif event.type != EventType.ADD and event.memory_id is None:
        return Reason.MISSING_MEMORY_ID
    for memory_id in (event.memory_id, event.folded_into):
        if memory_id is not None and not MEMORY_ID_PATTERN.fullmatch(memory_id):
            return Reason.INVALID_MEMORY_ID
    if event.agent_id is not None and not SHORT_ID_PATTERN.fullmatch(event.agent_id):
        return Reason.INVALID_AGENT_ID
    if event.run_id is not None and not SHORT_ID_PATTERN.fullmatch(event.run_id):
        return Reason.INVALID_RUN_ID
    if event.vector is not None:
        if len(event.vector) != limits.vector_dim:
            return Reason.VECTOR_DIMENSION
        if not all(map(math.isfinite, event.vector)):
            return Reason.INVALID_VECTOR
    return None


_SEMANTIC_DETAIL = {
    Reason.MISSING_CONTENT: "add and update need non-empty content",
    Reason.MISSING_MEMORY_ID: "memory_id is required for update, delete and erase",
    Reason.INVALID_MEMORY_ID: "memory_id must match [A-Za-z0-9_.:@-]{1,128}",
    Reason.NOT_FOR_TENANT_ERASE: (
        "memory.erase_tenant names a tenant only: no memory_id, content or vector"
    ),
    Reason.INVALID_AGENT_ID: "agent_id must match [A-Za-z0-9_.:@-]{1,128}",
    Reason.INVALID_RUN_ID: "run_id must match [A-Za-z0-9_.:@-]{1,128}",
    Reason.VECTOR_DIMENSION: "vector has the wrong number of dimensions",
    Reason.INVALID_VECTOR: "vector holds NaN or infinite values",
}


def _validate(doc: dict[str, Any], limits: Limits) -> MemoryEvent | Rejection:
    envelope = _check_envelope(doc, limits)
    if envelope is not None:
        return envelope
    try:
        event = MemoryEvent.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "event"
        extra = first["type"] == "extra_forbidden"
        reason = Reason.UNKNOWN_FIELD if extra else Reason.INVALID_FIELD
        return _reject(reason, f"{field}: {first['msg']}", doc)
    except ValueError as exc:  # a before-validator (timestamp) raised
        return _reject(Reason.INVALID_FIELD, str(exc), doc)
    problem = _check_semantics(event, limits)
    if problem is not None:
        detail = _SEMANTIC_DETAIL[problem]
        if problem == Reason.VECTOR_DIMENSION and event.vector is not None:
            detail = f"vector has {len(event.vector)} dimensions, expected {limits.vector_dim}"
        memory_id = None if event.type == EventType.ERASE_TENANT else event.resolved_memory_id
        return Rejection(problem, detail, event.event_id, event.tenant, memory_id)
    return event


def _parse(raw: bytes | None, limits: Limits) -> MemoryEvent | Rejection:
    decoded = _decode(raw, limits)
    if isinstance(decoded, Rejection):
        return decoded
    doc = _load(*decoded, limits.max_depth)
    if isinstance(doc, Rejection):
        return doc
    return _validate(doc, limits)


def _describe(exc: Exception) -> str:
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not escape the guard
        message = "(no message)"
    return f"{type(exc).__name__}: {printable(message, 200)}"


def parse_event(raw: bytes | None, limits: Limits) -> MemoryEvent | Rejection:
    """Decode, parse and validate one message value; never raises.

    Checked in order: presence and size (``empty_value``, ``event_too_large``),
    UTF-8, JSON (a byte order mark, integers outside the 64-bit ranges, nesting deeper
    than ``limits.max_depth``, lone surrogates), the envelope, the schema, the meaning.
    Any other exception becomes ``unparseable``: a bug to fix, not a crash."""
    try:
        return _parse(raw, limits)
    except Exception as exc:  # noqa: BLE001 - the last guard: parse_event never raises
        return Rejection(Reason.UNPARSEABLE, _describe(exc))


def _show_key(key: bytes) -> str:
    shown = repr(key[:40])
    return shown if len(key) <= 40 else f"{shown}... ({len(key)} bytes)"


def check_key(key: bytes | None, event: MemoryEvent) -> Rejection | None:
    """The record key must be the event's tenant (UTF-8): None if it is, else why not."""
    if not key:
        return Rejection(
            Reason.MISSING_KEY,
            "record has no key; it must be the tenant",
            event.event_id,
            event.tenant,
        )
    try:
        matches = key.decode("utf-8") == event.tenant
    except UnicodeDecodeError:
        matches = False
    if matches:
        return None
    return Rejection(
        Reason.KEY_MISMATCH,
        f"record key {_show_key(key)} is not the tenant {printable(repr(event.tenant), 80)}",
        event.event_id,
        event.tenant,
    )
