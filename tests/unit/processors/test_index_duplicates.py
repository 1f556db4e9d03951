"""Re-published events in the index stage: decided from their identity before any
validation, embedding or write, and still acked one by one, in order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from processors.core.events import EventType, MemoryEvent, new_event
from processors.core.validation import Limits, Rejection, parse_event
from processors.ports import Incoming
from processors.stages import index as index_module
from processors.stages.batch_guard import BatchReport
from tests.unit.processors.test_index_stage import (
    INDEXED,
    NEXT_OFFSET,
    T0,
    TENANT,
    Harness,
    add,
    batch,
    ev,
    key_of,
    uuid_of,
)


def republished(items: list[Incoming[None]], partition: int = 0) -> list[Incoming[None]]:
    """The same values published again: new offsets after the previous batch's."""
    return batch(*(i.value for i in items), partition=partition)


def counting_parse(monkeypatch: pytest.MonkeyPatch) -> list[bytes | None]:
    """Every value the stage validates from now on."""
    parsed: list[bytes | None] = []

    def spy(raw: bytes | None, limits: Limits) -> MemoryEvent | Rejection:
        parsed.append(raw)
        return parse_event(raw, limits)

    monkeypatch.setattr(index_module, "parse_event", spy)
    return parsed


async def test_a_batch_of_duplicates_does_no_heavy_work_and_acks_each_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    items = batch(
        add("e1", "m-1", "likes green tea", vector=[0.5, 0.5, 0.5, 0.5]),
        add("e2", None, "lives in Lyon"),  # its memory id comes from its event id
        ev(EventType.UPDATE, "e3", "m-1", content="likes black tea"),
        ev(EventType.DELETE, "e4", "m-1"),
        ev(EventType.ERASE, "e5", "m-9"),  # a no-op the first time: not found
    )
    await h.stage.process(items)
    embedded, upserts, deletes = h.embedder.calls, len(h.store.upsert_calls), h.store.delete_calls
    states, puts, history = dict(h.state.data), list(h.state.puts), list(h.sink.records)
    first_acks = h.acks()
    parsed = counting_parse(monkeypatch)

    again = republished(items)
    report = await h.stage.process(again)

    assert report == BatchReport(received=5, noops=5)
    assert parsed == []  # not one value validated
    assert h.embedder.calls == embedded
    assert len(h.store.upsert_calls) == upserts
    assert h.store.delete_calls == deletes
    assert h.state.data == states
    assert h.state.puts == puts  # no memory state written
    assert h.state.applied == {0: again[-1].source.offset}  # the log position moved on
    assert [topic for topic, _ in h.sink.calls[-1:]] == [INDEXED]  # acks, nothing else
    assert list(h.sink.records) == history

    acks = h.acks()[len(first_acks) :]
    assert [a["event_id"] for a in acks] == ["e1", "e2", "e3", "e4", "e5"]
    assert [a["offset"] for a in acks] == [i.source.offset for i in again]
    assert all(a["outcome"] == "noop:duplicate_event" for a in acks)
    assert all(a["version"] is None and a["tenant"] == TENANT for a in acks)
    assert [a["memory_id"] for a in acks] == [
        "m-1",
        first_acks[1]["memory_id"],
        "m-1",
        "m-1",
        "m-9",
    ]
    assert all(a["occurred_at"] == "2024-01-01T08:00:00+00:00" for a in acks)
    duplicates = "agentmem_events_noop_total"
    assert h.metric(duplicates, type="memory.add", reason="duplicate_event") == 2
    assert h.metric(duplicates, type="memory.update", reason="duplicate_event") == 1
    assert h.metric(duplicates, type="memory.erase", reason="duplicate_event") == 1


async def test_a_screened_duplicate_is_acked_as_the_plan_acks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same duplicate at the same offset, once screened out (after a new event of
    another tenant) and once judged by the plan (after a new event of its own tenant):
    the same ack, byte for byte."""
    original = add("e1", None, "a", vector=[0.5, 0.5, 0.5, 0.5])
    other = new_event(EventType.ADD, "bob", content="b", event_id="b1", occurred_at=T0)
    mine = add("e2", "m-2", "c")
    acks = []
    for before in (other, mine):
        h = Harness()
        await h.stage.process(batch(original))
        parsed = counting_parse(monkeypatch)
        resent = batch(before, original)
        tenant = before.tenant.encode()
        resent[0] = Incoming(tenant, resent[0].value, resent[0].source, None)
        report = await h.stage.process(resent)
        assert report == BatchReport(received=2, applied=1, noops=1)
        assert len(parsed) == (1 if before is other else 2)
        acks.append(h.sink.records[INDEXED][-1])
        NEXT_OFFSET.clear()
    screened, planned = acks
    assert json.loads(screened.value or b"")["outcome"] == "noop:duplicate_event"
    assert screened == planned


async def test_a_duplicate_after_its_tenants_new_event_is_judged_by_the_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    first = add("e1", "m-1", "a")
    await h.stage.process(batch(first))
    parsed = counting_parse(monkeypatch)
    report = await h.stage.process(batch(add("e2", "m-1", "b"), first))
    assert report == BatchReport(received=2, applied=1, noops=1)
    assert len(parsed) == 2  # both on the full path
    assert [a["outcome"] for a in h.acks()[1:]] == ["applied", "noop:duplicate_event"]
    assert h.state.data[key_of("m-1")].content == "b"


async def test_duplicates_beside_new_events_go_out_with_their_acks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    known = [add("e1", "m-1", "a"), add("e2", "m-2", "b")]
    await h.stage.process(batch(*known))
    parsed = counting_parse(monkeypatch)
    new = add("e3", "m-3", "c")
    report = await h.stage.process(batch(*known, new))
    assert report == BatchReport(received=3, applied=1, noops=2)
    assert parsed == [new.to_json()]  # only the new event validated
    assert h.embedder.texts == ["a", "b", "c"]
    assert uuid_of("m-3") in h.store.objects
    outcomes = {a["event_id"]: a["outcome"] for a in h.acks()[2:]}
    assert outcomes == {"e1": "noop:duplicate_event", "e2": "noop:duplicate_event", "e3": "applied"}
    assert [topic for topic, _ in h.sink.calls].count(INDEXED) == 2  # one ack send a batch


async def test_a_duplicate_under_another_record_key_is_still_dead_lettered() -> None:
    h = Harness()
    original = add("e1", "m-1", "a")
    await h.stage.process(batch(original))
    wrong_key = [Incoming(b"other", i.value, i.source, None) for i in batch(original)]
    report = await h.stage.process(wrong_key)
    assert report == BatchReport(received=1, dead_lettered=1)
    assert [d["reason"] for d in h.dead()] == ["key_mismatch"]


async def test_a_republished_id_is_a_duplicate_whatever_its_body_now_holds() -> None:
    """An event id names one event: its re-publication is acked as a duplicate of it
    without its body being read (the plan never judged a duplicate by its body; an
    event under a new id is validated in full)."""
    h = Harness()
    await h.stage.process(batch(add("e1", "m-1", "a")))
    body: dict[str, Any] = json.loads(add("e1", "m-1", "a").to_json())
    wrong = json.dumps({**body, "vector": [0.5] * 3}).encode()
    report = await h.stage.process(batch(wrong))
    assert report == BatchReport(received=1, noops=1)
    assert h.acks()[-1]["outcome"] == "noop:duplicate_event"
    fresh = json.dumps({**body, "event_id": "e2", "vector": [0.5] * 3}).encode()
    report = await h.stage.process(batch(fresh))
    assert report == BatchReport(received=1, dead_lettered=1)
    assert [d["reason"] for d in h.dead()] == ["vector_dimension"]


async def test_a_republished_tenant_erasure_takes_the_full_path() -> None:
    h = Harness()
    erase = MemoryEvent.model_validate(
        {"event_id": "e9", "type": "memory.erase_tenant", "tenant": TENANT}
    )
    await h.stage.process(batch(add("e1", "m-1", "a"), erase))
    report = await h.stage.process(batch(erase))
    assert report == BatchReport(received=1, noops=1)
    assert h.acks()[-1]["outcome"] == "noop:duplicate_event"
    assert h.acks()[-1]["memory_id"] is None
