"""IndexStage when things go wrong: a bad event costs exactly itself, refusals by
Weaviate are retried by kind, re-delivered no-ops stay no-ops, nothing is dropped."""

from __future__ import annotations

import json
from collections.abc import Sequence

from processors.core.errors import PermanentError
from processors.core.events import EventType
from processors.core.records import OutRecord, SourceRef
from processors.core.retry import Backoff
from processors.core.state import MemoryState
from processors.ports import Incoming
from processors.stages.batch_guard import BatchReport
from processors.stages.object_writes import WritePolicy
from tests.fakes import DictState, FakeSink, FakeVectorStore
from tests.unit.processors.test_index_stage import (
    DEADLETTER,
    TENANT,
    Harness,
    add,
    batch,
    ev,
    key_of,
    uuid_of,
)


class StateFailingFor(DictState):
    """A bug that only one memory's events trigger."""

    def __init__(self, bad_key: str) -> None:
        super().__init__()
        self.bad_key = bad_key

    def get(self, partition: int, key: str) -> MemoryState | None:
        if key == self.bad_key:
            raise RuntimeError(f"cannot read {key}")
        return super().get(partition, key)


async def test_a_batch_that_fails_as_a_whole_loses_only_its_culprit() -> None:
    state = StateFailingFor(key_of("m-7"))
    h = Harness(state=state)
    items = batch(*(add(f"e{i}", f"m-{i}", f"memory {i}") for i in range(20)))
    report = await h.stage.process_safely(items)

    assert report == BatchReport(received=20, applied=19, noops=0, dead_lettered=1)
    (dead,) = h.dead()
    assert (dead["stage"], dead["reason"], dead["event_id"]) == ("index", "internal_error", "e7")
    assert dead["detail"] == "RuntimeError: cannot read acme/m-7"
    assert dead["source"]["offset"] == 7
    assert {a["event_id"] for a in h.acks() if a["outcome"] == "applied"} == {
        f"e{i}" for i in range(20) if i != 7
    }
    assert set(h.store.objects) == {uuid_of(f"m-{i}") for i in range(20) if i != 7}
    # the halves are done in order: history follows the batch's order
    history = [r.key.decode() for r in h.history()]
    assert history == [f"acme/m-{i}/1" for i in range(20) if i != 7]
    assert h.metric("agentmem_batches_isolated_total", stage="index") >= 4


async def test_a_read_only_shard_is_waited_out_and_nothing_is_dead_lettered() -> None:
    store = FakeVectorStore(read_only={uuid_of("m-1")}, read_only_rounds=3)
    h = Harness(store=store)
    report = await h.stage.process_safely(batch(add("e1", "m-1", "a"), add("e2", "m-2", "b")))
    assert report == BatchReport(received=2, applied=2)
    assert h.dead() == []
    assert set(store.objects) == {uuid_of("m-1"), uuid_of("m-2")}
    assert len(store.upsert_calls) == 4  # one full call, three retries of m-1 alone
    assert all(len(call) == 1 for call in store.upsert_calls[1:])
    assert h.metric("agentmem_retries_total", operation="weaviate_object") == 3
    assert h.stage.health.waiting == {}  # ready again once written


async def test_a_delete_is_acked_only_once_the_object_is_gone() -> None:
    store = FakeVectorStore()
    h = Harness(store=store)
    await h.stage.process(batch(add("e1", "m-1", "a")))
    store.read_only, store.read_only_rounds = {uuid_of("m-1")}, 2
    sent_before_gone: list[int] = []
    original = h.sink.send_all

    async def watching(topic: str, records: Sequence[OutRecord]) -> None:
        if uuid_of("m-1") in store.objects:
            sent_before_gone.append(len(records))
        await original(topic, records)

    h.sink.send_all = watching  # type: ignore[method-assign]
    report = await h.stage.process(batch(ev(EventType.DELETE, "e2", "m-1")))
    assert report.applied == 1
    assert sent_before_gone == []
    assert len(store.delete_calls) == 3
    assert uuid_of("m-1") not in store.objects
    assert h.acks()[-1]["outcome"] == "applied"


async def test_a_shard_refusing_past_the_budget_dead_letters_as_unavailable() -> None:
    store = FakeVectorStore(read_only={uuid_of("m-1")}, read_only_rounds=1_000)
    h = Harness(store=store)
    policy = WritePolicy(transient_budget_s=0.0, backoff=Backoff(0.001, 0.002))
    h.stage.writes.writer.policy = policy
    report = await h.stage.process(batch(add("e1", "m-1", "a"), add("e2", "m-2", "b")))
    assert report == BatchReport(received=2, applied=1, dead_lettered=1)
    assert [(d["reason"], d["event_id"]) for d in h.dead()] == [("weaviate_unavailable", "e1")]
    assert key_of("m-1") not in h.state.data


async def test_a_redelivered_noop_never_reverts_a_newer_change() -> None:
    h = Harness()
    first = batch(
        add("e1", "m-1", "a"),
        ev(EventType.UPDATE, "e2", content="a"),  # unchanged: a no-op
        ev(EventType.UPDATE, "e3", content="b"),
    )
    await h.stage.process(first)
    report = await h.stage.process(batch(first[1].value))  # e2 published again
    assert report == BatchReport(received=1, noops=1)
    assert h.acks()[-1]["outcome"] == "noop:duplicate_event"
    assert h.state.data[key_of("m-1")].content == "b"
    assert h.store.objects[uuid_of("m-1")].properties["content"] == "b"


async def test_a_redelivered_refusal_stays_refused_after_the_memory_appears() -> None:
    h = Harness()
    refused = batch(ev(EventType.UPDATE, "e1", "m-1", content="too early"))
    await h.stage.process(refused)
    await h.stage.process(batch(add("e2", "m-1", "first")))
    assert h.state.data[key_of("m-1")].version == 1
    report = await h.stage.process(refused)
    assert report == BatchReport(received=1, noops=1)
    assert h.store.objects[uuid_of("m-1")].properties["content"] == "first"


async def test_a_delete_of_an_unknown_memory_is_remembered_but_creates_nothing() -> None:
    h = Harness()
    await h.stage.process(batch(ev(EventType.DELETE, "e1", "m-1")))
    assert h.acks()[-1]["outcome"] == "noop:not_found"
    placeholder = h.state.data[key_of("m-1")]
    assert (placeholder.version, placeholder.event_ids) == (0, ("e1",))
    await h.stage.process(batch(add("e2", "m-1", "now it exists")))
    assert h.state.data[key_of("m-1")].version == 1
    assert [r.key for r in h.history()] == [b"acme/m-1/1"]


async def test_the_record_key_must_be_the_tenant() -> None:
    h = Harness()
    good = add("e1", "m-1", "a").to_json()
    source = SourceRef("t", 0, 0)
    items: list[Incoming[None]] = [
        Incoming(b"someone-else", add("e2", "m-2", "b").to_json(), source, None),
        Incoming(None, add("e3", "m-3", "c").to_json(), source, None),
        Incoming(TENANT.encode(), good, source, None),
    ]
    report = await h.stage.process(items)
    assert report == BatchReport(received=3, applied=1, dead_lettered=2)
    assert [(d["reason"], d["event_id"]) for d in h.dead()] == [
        ("key_mismatch", "e2"),
        ("missing_key", "e3"),
    ]
    assert [a["outcome"] for a in h.acks()] == [
        "applied",
        "rejected:key_mismatch",
        "rejected:missing_key",
    ]


async def test_a_lone_surrogate_costs_only_its_own_event() -> None:
    h = Harness()
    pill = b'{"event_id": "p1", "type": "memory.add", "tenant": "acme", "content": "bad \\ud800"}'
    report = await h.stage.process_safely(
        batch(add("e1", "m-1", "before"), pill, add("e2", "m-2", "after"))
    )
    assert report == BatchReport(received=3, applied=2, dead_lettered=1)
    (dead,) = h.dead()
    assert dead["reason"] == "invalid_unicode"
    assert json.loads(dead["value"])["event_id"] == "p1"


class RefusingLargeRecords(FakeSink):
    """A broker whose request size limit is 16 KiB."""

    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None:
        if any(len(r.value or b"") > 16 * 1024 for r in records):
            raise PermanentError("record_too_large", "the broker refused the request")
        await super().send_all(topic, records)


async def test_a_dead_letter_the_broker_refuses_is_sent_cut_short() -> None:
    h = Harness(sink=RefusingLargeRecords())
    h.stage.writes.writer.policy = WritePolicy(permanent_attempts=1)
    huge = b"{" + b" " * 100_000  # invalid JSON, and too large for this broker
    report = await h.stage.process_safely(batch(huge, add("e1", "m-1", "a")))
    assert report.dead_lettered == 1 and report.applied == 1
    (dead,) = h.sink.values(DEADLETTER)
    assert dead["truncated"] is True
    assert dead["original_size"] == len(huge)
    assert h.stage.health.stuck == {}
