"""The records the index stage writes: history changes, acks and dead letters. Pure."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.events import dumps_compact
from processors.plan import Applied, Kind


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
            OutRecord(history_key(change.key, v).encode(), None)
            for v in range(1, before.version + 1)
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
    records.append(OutRecord(history_key(change.key, after.version).encode(), dumps_compact(value)))
    return records


def ack_record(
    event_id: str,
    tenant: str,
    memory_id: str,
    version: int | None,
    outcome: str,
    source: SourceRef,
    occurred_at: datetime | None,
    indexed_at: datetime,
) -> OutRecord:
    """The acknowledgement on ``memory.indexed``: when the event's effect became searchable."""
    value = {
        "event_id": event_id,
        "tenant": tenant,
        "memory_id": memory_id,
        "version": version,
        "outcome": outcome,
        "produced_at_ms": source.timestamp_ms,
        "occurred_at": occurred_at.isoformat() if occurred_at else None,
        "indexed_at": indexed_at.isoformat(),
        "indexed_at_ms": int(indexed_at.timestamp() * 1000),
        "partition": source.partition,
        "offset": source.offset,
    }
    return OutRecord(tenant.encode(), dumps_compact(value))


def _encode(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


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
) -> OutRecord:
    """The original bytes with why, where and when they failed."""
    value, value_encoding = _encode(raw_value)
    key, key_encoding = _encode(raw_key)
    doc = {
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "event_id": event_id,
        "tenant": tenant,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp_ms": source.timestamp_ms,
        },
        "key": key,
        "key_encoding": key_encoding,
        "value": value,
        "value_encoding": value_encoding,
        "failed_at": failed_at.isoformat(),
    }
    return OutRecord(raw_key or b"", dumps_compact(doc))
