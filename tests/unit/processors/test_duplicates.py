"""peek and screen: a duplicate's identity read without parsing its body."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from processors.core.duplicates import Identity, peek, screen
from processors.core.events import EventType, new_event
from processors.core.state import MemoryState, memory_key

T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def value(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "schema": "agentmem.memory/v1",
        "event_id": "e1",
        "type": "memory.add",
        "tenant": "acme",
        "memory_id": "m-1",
        "content": "likes tea",
        "vector": [0.25] * 384,
        "metadata": {"nested": {"deep": [1, 2, {"x": "y"}]}},
        "occurred_at": "2024-01-01T08:00:00Z",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_peek_reads_the_identity_of_a_valid_event() -> None:
    identity = peek(value(), b"acme")
    assert identity == Identity("e1", "acme", "memory.add", "m-1", T0)
    assert identity.key == "acme/m-1"


def test_peek_resolves_an_adds_memory_id_as_the_event_does() -> None:
    event = new_event(EventType.ADD, "acme", content="x", event_id="e7", occurred_at=T0)
    identity = peek(event.to_json(), b"acme")
    assert identity is not None
    assert identity.memory_id == event.resolved_memory_id
    assert identity.occurred_at == event.occurred_at


def test_peek_reads_a_timestamp_without_offset_as_utc() -> None:
    identity = peek(value(occurred_at="2024-01-01T08:00:00"), b"acme")
    assert identity is not None and identity.occurred_at == T0


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (None, b"acme"),
        (b"", b"acme"),
        (b"not json", b"acme"),
        (b"[1, 2]", b"acme"),
        (value()[:-5], b"acme"),  # cut short
        (value(), None),  # no record key
        (value(), b"other"),  # the key is not the tenant
        (value(tenant="a/b"), b"a/b"),  # not a tenant name
        (value(tenant=None), b"acme"),
        (value(event_id=None), b"acme"),
        (value(event_id=""), b"acme"),
        (value(event_id="x" * 129), b"acme"),
        (value(event_id=5), b"acme"),  # a field of another type
        (value(type="memory.erase_tenant", memory_id=None), b"acme"),
        (value(type="memory.unknown"), b"acme"),
        (value(type=None), b"acme"),
        (value(type="memory.update", memory_id=None), b"acme"),  # needs a memory id
        (value(memory_id="has/slash"), b"acme"),
        (value(schema="agentmem.memory/v2"), b"acme"),
        (value(occurred_at="yesterday"), b"acme"),
        (value(occurred_at=12), b"acme"),
        # nesting past msgspec's depth raises RecursionError there: never out of peek
        (value()[:-1] + b', "metadata": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}", b"acme"),
        (b"[" * 5000 + b"]" * 5000, b"acme"),
    ],
)
def test_peek_leaves_whatever_needs_judging_to_the_full_path(
    raw: bytes | None, key: bytes | None
) -> None:
    assert peek(raw, key) is None


def test_peek_reads_the_last_of_repeated_keys_as_the_parser_does() -> None:
    raw = b'{"event_id": "e1", "event_id": "e2", "type": "memory.add", "tenant": "acme"}'
    identity = peek(raw, b"acme")
    assert identity is not None and identity.event_id == "e2"


def _identity(event_id: str, tenant: str = "acme", memory_id: str = "m-1") -> Identity:
    return Identity(event_id, tenant, "memory.add", memory_id, None)


def _seen(*event_ids: str, position: int = -1) -> MemoryState:
    return MemoryState(version=1, content="x", content_hash="h", event_ids=event_ids,
                       position=position)  # fmt: skip


def test_screen_takes_out_the_events_their_memory_remembers() -> None:
    states = {memory_key("acme", "m-1"): _seen("e1", "e2"), memory_key("bob", "m-1"): _seen("b1")}
    identities = [
        _identity("e1"),
        _identity("e3"),  # new for its memory
        _identity("b1", "bob"),
        _identity("e9", memory_id="m-404"),  # a memory never seen
    ]
    screened = screen(identities, lambda index, key: states.get(key), [10, 11, 12, 13])
    assert screened.duplicates == [(0, identities[0]), (2, identities[2])]
    assert screened.rest == [1, 3]


def test_screen_knows_a_replayed_position_too() -> None:
    states = {memory_key("acme", "m-1"): _seen("e1", position=20)}
    screened = screen([_identity("e0")], lambda index, key: states.get(key), [20])
    assert screened.duplicates == [(0, _identity("e0"))]


def test_screen_leaves_an_event_after_one_of_its_tenant_to_the_plan() -> None:
    states = {memory_key("acme", "m-1"): _seen("e1"), memory_key("bob", "m-1"): _seen("b1")}
    identities = [_identity("e5", memory_id="m-2"), _identity("e1"), _identity("b1", "bob")]
    screened = screen(identities, lambda index, key: states.get(key), [1, 2, 3])
    assert screened.duplicates == [(2, identities[2])]
    assert screened.rest == [0, 1]


def test_screen_leaves_everything_after_an_unreadable_event_to_the_plan() -> None:
    states = {memory_key("acme", "m-1"): _seen("e1"), memory_key("bob", "m-1"): _seen("b1")}
    identities = [_identity("e1"), None, _identity("b1", "bob"), _identity("e1")]
    looked_up: list[int] = []

    def lookup(index: int, key: str) -> MemoryState | None:
        looked_up.append(index)
        return states.get(key)

    screened = screen(identities, lookup, [1, 2, 3, 4])
    assert screened.duplicates == [(0, identities[0])]
    assert screened.rest == [1, 2, 3]
    assert looked_up == [0]
