"""History, ack and dead-letter records."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from processors.core.events import EventType, MemoryEvent, dumps_compact, new_event
from processors.core.plan import Applied, Kind, decide
from processors.core.records import (
    DEFAULT_DEADLETTER_MAX_BYTES,
    MAX_KEY_BYTES,
    MIN_DEADLETTER_MAX_BYTES,
    OutRecord,
    SourceRef,
    ack_record,
    dead_letter_record,
    history_key,
    history_records,
)
from processors.core.state import MemoryState, memory_key

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


# -- records that can always be built ---------------------------------------------------

SOURCE = SourceRef("memory.events", 1, 99, 1704096000000)
CLASSIC_FIELDS = [
    "stage",
    "reason",
    "detail",
    "event_id",
    "tenant",
    "source",
    "key",
    "key_encoding",
    "value",
    "value_encoding",
    "failed_at",
]


def dead(
    value: bytes | None, key: bytes | None = b"acme", max_bytes: int | None = None, **kw: Any
) -> tuple[OutRecord, dict[str, Any]]:
    args: dict[str, Any] = {} if max_bytes is None else {"max_bytes": max_bytes}
    record = dead_letter_record(
        kw.pop("stage", "validate"),
        kw.pop("reason", "event_too_large"),
        kw.pop("detail", "too big"),
        SOURCE,
        key,
        value,
        T0,
        **kw,
        **args,
    )
    assert record.value is not None
    assert len(record.value) <= (max_bytes or DEFAULT_DEADLETTER_MAX_BYTES)
    return record, value_of(record)


def check_truncated(doc: dict[str, Any], original: bytes) -> bytes:
    """The truncation fields are right; returns the prefix as bytes."""
    assert doc["truncated"] is True
    assert doc["value_is_prefix"] is True
    assert doc["original_size"] == len(original)
    assert doc["sha256"] == hashlib.sha256(original).hexdigest()
    if doc["value_encoding"] == "base64":
        prefix = base64.b64decode(doc["value"])
    else:
        assert doc["value_encoding"] == "utf-8"
        prefix = doc["value"].encode()
    assert doc["value_prefix_bytes"] == len(prefix)
    assert original.startswith(prefix)
    return prefix


def test_non_truncated_dead_letter_keeps_its_format() -> None:
    _, doc = dead(b'{"content": "x"}')
    assert list(doc) == CLASSIC_FIELDS
    assert doc["value"] == '{"content": "x"}'


def test_dead_letter_of_a_value_of_one_and_a_half_mib_is_truncated() -> None:
    original = b'{"content": "' + "thé ".encode() * (3 * 512 * 1024 // 5) + b'"}'
    record, doc = dead(original)
    prefix = check_truncated(doc, original)
    assert len(prefix) > 0.95 * DEFAULT_DEADLETTER_MAX_BYTES  # as much as fits
    assert record.key == b"acme"
    assert [f for f in CLASSIC_FIELDS if f not in doc] == []
    assert doc["reason"] == "event_too_large"


def test_dead_letter_of_metadata_that_escaping_doubles_is_truncated() -> None:
    # ~800 KB raw; every quote is escaped again inside the dead letter: ~1.6 MB.
    original = json.dumps(
        {"event_id": "e1", "type": "memory.add", "tenant": "acme", "metadata": {"q": '"' * 400_000}}
    ).encode()
    assert len(original) < DEFAULT_DEADLETTER_MAX_BYTES < len(dumps_compact(original.decode()))
    _, doc = dead(original)
    prefix = check_truncated(doc, original)
    assert len(prefix) > 0.4 * DEFAULT_DEADLETTER_MAX_BYTES


def test_dead_letter_cuts_utf8_on_a_character_boundary() -> None:
    original = "é".encode() * 40_000  # 80,000 bytes of two-byte characters
    for max_bytes in range(MIN_DEADLETTER_MAX_BYTES, MIN_DEADLETTER_MAX_BYTES + 8):
        _, doc = dead(original, max_bytes=max_bytes)
        prefix = check_truncated(doc, original)
        assert len(prefix) % 2 == 0


@pytest.mark.parametrize("max_bytes", [MIN_DEADLETTER_MAX_BYTES, 100_000, 900 * 1024])
@pytest.mark.parametrize(
    "unit", [b"\x01", b'"', b"\\", "\u00e9".encode(), b"a", b"\x01a\xe2\x82\xac"]
)
def test_dead_letter_fits_whatever_the_escaping(max_bytes: int, unit: bytes) -> None:
    original = unit * (2 * max_bytes // len(unit))
    _, doc = dead(original, max_bytes=max_bytes)
    check_truncated(doc, original)


def test_dead_letter_of_a_huge_non_utf8_value_is_base64_prefix() -> None:
    original = bytes(range(256)) * 6 * 1024  # 1.5 MiB, not UTF-8
    _, doc = dead(original)
    assert doc["value_encoding"] == "base64"
    prefix = check_truncated(doc, original)
    assert len(prefix) > 0.7 * DEFAULT_DEADLETTER_MAX_BYTES


def test_dead_letter_bounds_a_huge_key() -> None:
    key = b"k" * (2 * 1024 * 1024)
    record, doc = dead(b"{}", key=key)
    assert record.key == key[:MAX_KEY_BYTES]
    assert doc["key"] == "k" * MAX_KEY_BYTES
    assert doc["key_encoding"] == "utf-8"
    assert doc["key_truncated"] is True
    assert doc["key_size"] == len(key)
    assert doc["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert doc["value"] == "{}"
    assert "truncated" not in doc


def test_dead_letter_bounds_a_huge_binary_key_and_value() -> None:
    key = b"\xff" * 100_000
    original = b"\xfe" * (2 * 1024 * 1024)
    record, doc = dead(original, key=key)
    assert record.key == key[:MAX_KEY_BYTES]
    assert base64.b64decode(doc["key"]) == key[:MAX_KEY_BYTES]
    assert doc["key_encoding"] == "base64"
    check_truncated(doc, original)


def test_dead_letter_key_of_exactly_one_kib_is_kept_whole() -> None:
    key = b"k" * MAX_KEY_BYTES
    record, doc = dead(b"{}", key=key)
    assert record.key == key
    assert list(doc) == CLASSIC_FIELDS


def test_dead_letter_bounds_detail_and_labels() -> None:
    _, doc = dead(b"{}", detail="d" * 5_000_000, reason="r" * 100_000, event_id="e" * 10_000)
    assert doc["detail"].startswith("ddd")
    assert doc["detail"].endswith("(5000000 chars)")
    assert len(doc["detail"]) < 1100
    assert len(doc["reason"]) < 300
    assert len(doc["event_id"]) < 300
    assert doc["value"] == "{}"


@pytest.mark.parametrize("max_bytes", [MIN_DEADLETTER_MAX_BYTES, 8 * 1024, 16 * 1024])
@pytest.mark.parametrize("value", [None, b"{}", b"\x00" * 100_000])
def test_small_dead_letter_cuts_every_field_to_fit(max_bytes: int, value: bytes | None) -> None:
    # every field as long as it gets and as costly to escape as a character can be
    worst = "\x00" * 1_000_000
    record = dead_letter_record(
        worst,
        worst,
        worst,
        SourceRef(worst, 2**80, -(2**80), 10**5000),
        b"\x01" * 1_000_000,
        value,
        T0,
        worst + "\ud800",
        worst,
        max_bytes=max_bytes,
    )
    assert record.value is not None
    assert len(record.value) <= max_bytes
    assert record.key == b"\x01" * MAX_KEY_BYTES
    doc = value_of(record)
    assert doc["key_truncated"] is True
    assert doc["key_size"] == 1_000_000
    assert doc["detail"].endswith("(1000000 chars)")
    if value is None:
        assert doc["value"] is None
        assert doc["value_encoding"] == "none"
    elif doc.get("truncated"):
        check_truncated(doc, value)
    else:
        assert doc["value"] == value.decode()


def test_dead_letter_with_surrogate_event_id_is_valid_json() -> None:
    record, doc = dead(b"{}", event_id="bad \ud800 id", tenant="\udcff")
    assert record.value is not None
    assert b"\\ud800" in record.value
    assert doc["event_id"] == "bad \ud800 id"  # the escape decodes back to what was given
    assert doc["tenant"] == "\udcff"


def test_dead_letter_refuses_a_max_bytes_too_small_to_hold_its_fields() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        dead(b"{}", max_bytes=MIN_DEADLETTER_MAX_BYTES - 1)


def test_ack_and_history_with_surrogates_do_not_raise() -> None:
    record = ack_record("e\ud800", "t\ud800", "m", 1, "applied", SOURCE, None, T0)
    assert record.key == b"t\\ud800"
    assert value_of(record)["event_id"] == "e\ud800"
    (c,) = history_of(ev(EventType.ADD, "e1", content="fine"))
    # parse_event lets no surrogate through; the record does not rely on it
    after = dataclasses.replace(c.after, content="bad \ud800 text", metadata={"\udc00": 1})
    c = dataclasses.replace(c, key="acme/m\ud800", after=after)
    (history,) = history_records(c, PRODUCED_AT_MS)
    assert history.key == b"acme/m\\ud800/1"
    assert value_of(history)["after"] == "bad \ud800 text"
    assert value_of(history)["metadata"] == {"\udc00": 1}


# -- dumps_compact ----------------------------------------------------------------------


def test_dumps_compact_keeps_non_ascii_text_compact() -> None:
    assert dumps_compact({"k": "thé"}) == '{"k":"thé"}'.encode()


def test_dumps_compact_escapes_lone_surrogates() -> None:
    obj = {"bad \ud800": ["x\udfff", "thé", "\ud83c\udf75"]}
    out = dumps_compact(obj)
    assert out == b'{"bad \\ud800":["x\\udfff","th\xc3\xa9","\\ud83c\\udf75"]}'
    out.decode("utf-8")  # strict UTF-8
    assert json.loads(out) == {"bad \ud800": ["x\udfff", "thé", "\U0001f375"]}


def test_dumps_compact_survives_what_json_refuses() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    deep: list[Any] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    huge = 10**5000
    assert json.loads(dumps_compact({"n": huge}))["n"] == hex(huge)
    assert json.loads(dumps_compact({huge: 1})) == {hex(huge): 1}
    assert json.loads(dumps_compact(cycle)) == ["<cycle>"]
    assert b"<nested too deep>" in dumps_compact(deep)
    assert json.loads(dumps_compact({"b": Broken(), "n": 1})) == {
        "b": "<unprintable Broken>",
        "n": 1,
    }
    assert json.loads(dumps_compact({(1, 2): T0})) == {"(1, 2)": str(T0)}


def test_dead_letter_context_is_kept_cut_and_dropped_when_small() -> None:
    source = SourceRef("memory.enrich", 0, 3)
    raw_answer = '{"results": [' + "x" * 10_000
    context = {"facts_answer": raw_answer, "decision_answer": "not json"}
    record = dead_letter_record(
        "enrich", "invalid_answer", "d", source, b"t", b"{}", T0, context=context
    )
    doc = json.loads(record.value)
    assert doc["context"]["decision_answer"] == "not json"
    assert doc["context"]["facts_answer"].startswith('{"results": [xxx')
    assert len(doc["context"]["facts_answer"]) < 4200
    plain = json.loads(dead_letter_record("enrich", "r", "d", source, b"t", b"{}", T0).value)
    assert "context" not in plain
    small = dead_letter_record(
        "enrich", "r", "d", source, b"t", b"v" * 20_000, T0, max_bytes=8192, context=context
    )
    assert len(small.value) <= 8192
