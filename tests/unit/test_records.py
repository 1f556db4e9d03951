"""History, ack and dead-letter records."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from processors.events import EventType, MemoryEvent, new_event
from processors.plan import Applied, Kind, decide
from processors.records import (
    OutRecord,
    SourceRef,
    ack_record,
    dead_letter_record,
    history_key,
    history_records,
)
from processors.state import MemoryState, memory_key

T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
PRODUCED_AT_MS = 1_767_225_602_000
KEY = memory_key("acme", "m-1")


def ev(type_: EventType, event_id: str, **kw: Any) -> MemoryEvent:
    return new_event(type_, "acme", memory_id="m-1", event_id=event_id, occurred_at=T0, **kw)


def change(event: MemoryEvent, before: MemoryState | None) -> Applied:
    outcome = decide(0, event, before, T0)
    assert isinstance(outcome, Applied), outcome
    return outcome


def value_of(record: OutRecord) -> dict[str, Any]:
    assert record.value is not None
    doc = json.loads(record.value)
    assert isinstance(doc, dict)
    return doc


def history_of(*events: MemoryEvent) -> list[Applied]:
    """Apply events one after another; return each change."""
    changes: list[Applied] = []
    state: MemoryState | None = None
    for event in events:
        c = change(event, state)
        changes.append(c)
        state = c.after
    return changes


# -- history_key ----------------------------------------------------------------------


def test_history_key_is_deterministic() -> None:
    assert history_key(KEY, 3) == "acme/m-1/3"
    assert history_key(KEY, 3) == history_key(memory_key("acme", "m-1"), 3)
    assert history_key(KEY, 3) != history_key(KEY, 4)
    assert history_key(KEY, 3) != history_key(memory_key("acme", "m-2"), 3)


# -- history_records ------------------------------------------------------------------


def test_history_of_add() -> None:
    (c,) = history_of(ev(EventType.ADD, "e1", content="v1", agent_id="ag", metadata={"k": 1}))
    records = history_records(c, PRODUCED_AT_MS)
    assert len(records) == 1
    assert records[0].key == b"acme/m-1/1"
    assert value_of(records[0]) == {
        "tenant": "acme",
        "memory_id": "m-1",
        "version": 1,
        "type": "memory.add",
        "change": "upsert",
        "event_id": "e1",
        "agent_id": "ag",
        "run_id": None,
        "before": None,
        "after": "v1",
        "metadata": {"k": 1},
        "occurred_at": T0.isoformat(),
        "produced_at_ms": PRODUCED_AT_MS,
    }


def test_history_of_update_has_before_and_after() -> None:
    _, upd = history_of(
        ev(EventType.ADD, "e1", content="v1"), ev(EventType.UPDATE, "e2", content="v2")
    )
    (record,) = history_records(upd, PRODUCED_AT_MS)
    assert record.key == b"acme/m-1/2"
    value = value_of(record)
    assert value["before"] == "v1"
    assert value["after"] == "v2"
    assert value["version"] == 2
    assert value["type"] == "memory.update"
    assert value["change"] == "upsert"


def test_history_of_delete() -> None:
    _, dele = history_of(ev(EventType.ADD, "e1", content="v1"), ev(EventType.DELETE, "e2"))
    (record,) = history_records(dele, PRODUCED_AT_MS)
    assert record.key == b"acme/m-1/2"
    value = value_of(record)
    assert value["change"] == "delete"
    assert value["type"] == "memory.delete"
    assert value["before"] == "v1"
    assert value["after"] is None


def test_history_without_occurred_at() -> None:
    event = new_event(EventType.ADD, "acme", memory_id="m-1", content="x", event_id="e1")
    event = event.model_copy(update={"occurred_at": None})
    records = history_records(change(event, None), PRODUCED_AT_MS)
    assert value_of(records[0])["occurred_at"] is None


def test_history_of_erase_tombstones_every_earlier_version() -> None:
    changes = history_of(
        ev(EventType.ADD, "e1", content="secret one", metadata={"ssn": "123"}),
        ev(EventType.UPDATE, "e2", content="secret two"),
        ev(EventType.DELETE, "e3"),
        ev(EventType.ERASE, "e4"),
    )
    erase = changes[-1]
    assert erase.kind is Kind.ERASE
    records = history_records(erase, PRODUCED_AT_MS)
    assert [r.key for r in records] == [b"acme/m-1/1", b"acme/m-1/2", b"acme/m-1/3", b"acme/m-1/4"]
    assert [r.value for r in records[:3]] == [None, None, None]
    value = value_of(records[3])
    assert value["change"] == "erase"
    assert value["type"] == "memory.erase"
    assert value["version"] == 4
    assert value["event_id"] == "e4"
    assert value["before"] is None
    assert value["after"] is None
    assert value["metadata"] == {}
    # nothing of what the memory held survives in the erase record
    assert records[3].value is not None
    assert b"secret" not in records[3].value
    assert b"123" not in records[3].value


def test_history_of_erase_covers_every_earlier_history_key() -> None:
    changes = history_of(
        ev(EventType.ADD, "e1", content="a"),
        ev(EventType.UPDATE, "e2", content="b"),
        ev(EventType.ERASE, "e3"),
    )
    earlier = {r.key for c in changes[:-1] for r in history_records(c, PRODUCED_AT_MS)}
    tombstones = {r.key for r in history_records(changes[-1], PRODUCED_AT_MS) if r.value is None}
    assert tombstones == earlier


# -- ack_record -----------------------------------------------------------------------


def test_ack_record_fields() -> None:
    indexed_at = datetime(2024, 1, 1, 8, 0, 1, 500000, tzinfo=UTC)
    source = SourceRef("memory.events", 2, 41, 1704096000123)
    record = ack_record("e1", "acme", "m-1", 3, "applied", source, T0, indexed_at)
    assert record.key == b"acme"
    assert value_of(record) == {
        "event_id": "e1",
        "tenant": "acme",
        "memory_id": "m-1",
        "version": 3,
        "outcome": "applied",
        "produced_at_ms": 1704096000123,
        "occurred_at": T0.isoformat(),
        "indexed_at": indexed_at.isoformat(),
        "indexed_at_ms": 1704096001500,
        "partition": 2,
        "offset": 41,
    }


def test_ack_record_for_noop_without_times() -> None:
    source = SourceRef("memory.events", 0, 7)
    record = ack_record("e1", "acme", "m-1", None, "noop:unchanged", source, None, T0)
    value = value_of(record)
    assert value["version"] is None
    assert value["outcome"] == "noop:unchanged"
    assert value["occurred_at"] is None
    assert value["produced_at_ms"] is None


# -- dead_letter_record ---------------------------------------------------------------


def test_dead_letter_with_utf8_value() -> None:
    source = SourceRef("memory.events", 1, 99, 1704096000000)
    record = dead_letter_record(
        "validate",
        "invalid_json",
        "value is not JSON",
        source,
        b"acme",
        '{"content": "caf\u00e9",'.encode(),
        T0,
        event_id="e1",
        tenant="acme",
    )
    assert record.key == b"acme"
    value = value_of(record)
    assert value["stage"] == "validate"
    assert value["reason"] == "invalid_json"
    assert value["detail"] == "value is not JSON"
    assert value["event_id"] == "e1"
    assert value["tenant"] == "acme"
    assert value["source"] == {
        "topic": "memory.events",
        "partition": 1,
        "offset": 99,
        "timestamp_ms": 1704096000000,
    }
    assert value["value"] == '{"content": "caf\u00e9",'
    assert value["value_encoding"] == "utf-8"
    assert value["key"] == "acme"
    assert value["key_encoding"] == "utf-8"
    assert value["failed_at"] == T0.isoformat()


def test_dead_letter_with_binary_value_is_base64() -> None:
    original = b"\xff\xfe\x00binary\x80"
    key = b"\xc3\x28"  # invalid UTF-8 too
    source = SourceRef("memory.events", 3, 5)
    record = dead_letter_record("validate", "invalid_utf8", "d", source, key, original, T0)
    assert record.key == key
    value = value_of(record)
    assert value["value_encoding"] == "base64"
    assert base64.b64decode(value["value"]) == original
    assert value["key_encoding"] == "base64"
    assert base64.b64decode(value["key"]) == key
    assert value["source"]["topic"] == "memory.events"
    assert value["source"]["partition"] == 3
    assert value["source"]["offset"] == 5
    assert value["event_id"] is None
    assert value["tenant"] is None


def test_dead_letter_without_key_or_value() -> None:
    source = SourceRef("memory.events", 0, 0)
    record = dead_letter_record("validate", "empty_value", "d", source, None, None, T0)
    assert record.key == b""
    value = value_of(record)
    assert value["value"] is None
    assert value["value_encoding"] == "none"
    assert value["key"] is None
    assert value["key_encoding"] == "none"


def test_source_ref_str() -> None:
    assert str(SourceRef("memory.events", 2, 17)) == "memory.events[2]@17"


def test_reprocessing_rewrites_a_byte_identical_history_record() -> None:
    c = change(ev(EventType.ADD, "e-1", content="first"), None)
    assert history_records(c, PRODUCED_AT_MS) == history_records(c, PRODUCED_AT_MS)
