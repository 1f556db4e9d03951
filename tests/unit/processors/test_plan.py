"""decide / plan_batch: what each event does to a memory's state."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.core.events import MemoryEvent, new_event
from processors.core.plan import Applied, BatchPlan, Kind, NoOp, Refused, decide, plan_batch
from processors.core.state import MemoryState, content_hash, memory_key

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
KEY = memory_key("acme", "m-1")


def ev(type_: str, event_id: str, memory_id: str | None = "m-1", **kw: Any) -> MemoryEvent:
    return new_event(type_, "acme", memory_id=memory_id, event_id=event_id, occurred_at=T0, **kw)


def add(event_id: str, content: str = "likes tea", **kw: Any) -> MemoryEvent:
    return ev("memory.add", event_id, content=content, **kw)


def update(event_id: str, content: str, **kw: Any) -> MemoryEvent:
    return ev("memory.update", event_id, content=content, **kw)


def delete(event_id: str) -> MemoryEvent:
    return ev("memory.delete", event_id)


def erase(event_id: str) -> MemoryEvent:
    return ev("memory.erase", event_id)


class DictLookup:
    """A dict-backed state lookup that records the keys asked for."""

    def __init__(self, states: dict[str, MemoryState] | None = None) -> None:
        self.states = dict(states or {})
        self.asked: list[str] = []

    def __call__(self, key: str) -> MemoryState | None:
        self.asked.append(key)
        return self.states.get(key)

    def apply(self, plan: BatchPlan) -> None:
        for change in plan.final_changes():
            self.states[change.key] = change.after


def run(events: Sequence[MemoryEvent], lookup: DictLookup, now: datetime = T0) -> BatchPlan:
    plan = plan_batch(list(enumerate(events)), lookup, now)
    lookup.apply(plan)
    return plan


def applied(outcome: Applied | NoOp | Refused) -> Applied:
    assert isinstance(outcome, Applied), outcome
    return outcome


def noop(outcome: Applied | NoOp | Refused) -> NoOp:
    assert isinstance(outcome, NoOp), outcome
    return outcome


def live_state(**kw: Any) -> MemoryState:
    fields: dict[str, Any] = {
        "version": 1,
        "content": "likes tea",
        "content_hash": content_hash("likes tea"),
        "created_at": T0.isoformat(),
        "agent_id": "agent-1",
        "run_id": "run-1",
        "metadata": {"topic": "drinks"},
        "event_ids": ("e-old",),
    }
    fields.update(kw)
    return MemoryState(**fields)


# -- add ------------------------------------------------------------------------------


def test_add_new_memory_is_upsert_version_1() -> None:
    event = add("e1", agent_id="agent-1", metadata={"k": "v"})
    change = applied(decide(0, event, None, T0))
    assert change.kind is Kind.UPSERT
    assert change.key == KEY
    assert change.index == 0
    assert change.before is None
    after = change.after
    assert after.version == 1
    assert after.content == "likes tea"
    assert after.content_hash == content_hash("likes tea")
    assert after.live
    assert after.created_at == T0.isoformat()
    assert after.agent_id == "agent-1"
    assert after.metadata == {"k": "v"}
    assert after.event_ids == ("e1",)


def test_add_without_memory_id_uses_derived_key() -> None:
    event = add("e1", memory_id=None)
    change = applied(decide(0, event, None, T0))
    assert change.key == memory_key("acme", event.resolved_memory_id)


def test_add_same_content_on_live_memory_is_unchanged() -> None:
    outcome = noop(decide(3, add("e2"), live_state(), T1))
    assert outcome.reason == "unchanged"
    assert outcome.key == KEY
    assert outcome.index == 3


def test_add_same_content_with_new_metadata_applies() -> None:
    change = applied(decide(0, add("e2", metadata={"topic": "food"}), live_state(), T1))
    assert change.after.version == 2
    assert change.after.metadata == {"topic": "food"}


def test_add_same_content_with_vector_applies() -> None:
    change = applied(decide(0, add("e2", vector=[1.0, 0.0]), live_state(), T1))
    assert change.after.version == 2


def test_resent_event_id_is_duplicate() -> None:
    state = live_state(event_ids=("e-old", "e1"))
    # even with new content: the event already applied once
    outcome = noop(decide(0, update("e1", "other text"), state, T1))
    assert outcome.reason == "duplicate_event"


def test_duplicate_detected_after_delete_and_erase() -> None:
    lookup = DictLookup()
    run([add("e1"), delete("e2")], lookup)
    assert noop(decide(0, delete("e2"), lookup.states[KEY], T1)).reason == "duplicate_event"
    assert noop(decide(0, add("e1"), lookup.states[KEY], T1)).reason == "duplicate_event"
    run([erase("e3")], lookup)
    assert noop(decide(0, erase("e3"), lookup.states[KEY], T1)).reason == "duplicate_event"


# -- update ---------------------------------------------------------------------------


def test_update_of_missing_memory_is_refused() -> None:
    outcome = decide(4, update("e1", "new"), None, T0)
    assert isinstance(outcome, Refused)
    assert outcome.reason == "memory_not_found"
    assert outcome.index == 4
    assert outcome.event.event_id == "e1"


def test_update_of_deleted_or_erased_memory_is_refused() -> None:
    deleted = live_state(deleted=True, content=None, content_hash=None)
    erased = deleted.purged("e-erase")
    for before in (deleted, erased):
        outcome = decide(0, update("e1", "new"), before, T1)
        assert isinstance(outcome, Refused)
        assert outcome.reason == "memory_not_found"
    erased_outcome = decide(0, update("e1", "new"), erased, T1)
    assert isinstance(erased_outcome, Refused)
    assert "erased" in erased_outcome.detail


def test_update_new_version_keeps_created_at_and_carries_fields() -> None:
    before = live_state(version=3)
    change = applied(decide(0, update("e2", "likes coffee"), before, T1))
    assert change.kind is Kind.UPSERT
    assert change.before == before
    after = change.after
    assert after.version == 4
    assert after.content == "likes coffee"
    assert after.content_hash == content_hash("likes coffee")
    assert after.created_at == T0.isoformat()  # not T1
    assert after.agent_id == "agent-1"
    assert after.run_id == "run-1"
    assert after.metadata == {"topic": "drinks"}
    assert after.event_ids == ("e-old", "e2")


def test_update_overrides_given_fields() -> None:
    change = applied(
        decide(0, update("e2", "x", agent_id="agent-2", metadata={"a": 1}), live_state(), T1)
    )
    assert change.after.agent_id == "agent-2"
    assert change.after.run_id == "run-1"
    assert change.after.metadata == {"a": 1}


def test_update_same_content_is_unchanged() -> None:
    assert noop(decide(0, update("e2", "likes tea"), live_state(), T1)).reason == "unchanged"


# -- delete ---------------------------------------------------------------------------


def test_delete_live_then_again_then_unknown() -> None:
    before = live_state(version=2)
    change = applied(decide(0, delete("e2"), before, T1))
    assert change.kind is Kind.DELETE
    assert change.after.version == 3
    assert change.after.deleted
    assert not change.after.erased
    assert not change.after.live
    assert change.after.content is None
    assert change.after.content_hash is None
    assert change.after.event_ids == ("e-old", "e2")

    assert noop(decide(0, delete("e3"), change.after, T1)).reason == "already_deleted"
    assert noop(decide(0, delete("e4"), None, T1)).reason == "not_found"


# -- erase ----------------------------------------------------------------------------


def test_erase_purges_content() -> None:
    before = live_state(version=2)
    change = applied(decide(0, erase("e2"), before, T1))
    assert change.kind is Kind.ERASE
    after = change.after
    assert after.version == 3
    assert after.erased
    assert after.deleted
    assert after.content is None
    assert after.content_hash is None
    assert after.metadata == {}
    assert after.event_ids == ("e-old", "e2")

    assert noop(decide(0, erase("e3"), after, T1)).reason == "already_erased"
    assert noop(decide(0, erase("e4"), None, T1)).reason == "not_found"


def test_erase_of_deleted_memory_still_erases() -> None:
    lookup = DictLookup()
    run([add("e1"), delete("e2")], lookup)
    change = applied(decide(0, erase("e3"), lookup.states[KEY], T1))
    assert change.kind is Kind.ERASE
    assert change.after.version == 3


# -- re-creation ----------------------------------------------------------------------


def test_add_after_delete_recreates_with_next_version() -> None:
    lookup = DictLookup({KEY: live_state(version=1)})
    run([delete("e2")], lookup)
    plan = run([add("e3", content="likes juice")], lookup, now=T1)
    change = plan.applied[0]
    assert change.kind is Kind.UPSERT
    assert change.after.version == 3
    assert change.after.live
    assert change.after.content == "likes juice"
    # a fresh life: nothing carried from the deleted memory
    assert change.after.created_at == T1.isoformat()
    assert change.after.agent_id is None
    assert change.after.metadata == {}


def test_add_same_content_after_delete_is_not_unchanged() -> None:
    lookup = DictLookup({KEY: live_state(version=1)})
    run([delete("e2")], lookup)
    plan = run([add("e3", content="likes tea")], lookup)
    assert [a.after.version for a in plan.applied] == [3]
    assert plan.noops == []


# -- batches --------------------------------------------------------------------------


def test_events_in_a_batch_see_each_other_in_order() -> None:
    lookup = DictLookup()
    events = [
        add("e1", content="v1"),
        update("e2", "v2"),
        add("e3", content="v2"),  # same as the overlay's content -> unchanged
        delete("e4"),
        update("e5", "v3"),  # memory is deleted by now
        add("e6", content="v4"),  # re-created
        add("e1", content="v1"),  # re-sent inside the batch
    ]
    plan = plan_batch(list(enumerate(events)), lookup, T0)
    assert [(a.index, a.kind, a.after.version) for a in plan.applied] == [
        (0, Kind.UPSERT, 1),
        (1, Kind.UPSERT, 2),
        (3, Kind.DELETE, 3),
        (5, Kind.UPSERT, 4),
    ]
    assert [(n.index, n.reason) for n in plan.noops] == [(2, "unchanged"), (6, "duplicate_event")]
    assert [(r.index, r.reason) for r in plan.refused] == [(4, "memory_not_found")]
    # each change's before is the state the previous event left (no-ops and refusals
    # included: they add their event ids)
    outcomes = sorted([*plan.applied, *plan.noops, *plan.refused], key=lambda o: o.index)
    for prev, nxt in itertools.pairwise(outcomes):
        if isinstance(nxt, Applied):
            assert nxt.before == prev.after
    assert plan.states[KEY][1].event_ids == ("e1", "e2", "e3", "e4", "e5", "e6")
    # the store is asked once per key; the overlay answers the rest
    assert lookup.asked == [KEY]


def test_batch_keeps_memories_apart() -> None:
    lookup = DictLookup({memory_key("acme", "m-2"): live_state()})
    events = [add("e1", memory_id="m-1"), add("e2", memory_id="m-2"), update("e3", "x")]
    plan = plan_batch(list(enumerate(events)), lookup, T0)
    assert [(a.key, a.after.version) for a in plan.applied] == [
        (memory_key("acme", "m-1"), 1),
        (memory_key("acme", "m-1"), 2),
    ]
    assert [(n.key, n.reason) for n in plan.noops] == [(memory_key("acme", "m-2"), "unchanged")]


def test_plan_batch_uses_indexes_given() -> None:
    plan = plan_batch([(7, add("e1")), (9, update("e2", "x"))], DictLookup(), T0)
    assert [a.index for a in plan.applied] == [7, 9]


def test_final_changes_returns_last_change_per_key() -> None:
    lookup = DictLookup()
    events = [
        add("e1", memory_id="a", content="a1"),
        add("e2", memory_id="b", content="b1"),
        update("e3", "a2", memory_id="a"),
        ev("memory.delete", "e4", memory_id="b"),
        update("e5", "a3", memory_id="a"),
        add("e6", memory_id="c", content="c1"),
    ]
    plan = plan_batch(list(enumerate(events)), lookup, T0)
    finals = plan.final_changes()
    assert {f.key: (f.index, f.kind, f.after.version) for f in finals} == {
        memory_key("acme", "a"): (4, Kind.UPSERT, 3),
        memory_key("acme", "b"): (3, Kind.DELETE, 2),
        memory_key("acme", "c"): (5, Kind.UPSERT, 1),
    }
    assert len(finals) == 3
    assert next(f for f in finals if f.key.endswith("/a")).after.content == "a3"


def test_empty_batch() -> None:
    plan = plan_batch([], DictLookup(), T0)
    assert plan.applied == [] and plan.noops == [] and plan.refused == []
    assert plan.final_changes() == []


# -- log positions: a replay of the log changes nothing -----------------------------------


def replay(events: Sequence[MemoryEvent], states: dict[str, MemoryState]) -> BatchPlan:
    """``events`` planned at log offsets 0.. against ``states``, batch by batch of 7."""
    lookup = DictLookup(states)
    plan = BatchPlan()
    for start in range(0, len(events), 7):
        chunk = list(enumerate(events[start : start + 7], start=start))
        part = plan_batch(chunk, lookup, T1, lambda index: index)
        for key, (_, after) in part.states.items():
            lookup.states[key] = after
        plan.applied += part.applied
        plan.noops += part.noops
        plan.refused += part.refused
    states.clear()
    states.update(lookup.states)
    return plan


def test_every_outcome_records_its_log_position() -> None:
    events = [add("e0"), update("e1", "likes tea"), update("e2", "x", memory_id="m-2")]
    plan = plan_batch(list(enumerate(events)), DictLookup(), T0, lambda index: 100 + index)
    assert plan.states[KEY][1].position == 101  # the no-op moved it
    assert plan.states[memory_key("acme", "m-2")][1].position == 102  # a refusal too


def test_a_replay_of_more_changes_than_the_id_window_changes_nothing() -> None:
    """200 changes, then an erase: replayed from offset 0, every event is a duplicate
    (their ids left the 64-id window long ago) and the memory stays erased."""
    events = [add("e0", "v0"), *(update(f"e{i}", f"v{i}") for i in range(1, 200)), erase("x")]
    states: dict[str, MemoryState] = {}
    first = replay(events, states)
    assert len(first.applied) == 201
    erased = states[KEY]
    assert erased.erased and erased.content is None and erased.position == 200

    again = replay(events, states)
    assert again.applied == [] and again.refused == []
    assert {n.reason for n in again.noops} == {"duplicate_event"}
    assert states[KEY] == erased


def test_a_later_event_is_judged_even_if_its_position_is_unknown() -> None:
    states = {KEY: MemoryState(3, "a", content_hash("a"), position=50)}
    plan = plan_batch([(0, update("new", "b"))], DictLookup(states), T0)
    assert [a.after.version for a in plan.applied] == [4]
    assert plan.applied[0].after.position == 50  # unknown position: left as it was


# -- tenant erasure ------------------------------------------------------------------------


def erase_tenant(event_id: str, tenant: str = "acme") -> MemoryEvent:
    return new_event("memory.erase_tenant", tenant, event_id=event_id, occurred_at=T0)


def tenant_plan(events: Sequence[MemoryEvent], lookup: DictLookup, start: int = 100) -> BatchPlan:
    """The batch at offsets ``start``, ``start`` + 1, ... with the lookup's states as
    the store's."""

    def keys(tenant: str) -> list[str]:
        return sorted(k for k in lookup.states if k.startswith(f"{tenant}/"))

    plan = plan_batch(list(enumerate(events)), lookup, T0, lambda i: start + i, keys)
    for key, (_, after) in plan.states.items():
        lookup.states[key] = after
    return plan


def test_a_tenant_erasure_erases_every_memory_the_tenant_has_and_no_other() -> None:
    lookup = DictLookup(
        {
            memory_key("acme", "a"): live_state(),
            memory_key("acme", "b"): live_state(),
            memory_key("acme", "gone"): MemoryState(
                version=2, content=None, content_hash=None, erased=True, event_ids=("x",)
            ),
            memory_key("acme-2", "c"): live_state(),
        }
    )
    plan = tenant_plan([add("e1", memory_id="new"), erase_tenant("t1")], lookup)
    erased = {a.key: a for a in plan.applied if a.kind == Kind.ERASE}
    # the state's live memories and the one the batch added before it; not the erased one
    assert sorted(erased) == ["acme/a", "acme/b", "acme/new"]
    assert all(a.event.event_id == "t1" and a.after.erased for a in erased.values())
    assert erased["acme/a"].event.resolved_memory_id == "a"
    (erasure,) = plan.tenant_erasures
    assert (erasure.index, erasure.erased) == (1, 3)
    assert lookup.states["acme-2/c"].live
    assert lookup.states["acme/a"].content is None


def test_a_tenant_erasure_delivered_again_is_a_duplicate_even_after_new_memories() -> None:
    lookup = DictLookup({memory_key("acme", "a"): live_state()})
    tenant_plan([erase_tenant("t1")], lookup)
    tenant_plan([add("e2", memory_id="b")], lookup)
    again = tenant_plan([erase_tenant("t1")], lookup)
    assert again.applied == [] and again.tenant_erasures == []
    assert [n.reason for n in again.noops] == ["duplicate_event"]
    assert lookup.states["acme/b"].live


def test_a_tenant_erasure_of_a_tenant_with_nothing_is_an_erasure_of_none() -> None:
    plan = tenant_plan([erase_tenant("t1")], DictLookup())
    assert plan.applied == []
    assert [(e.index, e.erased) for e in plan.tenant_erasures] == [(0, 0)]


def test_an_add_after_a_tenant_erasure_in_the_batch_is_a_new_memory() -> None:
    lookup = DictLookup({memory_key("acme", "a"): live_state()})
    plan = tenant_plan([erase_tenant("t1"), add("e2", memory_id="a", content="again")], lookup)
    assert [(a.key, a.kind) for a in plan.applied] == [
        ("acme/a", Kind.ERASE),
        ("acme/a", Kind.UPSERT),
    ]
    assert lookup.states["acme/a"].live and lookup.states["acme/a"].content == "again"


def test_an_erase_erases_the_memories_its_text_was_folded_into_and_theirs() -> None:
    """An UPDATE decision folded b into a, and a into c; an erase of b erases a and c
    (their texts hold b's); the event's ack is b's alone (the others are cascades)."""
    lookup = DictLookup({memory_key("acme", m): live_state() for m in ("a", "b", "c", "other")})
    folds = [
        ev("memory.delete", "d1", memory_id="b").model_copy(update={"folded_into": "a"}),
        ev("memory.delete", "d2", memory_id="a").model_copy(update={"folded_into": "c"}),
    ]
    tenant_plan(folds, lookup)
    assert lookup.states["acme/b"].folded_into == ("a",)
    plan = tenant_plan([ev("memory.erase", "x1", memory_id="b")], lookup, start=200)
    assert [(a.key, a.kind, a.cascade) for a in plan.applied] == [
        ("acme/b", Kind.ERASE, False),
        ("acme/a", Kind.ERASE, True),
        ("acme/c", Kind.ERASE, True),
    ]
    assert all(lookup.states[f"acme/{m}"].erased for m in ("a", "b", "c"))
    assert lookup.states["acme/other"].live
