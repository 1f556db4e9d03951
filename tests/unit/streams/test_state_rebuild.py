"""states_of: memory_state recomputed from the log alone, by the index stage's rules."""

from __future__ import annotations

from processors.core.events import EventType, new_event
from processors.core.state import content_hash
from processors.core.validation import Limits
from streams.service.state_rebuild import states_of

LIMITS = Limits(max_content_bytes=1024, max_metadata_bytes=1024, vector_dim=4, max_event_bytes=4096)


def record(
    offset: int, type_: EventType, memory: str, content: str | None = None
) -> tuple[int, bytes, bytes, int]:
    event = new_event(type_, "acme", memory_id=memory, event_id=f"e{offset}", content=content)
    return offset, b"acme", event.to_json(), 1_700_000_000_000 + offset


def test_states_follow_the_rules_and_record_positions() -> None:
    records = [
        record(0, EventType.ADD, "a", "one"),
        record(1, EventType.UPDATE, "a", "two"),
        (2, b"acme", b"not json", None),  # dead-lettered by the stage: no state
        record(3, EventType.UPDATE, "ghost", "refused"),  # refused: a placeholder
        record(4, EventType.ADD, "b", "bee"),
        record(5, EventType.ERASE, "b"),
        (6, b"other-tenant", record(7, EventType.ADD, "c", "c")[2], None),  # wrong key
    ]
    states = states_of(records, LIMITS)
    assert set(states) == {"acme/a", "acme/ghost", "acme/b"}
    a = states["acme/a"]
    assert (a.version, a.content, a.content_hash, a.position) == (2, "two", content_hash("two"), 1)
    assert a.event_ids == ("e0", "e1")
    assert (states["acme/ghost"].version, states["acme/ghost"].position) == (0, 3)
    b = states["acme/b"]
    assert (b.version, b.erased, b.content, b.position) == (2, True, None, 5)


def test_the_batching_of_a_replay_does_not_change_its_states() -> None:
    records = [
        record(i, EventType.ADD if i == 0 else EventType.UPDATE, "m", f"v{i}") for i in range(4500)
    ]
    states = states_of(records, LIMITS)
    assert (states["acme/m"].version, states["acme/m"].position) == (4500, 4499)


def test_a_replayed_tenant_erasure_erases_what_earlier_chunks_left() -> None:
    records = [record(0, EventType.ADD, "a", "one"), record(1, EventType.ADD, "b", "two")]
    erasure = new_event(EventType.ERASE_TENANT, "acme", event_id="t2")
    records.append((2, b"acme", erasure.to_json(), 1_700_000_000_002))
    records.append(record(3, EventType.ADD, "c", "three"))
    # the erasure in a chunk of its own: the memories it erases come from the states
    # the earlier chunks left, not from its own chunk
    for batch in (1, 4):
        states = states_of(records, LIMITS, batch=batch)
        assert states["acme/a"].erased and states["acme/b"].erased
        assert states["acme/c"].live
