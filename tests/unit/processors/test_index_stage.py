"""IndexStage.process against in-memory fakes of state, embedder, Weaviate and Kafka."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from processors.core.events import EventType, MemoryEvent, Mode, new_event
from processors.core.objects import DeleteItem, object_uuid
from processors.core.records import OutRecord, SourceRef
from processors.core.retry import Backoff
from processors.core.state import memory_key
from processors.core.validation import Limits
from processors.metrics import build_metrics
from processors.ports import Incoming
from processors.stages.batch_guard import BatchReport
from processors.stages.index import IndexConfig, IndexStage
from processors.stages.object_writes import WritePolicy
from tests.fakes import (
    PERMANENT_REFUSAL,
    BrokenState,
    DictCache,
    DictState,
    FakeEmbedder,
    FakeSink,
    FakeVectorStore,
    unit_vector,
)

HISTORY = "memory.history"
DEADLETTER = "memory.deadletter"
INDEXED = "memory.indexed"
T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=5)
TENANT = "acme"


# -- harness ----------------------------------------------------------------------------


class Harness:
    def __init__(
        self,
        store: FakeVectorStore | None = None,
        sink: FakeSink | None = None,
        state: DictState | None = None,
        enrich_topic: str | None = None,
        cache: DictCache | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.state = state or DictState()
        self.embedder = FakeEmbedder()
        self.store = store or FakeVectorStore()
        self.sink = sink or FakeSink()
        self.config = IndexConfig(
            history_topic=HISTORY,
            deadletter_topic=DEADLETTER,
            indexed_topic=INDEXED,
            limits=Limits(vector_dim=4),
            backoff=Backoff(base_s=0.001, cap_s=0.002),
            writes=WritePolicy(backoff=Backoff(base_s=0.001, cap_s=0.002)),
            enrich_topic=enrich_topic,
        )
        self.stage: IndexStage[None] = IndexStage(
            self.config,
            self.state,
            self.embedder,
            self.store,
            self.sink,
            build_metrics(self.registry),
            now=lambda: NOW,
            cache=cache,
        )

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def history(self) -> list[OutRecord]:
        return self.sink.records[HISTORY]

    def acks(self) -> list[dict[str, Any]]:
        return self.sink.values(INDEXED)

    def dead(self) -> list[dict[str, Any]]:
        return self.sink.values(DEADLETTER)


# -- helpers --------------------------------------------------------------------------


def ev(type_: EventType, event_id: str, memory_id: str | None = "m-1", **kw: Any) -> MemoryEvent:
    return new_event(type_, TENANT, memory_id=memory_id, event_id=event_id, occurred_at=T0, **kw)


def add(event_id: str, memory_id: str | None, content: str, **kw: Any) -> MemoryEvent:
    return ev(EventType.ADD, event_id, memory_id, content=content, **kw)


#: The next offset of each partition: batches of one test follow one another in the log,
#: as they do in a real one (each test starts again at 0: conftest's ``fresh_log``).
NEXT_OFFSET: dict[int, int] = {}


def batch(
    *values: MemoryEvent | bytes | None, partition: int = 0, start: int | None = None
) -> list[Incoming[None]]:
    """The events as one batch from ``partition``, at the offsets after the previous
    batch's (or from ``start``: a re-delivery of offsets seen before)."""
    items: list[Incoming[None]] = []
    first = NEXT_OFFSET.get(partition, 0) if start is None else start
    for offset, value in enumerate(values, start=first):
        raw = value.to_json() if isinstance(value, MemoryEvent) else value
        source = SourceRef("t", partition, offset, 1704096000000 + offset)
        items.append(Incoming(TENANT.encode(), raw, source, None))
    NEXT_OFFSET[partition] = max(NEXT_OFFSET.get(partition, 0), first + len(values))
    return items


def uuid_of(memory_id: str) -> str:
    return object_uuid(TENANT, memory_id)


def key_of(memory_id: str) -> str:
    return memory_key(TENANT, memory_id)


# -- tests ----------------------------------------------------------------------------


async def test_mixed_batch() -> None:
    h = Harness()
    items = batch(
        add("e1", "m-1", "likes green tea", metadata={"topic": "drinks"}),
        b'{"event_id": "e-bad", ',
        add("e2", "m-2", "lives in Lyon", agent_id="agent-7"),
    )
    report = await h.stage.process_safely(items)

    assert report == BatchReport(received=3, applied=2, noops=0, dead_lettered=1)
    # Weaviate holds both memories, embedded in one call
    assert set(h.store.objects) == {uuid_of("m-1"), uuid_of("m-2")}
    stored = h.store.objects[uuid_of("m-1")]
    assert stored.tenant == TENANT
    assert stored.properties["content"] == "likes green tea"
    assert stored.properties["memory_id"] == "m-1"
    assert stored.properties["version"] == 1
    assert stored.properties["event_id"] == "e1"
    assert stored.properties["metadata_terms"] == ["topic=drinks"]
    assert stored.vector == unit_vector("likes green tea")
    assert h.store.objects[uuid_of("m-2")].properties["agent_id"] == "agent-7"
    assert h.embedder.calls == 1
    assert sorted(h.embedder.texts) == ["likes green tea", "lives in Lyon"]
    # one history record per applied change
    assert sorted(r.key for r in h.history()) == [b"acme/m-1/1", b"acme/m-2/1"]
    # acks for the applied events
    acks = {a["event_id"]: a for a in h.acks()}
    assert set(acks) == {"e1", "e2"}
    assert all(a["outcome"] == "applied" and a["version"] == 1 for a in acks.values())
    assert acks["e2"]["offset"] == 2
    assert acks["e2"]["memory_id"] == "m-2"
    # the invalid event is dead-lettered with its reason and origin
    (dead,) = h.dead()
    assert dead["stage"] == "validate"
    assert dead["reason"] == "invalid_json"
    assert dead["source"] == {
        "topic": "t",
        "partition": 0,
        "offset": 1,
        "timestamp_ms": 1704096000001,
    }
    assert dead["value"] == '{"event_id": "e-bad", '
    # state advanced for both memories
    assert {k: s.version for k, s in h.state.data.items()} == {key_of("m-1"): 1, key_of("m-2"): 1}
    # metrics
    assert h.metric("agentmem_events_in_total", stage="index") == 3
    assert h.metric("agentmem_events_applied_total", type="memory.add") == 2
    assert h.metric("agentmem_deadletters_total", stage="validate", reason="invalid_json") == 1
    assert h.metric("agentmem_events_failed_total", stage="validate", reason="invalid_json") == 1
    assert h.metric("agentmem_batch_size_count", stage="index") == 1
    assert h.metric("agentmem_end_to_end_seconds_count") == 2
    assert h.metric("agentmem_end_to_end_seconds_sum") == 10.0  # occurred_at T0, indexed T0+5s


async def test_events_with_vectors_are_not_embedded() -> None:
    h = Harness()
    supplied = [0.5, 0.5, 0.5, 0.5]
    await h.stage.process(
        batch(add("e1", "m-1", "has a vector", vector=supplied), add("e2", "m-2", "needs one"))
    )
    assert h.embedder.calls == 1
    assert h.embedder.texts == ["needs one"]
    assert h.store.objects[uuid_of("m-1")].vector == supplied
    assert h.store.objects[uuid_of("m-2")].vector == unit_vector("needs one")


async def test_batch_with_only_supplied_vectors_never_calls_embedder() -> None:
    h = Harness()
    report = await h.stage.process(batch(add("e1", "m-1", "x", vector=[1.0, 0.0, 0.0, 0.0])))
    assert report.applied == 1
    assert h.embedder.calls == 0
    assert h.store.objects[uuid_of("m-1")].vector == [1.0, 0.0, 0.0, 0.0]


async def test_two_events_on_one_memory_make_one_upsert() -> None:
    h = Harness()
    report = await h.stage.process(
        batch(add("e1", "m-1", "first"), ev(EventType.UPDATE, "e2", content="second"))
    )
    assert report.applied == 2
    assert len(h.store.upserted) == 1
    (item,) = h.store.upserted
    assert item.uuid == uuid_of("m-1")
    assert item.properties["content"] == "second"
    assert item.properties["version"] == 2
    assert h.embedder.texts == ["second"]
    history = [json.loads(r.value) for r in h.history() if r.value is not None]
    assert [(r["version"], r["before"], r["after"]) for r in history] == [
        (1, None, "first"),
        (2, "first", "second"),
    ]
    assert [(a["event_id"], a["version"]) for a in h.acks()] == [("e1", 1), ("e2", 2)]
    assert h.state.data[key_of("m-1")].version == 2
    assert h.state.puts == [key_of("m-1")]  # one state write per memory


async def test_delete_removes_object() -> None:
    h = Harness()
    await h.stage.process(batch(add("e1", "m-1", "to be deleted")))
    assert uuid_of("m-1") in h.store.objects
    report = await h.stage.process(batch(ev(EventType.DELETE, "e2")))
    assert report.applied == 1
    assert h.store.delete_calls == [[DeleteItem(TENANT, uuid_of("m-1"))]]
    assert uuid_of("m-1") not in h.store.objects
    state = h.state.data[key_of("m-1")]
    assert state.deleted
    assert state.version == 2
    assert h.history()[-1].key == b"acme/m-1/2"
    assert h.acks()[-1]["outcome"] == "applied"
    assert h.metric("agentmem_events_applied_total", type="memory.delete") == 1


async def test_an_erase_forgets_the_tenants_cached_answers_once_the_object_is_gone() -> None:
    deleted_when_forgotten: list[int] = []
    cache = DictCache(
        on_forget=lambda prefix: deleted_when_forgotten.append(len(store.delete_calls))
    )
    store = FakeVectorStore()
    h = Harness(store=store, cache=cache)
    cache.data = {"2\x1facme\x1fk": b"1", "2\x1facme-2\x1fk": b"2", "0\x1facme\x1fk": b"3"}
    await h.stage.process(batch(add("e1", "m-1", "secret"), partition=2))
    assert cache.forgotten == []  # an add forgets nothing
    await h.stage.process(
        batch(ev(EventType.ERASE, "e2"), ev(EventType.ERASE, "e3", "m-2"), partition=2)
    )
    # one forgetting for the tenant in its partition, after the object's delete
    assert cache.forgotten == ["2\x1facme\x1f"]
    assert deleted_when_forgotten == [1]
    assert sorted(cache.data) == ["0\x1facme\x1fk", "2\x1facme-2\x1fk"]


async def test_erase_removes_object_and_tombstones_history() -> None:
    h = Harness()
    await h.stage.process(
        batch(add("e1", "m-1", "secret"), ev(EventType.UPDATE, "e2", content="more secret"))
    )
    await h.stage.process(batch(ev(EventType.ERASE, "e3")))
    assert h.store.delete_calls == [[DeleteItem(TENANT, uuid_of("m-1"))]]
    tail = h.history()[-3:]
    assert [(r.key, r.value is None) for r in tail] == [
        (b"acme/m-1/1", True),
        (b"acme/m-1/2", True),
        (b"acme/m-1/3", False),
    ]
    assert tail[-1].value is not None
    assert b"secret" not in tail[-1].value
    state = h.state.data[key_of("m-1")]
    assert state.erased
    assert state.content is None


async def test_add_then_delete_in_one_batch_only_deletes() -> None:
    # The delete still goes out: after a crash Weaviate may hold what the state does not.
    h = Harness()
    await h.stage.process(batch(add("e1", "m-1", "short-lived"), ev(EventType.DELETE, "e2")))
    assert h.store.upserted == []
    assert h.embedder.calls == 0
    assert h.store.delete_calls == [[DeleteItem(TENANT, uuid_of("m-1"))]]
    assert len(h.history()) == 2


async def test_transient_weaviate_failure_is_retried() -> None:
    h = Harness(store=FakeVectorStore(fail_times=2))
    report = await h.stage.process(batch(add("e1", "m-1", "a"), add("e2", "m-2", "b")))
    assert report.applied == 2
    assert report.dead_lettered == 0
    assert h.store.failures == 2
    assert set(h.store.objects) == {uuid_of("m-1"), uuid_of("m-2")}
    assert len(h.history()) == 2
    assert h.dead() == []
    assert h.metric("agentmem_retries_total", operation="weaviate_write") == 2
    assert h.metric("agentmem_batches_in_retry", operation="weaviate_write") == 0


async def test_refused_object_is_dead_lettered_others_applied() -> None:
    h = Harness(store=FakeVectorStore(refuse={uuid_of("m-bad")}))
    report = await h.stage.process(
        batch(add("e1", "m-1", "fine"), add("e2", "m-bad", "refused"), add("e3", "m-3", "fine"))
    )
    assert report == BatchReport(received=3, applied=2, noops=0, dead_lettered=1)
    (dead,) = h.dead()
    assert dead["stage"] == "index"
    assert dead["reason"] == "weaviate_rejected"
    assert dead["detail"] == PERMANENT_REFUSAL
    assert dead["event_id"] == "e2"
    assert dead["tenant"] == TENANT
    assert dead["source"]["offset"] == 1
    # retried object by object, then given up
    attempts = h.config.writes.permanent_attempts
    assert len(h.store.upsert_calls) == attempts
    assert all(call == [h.store.upsert_calls[-1][0]] for call in h.store.upsert_calls[1:])
    assert h.store.upsert_calls[-1][0].uuid == uuid_of("m-bad")
    assert h.metric("agentmem_retries_total", operation="weaviate_object") == attempts - 1
    assert h.metric("agentmem_deadletters_total", stage="index", reason="weaviate_rejected") == 1
    # no state or history for the refused memory; its ack says it was rejected
    assert key_of("m-bad") not in h.state.data
    assert set(h.state.data) == {key_of("m-1"), key_of("m-3")}
    assert sorted(r.key for r in h.history()) == [b"acme/m-1/1", b"acme/m-3/1"]
    assert sorted(a["event_id"] for a in h.acks() if a["outcome"] == "applied") == ["e1", "e3"]
    rejected = [a for a in h.acks() if a["outcome"].startswith("rejected")]
    assert [(a["event_id"], a["outcome"]) for a in rejected] == [
        ("e2", "rejected:weaviate_rejected")
    ]
    assert set(h.store.objects) == {uuid_of("m-1"), uuid_of("m-3")}


async def test_update_of_unknown_memory_is_dead_lettered_at_apply() -> None:
    h = Harness()
    report = await h.stage.process(batch(ev(EventType.UPDATE, "e1", "ghost", content="x")))
    assert report.dead_lettered == 1
    (dead,) = h.dead()
    assert (dead["stage"], dead["reason"], dead["event_id"]) == ("apply", "memory_not_found", "e1")
    assert h.store.upserted == []
    # the refusal is remembered (a placeholder at version 0, no content), so a
    # re-delivery of e1 after the memory is created later cannot apply it then
    (placeholder,) = h.state.data.values()
    assert (placeholder.version, placeholder.content, placeholder.event_ids) == (0, None, ("e1",))


async def test_replaying_a_batch_is_all_noops() -> None:
    h = Harness()
    items = batch(
        add("e1", "m-1", "one"),
        ev(EventType.UPDATE, "e2", content="two"),
        add("e3", "m-2", "other"),
        ev(EventType.DELETE, "e4", "m-2"),
    )
    first = await h.stage.process(items)
    assert first.applied == 4
    history_before = list(h.history())
    states_before = dict(h.state.data)
    upserted_before = len(h.store.upserted)
    deletes_before = len(h.store.delete_calls)
    embedded_before = h.embedder.calls

    again = await h.stage.process(items)
    assert again == BatchReport(received=4, applied=0, noops=4, dead_lettered=0)
    assert h.history() == history_before
    assert h.state.data == states_before
    assert len(h.store.upserted) == upserted_before
    assert len(h.store.delete_calls) == deletes_before
    assert h.embedder.calls == embedded_before
    # the same offsets again (a replay of the log): skipped before any work, no acks
    assert len(h.acks()) == 4
    assert h.metric("agentmem_events_replayed_total", stage="index") == 4

    # the same events published again (new offsets): recognised by their ids
    resent = await h.stage.process(batch(*(i.value for i in items)))
    assert resent == BatchReport(received=4, applied=0, noops=4, dead_lettered=0)
    assert h.history() == history_before
    assert len(h.store.upserted) == upserted_before
    resent_acks = h.acks()[4:]
    assert [a["outcome"] for a in resent_acks] == ["noop:duplicate_event"] * 4
    assert all(a["version"] is None for a in resent_acks)
    assert h.metric("agentmem_events_noop_total", type="memory.add", reason="duplicate_event") == 2


async def test_transient_sink_failure_is_retried_and_state_written_last() -> None:
    state = DictState()
    h = Harness(sink=FakeSink(fail_times=2, state=state), state=state)
    report = await h.stage.process(batch(add("e1", "m-1", "a"), b"not json"))
    assert report.applied == 1
    assert h.sink.failures == 2
    assert [r.key for r in h.history()] == [b"acme/m-1/1"]
    assert [a["event_id"] for a in h.acks()] == ["e1"]
    assert [d["reason"] for d in h.dead()] == ["invalid_json"]
    retries = sum(
        h.metric("agentmem_retries_total", operation=op)
        for op in ("history_append", "deadletter_append", "ack_append")
    )
    assert retries == 2
    # every record write happened before the state moved
    assert h.sink.state_sizes_seen
    assert set(h.sink.state_sizes_seen) == {0}
    assert h.state.data[key_of("m-1")].version == 1


async def test_empty_batch_does_nothing() -> None:
    h = Harness()
    assert await h.stage.process([]) == BatchReport()
    assert h.store.upsert_calls == []
    assert dict(h.sink.records) == {}
    assert h.metric("agentmem_events_in_total", stage="index") == 0


async def test_process_safely_dead_letters_whole_batch_on_bug() -> None:
    state = BrokenState()
    h = Harness(state=state)
    items = batch(add("e1", "m-1", "a"), add("e2", "m-2", "b"), partition=3)
    report = await h.stage.process_safely(items)
    assert report == BatchReport(received=2, applied=0, noops=0, dead_lettered=2)
    # three tries of the batch, then three of each event alone (bisected)
    assert state.gets == 3 + 3 + 3
    dead = h.dead()
    assert [(d["stage"], d["reason"]) for d in dead] == [("index", "internal_error")] * 2
    assert [d["source"]["offset"] for d in dead] == [0, 1]
    assert all(d["source"]["partition"] == 3 for d in dead)
    # the original bytes are kept, so the events can be replayed
    assert [json.loads(d["value"])["event_id"] for d in dead] == ["e1", "e2"]
    assert h.history() == []
    # the writers waiting on e1 and e2 hear at once that they were refused
    assert [(a["event_id"], a["outcome"]) for a in h.acks()] == [
        ("e1", "rejected:internal_error"),
        ("e2", "rejected:internal_error"),
    ]
    assert h.sink.completed == [DEADLETTER, INDEXED, DEADLETTER, INDEXED]
    assert [d["detail"] for d in dead] == ["RuntimeError: state table bug"] * 2
    assert h.store.upserted == []
    assert h.metric("agentmem_deadletters_total", stage="index", reason="internal_error") == 2


async def test_acks_are_sent_after_history_dead_letters_and_enrich_requests() -> None:
    # An ack vouches for them: a reader that sees the ack must find them on the broker,
    # even when those sends are the slow ones.
    sink = FakeSink(slow=frozenset({HISTORY, DEADLETTER}))
    h = Harness(sink=sink)
    await h.stage.process(batch(add("e1", "m-1", "a"), b"not json", add("e2", "m-2", "b")))
    assert [a["outcome"] for a in h.acks()] == ["applied", "applied"]
    assert len(h.dead()) == 1 and len(h.history()) == 2
    assert sink.completed[-1] == INDEXED
    assert sink.completed.count(INDEXED) == 1


async def test_enrich_requests_go_by_reference_beside_their_events() -> None:
    """An intelligent memory's request names it (no text: an erase has nothing to
    reach on memory.enrich) and goes to its event's partition, whatever partitioner
    the event's producer used, so the tenant's requests keep its events' order."""
    h = Harness(enrich_topic="memory.enrich")
    smart = add("e1", "m-1", "Alice lives in Zürich", mode=Mode.INTELLIGENT)
    await h.stage.process(batch(smart, add("e2", "m-2", "plain"), partition=3))
    (request,) = h.sink.records["memory.enrich"]
    assert (request.key, request.partition) == (TENANT.encode(), 3)
    value = json.loads(request.value or b"")
    assert (value["memory_id"], value["version"], value["event_id"]) == ("m-1", 1, "e1")
    assert "content" not in value and "Zürich" not in (request.value or b"").decode()


async def test_process_safely_returns_process_report_when_healthy() -> None:
    h = Harness()
    report = await h.stage.process_safely(batch(add("e1", "m-1", "a")))
    assert report == BatchReport(received=1, applied=1)
    assert h.dead() == []


async def test_deadletter_metric_counts_only_records_written() -> None:
    # agentmem_deadletters is "Records written to memory.deadletter": a batch that fails
    # and is retried must not count the dead letters of attempts that were thrown away.
    h = Harness(state=BrokenState())
    await h.stage.process_safely(batch(b"not json", add("e1", "m-1", "a")))
    written = len(h.dead())
    assert written == 2
    counted = sum(
        h.metric("agentmem_deadletters_total", stage=stage, reason=reason)
        for stage, reason in (("validate", "invalid_json"), ("index", "internal_error"))
    )
    assert counted == written


async def test_a_batch_readies_its_partitions_and_commits_how_far_it_applied_them() -> None:
    h = Harness()
    items = [*batch(add("e1", "m-1", "a"), b"not json", partition=3), *batch(partition=5)]
    items += batch(add("e2", "m-2", "b"), partition=5)
    await h.stage.process(items)
    assert h.state.readied == [{3, 5}]
    # the dead-lettered event counts as applied: a replay does not dead-letter it again
    assert (h.state.applied_through(3), h.state.applied_through(5)) == (1, 0)
    report = await h.stage.process(items)
    assert report == BatchReport(received=3, noops=3)
    assert len(h.dead()) == 1 and len(h.acks()) == 2  # sent once each


async def test_a_batch_of_a_replay_and_new_events_applies_only_the_new() -> None:
    h = Harness()
    old = batch(add("e1", "m-1", "a"))
    await h.stage.process(old)
    new = batch(ev(EventType.UPDATE, "e2", content="b"))
    report = await h.stage.process([*old, *new])
    assert report == BatchReport(received=2, applied=1, noops=1)
    assert h.metric("agentmem_events_replayed_total", stage="index") == 1
    assert h.store.objects[uuid_of("m-1")].properties["content"] == "b"


async def test_a_tenant_erasure_erases_each_memory_drops_the_tenant_and_acks_once() -> None:
    cache = DictCache()
    h = Harness(cache=cache)
    await h.stage.process(
        batch(add("e1", "m-1", "secret one"), add("e2", "m-2", "secret two"), partition=1)
    )
    await h.stage.process(
        batch(new_event("memory.erase_tenant", TENANT, event_id="t1", occurred_at=T0), partition=1)
    )
    # every object deleted, the tenant dropped, the cache forgotten
    assert sorted(d.uuid for call in h.store.delete_calls for d in call) == sorted(
        [uuid_of("m-1"), uuid_of("m-2")]
    )
    assert h.store.dropped == [[TENANT]]
    assert cache.forgotten == ["1\x1facme\x1f"]
    # each memory's history tombstoned, nothing of the texts left in the erase records
    tombstoned = {r.key for r in h.history() if r.value is None}
    assert {b"acme/m-1/1", b"acme/m-2/1"} <= tombstoned
    assert not any(b"secret" in (r.value or b"") for r in h.history()[2:])
    # one ack, for the tenant erasure, with how many memories it erased
    ack = h.acks()[-1]
    assert (ack["event_id"], ack["outcome"], ack["memory_id"], ack["erased"]) == (
        "t1",
        "applied",
        None,
        2,
    )
    assert len(h.acks()) == 3
    assert all(h.state.data[key_of(m)].erased for m in ("m-1", "m-2"))


async def test_a_tenant_erasure_followed_by_an_add_in_the_batch_keeps_the_tenant() -> None:
    h = Harness()
    await h.stage.process(batch(add("e1", "m-1", "old")))
    erase_all = new_event("memory.erase_tenant", TENANT, event_id="t1", occurred_at=T0)
    await h.stage.process(batch(erase_all, add("e2", "m-2", "new")))
    assert h.store.dropped == []
    assert [i.properties["content"] for i in h.store.objects.values()] == ["new"]


async def test_an_erase_reaches_the_memory_its_text_was_folded_into() -> None:
    h = Harness()
    folded = ev(EventType.DELETE, "d1", "m-2").model_copy(update={"folded_into": "m-1"})
    await h.stage.process(batch(add("e1", "m-1", "Alice lives in Paris"), add("e2", "m-2", "x")))
    await h.stage.process(batch(folded))
    await h.stage.process(batch(ev(EventType.ERASE, "x1", "m-2")))
    assert h.state.data[key_of("m-1")].erased and h.state.data[key_of("m-2")].erased
    assert uuid_of("m-1") in {d.uuid for call in h.store.delete_calls for d in call}
    # one ack for the erase, the memory it named
    erase_acks = [a for a in h.acks() if a["event_id"] == "x1"]
    assert [(a["memory_id"], a["outcome"]) for a in erase_acks] == [("m-2", "applied")]


class FakeEraser:
    def __init__(self) -> None:
        self.calls: list[tuple[int, list[bytes]]] = []

    async def erase(self, partition: int, prefixes: Sequence[bytes]) -> int:
        self.calls.append((partition, list(prefixes)))
        return 0


async def test_an_erase_tombstones_the_memorys_dead_letters_and_a_tenant_erasure_the_tenants() -> (
    None
):
    eraser = FakeEraser()
    h = Harness()
    h.stage.erasure.deadletters = eraser
    await h.stage.process(batch(add("e1", "m-1", "a"), add("e2", "m-2", "b"), partition=4))
    assert eraser.calls == []
    await h.stage.process(batch(ev(EventType.ERASE, "x1", "m-1"), partition=4))
    assert eraser.calls == [(4, [b"acme\x1fm-1\x1f"])]
    erase_all = new_event("memory.erase_tenant", TENANT, event_id="t1", occurred_at=T0)
    await h.stage.process(batch(erase_all, partition=4))
    assert eraser.calls[1] == (4, [b"acme\x1f", b"acme\x1fm-2\x1f"])


async def test_dead_letters_are_keyed_by_tenant_memory_and_source_in_their_partition() -> None:
    h = Harness()
    bad = ev(EventType.UPDATE, "e9", "m-7", content="x", agent_id="ok")
    raw = bad.to_json().replace(b'"agent_id":"ok"', b'"agent_id":"not ok!"')
    await h.stage.process(batch(raw, partition=6))
    (record,) = h.sink.records[DEADLETTER]
    assert record.key.startswith(b"acme\x1fm-7\x1ft/6/")
    assert record.partition == 6
