"""The records the index stage writes: history changes, acks and dead letters. Pure.

Every builder here returns a record for any input and never raises; a dead letter's
value is bounded (see :func:`dead_letter_record`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from processors.core.events import dumps_compact
from processors.core.plan import Applied, Kind

# aiokafka's producer refuses a request over max_request_size (1 MiB by default): a
# dead letter stays well under it, with room for the key and the record's overhead.
DEFAULT_DEADLETTER_MAX_BYTES = 900 * 1024
# Every field of a dead letter but the value is bounded: cut tight, they fit in this.
MIN_DEADLETTER_MAX_BYTES = 4 * 1024
MAX_KEY_BYTES = 1024  # a longer key is kept as its first 1 KiB (and its size and sha256)


@dataclass(frozen=True)
class SourceRef:
    """Where an event came from on ``memory.events``."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class OutRecord:
    key: bytes
    value: bytes | None  # None is a tombstone
    # None: where the key hashes; set to keep a record beside the events partition it
    # comes from, whatever partitioner the event's producer used
    partition: int | None = None


def _utf8(text: str) -> bytes:
    """UTF-8, a lone surrogate written as its ``\\udXXX`` escape instead of raising."""
    return text.encode("utf-8", "backslashreplace")


def dead_letter_key(tenant: str | None, memory_id: str | None, source: SourceRef) -> bytes:
    """The key of a dead letter: its tenant and memory (empty when unknown), then where
    its record was read, so that each is its own record of the compacted dead-letter
    topic (a re-processing writes the same key) and an erase finds a memory's (or a
    tenant's) by prefix (:func:`dead_letter_prefix`). Pure."""
    where = f"{source.topic}/{source.partition}/{source.offset}"
    return _utf8(f"{tenant or ''}\x1f{memory_id or ''}\x1f{where}")


def dead_letter_prefix(tenant: str, memory_id: str | None = None) -> bytes:
    """The key prefix of a tenant's dead letters, or of one memory's. Pure."""
    return _utf8(f"{tenant}\x1f" if memory_id is None else f"{tenant}\x1f{memory_id}\x1f")


def history_key(memory_key: str, version: int) -> str:
    """Deterministic per change: re-processing an event writes the same key."""
    return f"{memory_key}/{version}"


def history_records(change: Applied, produced_at_ms: int | None) -> list[OutRecord]:
    """The change record, or for an erase the tombstones of every earlier version.

    An erase leaves one record of its own (no content), so the history shows that
    the memory was erased and when, and nothing of what it held.

    The value is a function of the event and the state before it only (no wall
    clock), so an event re-processed after a crash rewrites a byte-identical record
    under the same key, which compaction folds into one.
    """
    event, before, after = change.event, change.before, change.after
    records: list[OutRecord] = []
    if change.kind == Kind.ERASE and before is not None:
        records += [
            OutRecord(_utf8(history_key(change.key, v)), None) for v in range(1, before.version + 1)
        ]
    value: dict[str, Any] = {
        "tenant": event.tenant,
        "memory_id": event.resolved_memory_id,
        "version": after.version,
        "type": event.type.value,
        "change": change.kind.value,
        "event_id": event.event_id,
        "agent_id": after.agent_id,
        "run_id": after.run_id,
        "before": None if change.kind == Kind.ERASE or before is None else before.content,
        "after": after.content,
        "metadata": after.metadata,
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        "produced_at_ms": produced_at_ms,
    }
    if event.caused_by is not None:
        value["caused_by"] = event.caused_by
    records.append(OutRecord(_utf8(history_key(change.key, after.version)), dumps_compact(value)))
    return records


def ack_record(
    event_id: str,
    tenant: str,
    memory_id: str | None,
    version: int | None,
    outcome: str,
    source: SourceRef,
    occurred_at: datetime | None,
    indexed_at: datetime,
    erased: int | None = None,
) -> OutRecord:
    """The acknowledgement on ``memory.indexed``: when the event's effect became
    searchable (for a tenant erasure: ``memory_id`` None and how many memories it
    ``erased``)."""
    when = _instant(indexed_at)
    value: dict[str, object] = {
        "event_id": event_id,
        "tenant": tenant,
        "memory_id": memory_id,
        "version": version,
        "outcome": outcome,
        "produced_at_ms": source.timestamp_ms,
        "occurred_at": occurred_at.isoformat() if occurred_at else None,
        "indexed_at": when[0],
        "indexed_at_ms": when[1],
        "partition": source.partition,
        "offset": source.offset,
    }
    if erased is not None:
        value["erased"] = erased
    return OutRecord(_utf8(tenant), _dumps_flat(value))


@functools.lru_cache(maxsize=4)
def _instant(at: datetime) -> tuple[str, int]:
    """``at`` as an ack writes it (ISO text, epoch milliseconds): a batch's acks share
    one instant, written once."""
    return at.isoformat(), int(at.timestamp() * 1000)


def _dumps_flat(value: dict[str, object]) -> bytes:
    """:func:`dumps_compact` of a flat record of strings, integers and None, the same
    bytes at a fraction of the cost (orjson writes compact JSON, text as is); what
    orjson refuses (a lone surrogate) goes to :func:`dumps_compact`."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return dumps_compact(value)


def _encode(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


def _encoding_of(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64"
    return "utf-8"


def _bounded(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def _bounded_int(number: int | None) -> int | None:
    return number if isinstance(number, int) and -(2**63) <= number < 2**64 else None


@dataclass(frozen=True)
class _Bounds:
    """How much of each field but the value a dead letter keeps."""

    labels: int = 256  # characters of stage, reason, event id, tenant, topic
    detail: int = 1024  # characters
    context: int = 4096  # characters of each context value (0: no context)
    key: int = MAX_KEY_BYTES  # bytes


_USUAL = _Bounds()
# When a small max_bytes cannot hold even the usual fields: at most 6 bytes a character
# escaped, these take under 3 KiB together, inside MIN_DEADLETTER_MAX_BYTES.
_TIGHT = _Bounds(labels=32, detail=128, key=32, context=0)


def _key_fields(raw_key: bytes | None, limit: int) -> dict[str, Any]:
    """The key as text; one longer than ``limit`` bytes as its prefix, size and hash."""
    if raw_key is None or len(raw_key) <= limit:
        key, encoding = _encode(raw_key)
        return {"key": key, "key_encoding": encoding}
    encoding = _encoding_of(raw_key)
    head = raw_key[:limit]
    text = (
        head.decode("utf-8", "ignore") if encoding == "utf-8" else base64.b64encode(head).decode()
    )
    return {
        "key": text,
        "key_encoding": encoding,
        "key_truncated": True,
        "key_size": len(raw_key),
        "key_sha256": hashlib.sha256(raw_key).hexdigest(),
    }


@dataclass(frozen=True)
class _Failure:
    """What a dead letter says besides the value."""

    stage: str
    reason: str
    detail: str
    source: SourceRef
    raw_key: bytes | None
    failed_at: datetime
    event_id: str | None
    tenant: str | None
    context: Mapping[str, str] | None = None

    def doc(self, bounds: _Bounds) -> dict[str, Any]:
        """The dead letter without its value (None for now)."""
        context = {}
        if self.context and bounds.context:
            bounded = {
                _bounded(k, bounds.labels): _bounded(v, bounds.context)
                for k, v in list(self.context.items())[:8]
            }
            context = {"context": bounded}
        return {
            **context,
            "stage": _bounded(self.stage, bounds.labels),
            "reason": _bounded(self.reason, bounds.labels),
            "detail": _bounded(self.detail, bounds.detail),
            "event_id": _bounded(self.event_id, bounds.labels),
            "tenant": _bounded(self.tenant, bounds.labels),
            "source": {
                "topic": _bounded(self.source.topic, bounds.labels),
                "partition": _bounded_int(self.source.partition),
                "offset": _bounded_int(self.source.offset),
                "timestamp_ms": _bounded_int(self.source.timestamp_ms),
            },
            **_key_fields(self.raw_key, bounds.key),
            "value": None,
            "value_encoding": "none",
            "failed_at": self.failed_at.isoformat(),
        }


def _escaped_size(text: str) -> int:
    """Bytes of ``text`` inside a JSON string as dumps_compact writes it."""
    return len(dumps_compact(text)) - 2


def _prefix(raw: bytes, encoding: str, budget: int) -> tuple[str, int]:
    """The longest prefix of ``raw`` (that we find) whose text in ``encoding`` takes at
    most ``budget`` bytes inside a JSON string, and how many bytes of ``raw`` it holds.

    UTF-8 is cut on a character boundary. A first cut at ``budget`` bytes, a second
    scaled by how much escaping grew the first; the third cannot miss: every byte cut
    off takes at least one byte of its escaped form with it."""
    if encoding == "base64":
        n = min(len(raw), max(0, budget) // 4 * 3)
        return base64.b64encode(raw[:n]).decode(), n
    n = min(len(raw), budget)
    for attempt in range(3):
        text = raw[: max(0, n)].decode("utf-8", "ignore")
        size = _escaped_size(text)
        if size <= budget:
            return text, len(text.encode())
        n = n * budget // size if attempt == 0 else n - (size - budget)
    return "", 0


def _truncated(doc: dict[str, Any], raw: bytes, max_bytes: int) -> bytes | None:
    """The dead letter with the value's prefix that fits ``max_bytes``; None if even
    the other fields do not fit."""
    encoding = _encoding_of(raw)
    doc.update(
        value="",
        value_encoding=encoding,
        value_is_prefix=True,
        value_prefix_bytes=len(raw),  # as many digits as the final count, or more
        truncated=True,
        original_size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
    )
    budget = max_bytes - len(dumps_compact(doc))
    if budget < 0:
        return None
    text, n = _prefix(raw, encoding, budget)
    doc.update(value=text, value_prefix_bytes=n)
    encoded = dumps_compact(doc)
    if len(encoded) > max_bytes:  # cannot happen (see _prefix); keep the promise anyway
        doc.update(value="", value_prefix_bytes=0)
        encoded = dumps_compact(doc)
    return encoded


def _whole(doc: dict[str, Any], raw: bytes | None, max_bytes: int) -> bytes | None:
    """The dead letter with the whole value, if it fits."""
    if raw is not None and len(raw) > max_bytes:  # escaped, a value only grows
        return None
    doc["value"], doc["value_encoding"] = _encode(raw)
    encoded = dumps_compact(doc)
    return encoded if len(encoded) <= max_bytes else None


def dead_letter_record(
    stage: str,
    reason: str,
    detail: str,
    source: SourceRef,
    raw_key: bytes | None,
    raw_value: bytes | None,
    failed_at: datetime,
    event_id: str | None = None,
    tenant: str | None = None,
    max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES,
    context: Mapping[str, str] | None = None,
    record_key: bytes | None = None,
    partition: int | None = None,
) -> OutRecord:
    """The original bytes with why, where and when they failed; never raises.

    The serialized value is at most ``max_bytes`` (which must be at least
    :data:`MIN_DEADLETTER_MAX_BYTES`, else ValueError). When the whole value does not
    fit, the dead letter holds its first bytes (``value_is_prefix``,
    ``value_prefix_bytes``; ``value_encoding`` as for the whole value) with
    ``truncated``, ``original_size`` and ``sha256`` of the original value. The detail
    and labels are cut (tighter if a small ``max_bytes`` needs it); a key over
    :data:`MAX_KEY_BYTES` is kept as its prefix (in the document with
    ``key_truncated``, ``key_size``, ``key_sha256``; as the record's key). ``context``
    (a few named texts, e.g. the LLM's raw answers) is kept cut to 4 KiB a value, and
    dropped when a small ``max_bytes`` needs the room."""
    if max_bytes < MIN_DEADLETTER_MAX_BYTES:
        raise ValueError(f"max_bytes must be at least {MIN_DEADLETTER_MAX_BYTES}")
    failure = _Failure(stage, reason, detail, source, raw_key, failed_at, event_id, tenant, context)
    # the record's key: ``record_key`` (see dead_letter_key), else the original's
    record_key = record_key if record_key is not None else (raw_key or b"")[:MAX_KEY_BYTES]
    for bounds in (_USUAL, _TIGHT):
        encoded = _whole(failure.doc(bounds), raw_value, max_bytes)
        if encoded is None and raw_value is not None:
            encoded = _truncated(failure.doc(bounds), raw_value, max_bytes)
        if encoded is not None:
            return OutRecord(record_key, encoded, partition)
    # Not reached: tight fields take under 3 KiB. A last resort that surely fits:
    tight = replace(failure, detail="", raw_key=None, event_id=None, tenant=None, context=None)
    return OutRecord(record_key, dumps_compact(tight.doc(_TIGHT)), partition)
