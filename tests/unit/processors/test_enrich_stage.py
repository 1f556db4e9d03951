"""EnrichStage.process against in-memory fakes of Weaviate, the three processors and Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.core.enrichment import Candidate, EnrichRequest
from processors.core.events import EventType, MemoryEvent, Mode
from processors.core.llm_prompts import Failure, PromptKind, Result
from processors.core.objects import object_uuid
from processors.core.records import OutRecord, SourceRef
from processors.core.retry import Backoff
from processors.metrics import build_metrics
from processors.ports import Incoming
from processors.stages.enrich import EnrichConfig, EnrichStage
from tests.fakes import BrokenProcessor, DictCache, FakeEnrichStore, FakeProcessor, FakeSink

EVENTS = "memory.events"
ENRICHED = "memory.enriched"
DEADLETTER = "memory.deadletter"
TENANT = "acme"
T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=10)
NOW_MS = int(NOW.timestamp() * 1000)
INDEXED_MS = NOW_MS - 2000  # every request was indexed 2 s before it is enriched
# The text of each (tenant, memory id, version) a test's requests name: what the index
# stage wrote to the object, where the enrich stage reads it (requests go by reference).
TEXTS: dict[tuple[str, str, int], str] = {}


@pytest.fixture(autouse=True)
def _no_texts_of_other_tests() -> None:
    TEXTS.clear()


# -- harness --------------------------------------------------------------------------------


def default_facts(payload: dict[str, Any]) -> Result | None:
    return {"facts": [payload["memory"].upper()]}


def default_importance(payload: dict[str, Any]) -> Result | None:
    return {"importance": 0.5}


def default_decision(payload: dict[str, Any]) -> Result | None:
    return {"action": "ADD", "target": None, "text": None}


class Harness:
    def __init__(
        self,
        facts: Callable[[dict[str, Any]], Result | None] = default_facts,
        importance: Callable[[dict[str, Any]], Result | None] = default_importance,
        decision: Callable[[dict[str, Any]], Result | None] = default_decision,
        sink: FakeSink | None = None,
        cache: DictCache | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.lock = asyncio.Lock()
        self.store = FakeEnrichStore(self.lock, TEXTS)
        self.sink = sink or FakeSink()
        self.facts = FakeProcessor(facts)
        self.importance = FakeProcessor(importance)
        self.decision = FakeProcessor(decision)
        self.config = EnrichConfig(
            events_topic=EVENTS,
            enriched_topic=ENRICHED,
            deadletter_topic=DEADLETTER,
            candidates=3,
            max_distance=0.4,
            backoff=Backoff(base_s=0.001, cap_s=0.002),
        )
        self.stage: EnrichStage[None] = EnrichStage(
            self.config,
            self.store,
            {
                PromptKind.FACTS: self.facts,
                PromptKind.IMPORTANCE: self.importance,
                PromptKind.DECISION: self.decision,
            },
            self.sink,
            build_metrics(self.registry),
            self.lock,
            now=lambda: NOW,
            cache=cache,
        )

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def enrichments(self, outcome: str) -> float:
        return self.metric("agentmem_enrichments_total", outcome=outcome)

    def acks(self) -> list[dict[str, Any]]:
        return self.sink.values(ENRICHED)

    def outcomes(self) -> list[tuple[str, int, str]]:
        return [(a["memory_id"], a["version"], a["outcome"]) for a in self.acks()]

    def dead(self) -> list[dict[str, Any]]:
        return self.sink.values(DEADLETTER)

    def derived(self) -> list[MemoryEvent]:
        return [MemoryEvent.model_validate_json(r.value or b"") for r in self.sink.records[EVENTS]]


def req(
    memory_id: str,
    content: str,
    version: int = 1,
    decide: bool = True,
    tenant: str = TENANT,
) -> EnrichRequest:
    TEXTS[(tenant, memory_id, version)] = content
    return EnrichRequest(
        tenant=tenant,
        memory_id=memory_id,
        version=version,
        event_id=f"ev-{memory_id}-{version}",
        decide=decide,
        occurred_at=T0,
        indexed_at_ms=INDEXED_MS,
    )


def batch(*values: EnrichRequest | bytes) -> list[Incoming[None]]:
    items: list[Incoming[None]] = []
    for offset, value in enumerate(values):
        record = value.record() if isinstance(value, EnrichRequest) else OutRecord(b"k", value)
        source = SourceRef("memory.enrich", 0, offset, 1704096000000 + offset)
        items.append(Incoming(record.key, record.value, source, None))
    return items


def uid(memory_id: str) -> str:
    return object_uuid(TENANT, memory_id)


# -- the mixed batch ----------------------------------------------------------------------


async def test_mixed_batch() -> None:
    def importance(payload: dict[str, Any]) -> Result | None:
        if payload["memory"] == "Erin likes jazz":
            return Failure("timeout", "read timed out")
        return {"importance": 0.5}

    def decision(payload: dict[str, Any]) -> Result | None:
        if payload["memory"] == "Alice moved to Paris":
            return {"action": "UPDATE", "target": "0", "text": "Alice lives in Paris"}
        return {"action": "ADD", "target": None, "text": None}

    h = Harness(importance=importance, decision=decision)
    for memory_id, version in [
        ("old-london", 1),
        ("m-two", 2),
        ("m-moved", 2),
        ("m-paris", 1),
        ("m-fail", 1),
        ("m-plain", 1),
    ]:
        h.store.put(memory_id, version)
    h.store.near = {
        "m-paris": [Candidate("old-london", "Alice lives in London", 0.1)],
        "m-plain": [Candidate("m-other", "Bob plays golf", 0.3)],
    }
    paris = req("m-paris", "Alice moved to Paris")
    incoming = batch(
        b"{not json",  # 0: invalid
        req("old-london", "Alice lives in London"),  # 1
        req("m-two", "Two v1", version=1),  # 2: superseded by offset 3
        req("m-two", "Two v2", version=2),  # 3
        req("m-moved", "Moved on", version=1),  # 4: the store holds version 2
        paris,  # 5: UPDATE old-london
        req("m-fail", "Erin likes jazz", decide=False),  # 6: importance fails
        req("m-plain", "Bob plays chess"),  # 7
    )
    await h.stage.process(incoming)

    # dead letters: the invalid request, and the failure
    dead = h.dead()
    assert [(d["stage"], d["reason"]) for d in dead] == [
        ("enrich", "invalid_request"),
        ("enrich", "timeout"),
    ]
    assert dead[0]["detail"] == "Invalid JSON: key must be a string at line 1 column 2"
    assert dead[0]["event_id"] is None
    assert dead[0]["value"] == "{not json"
    assert dead[0]["source"]["offset"] == 0
    assert dead[1]["detail"] == "importance: timeout: read timed out"
    assert dead[1]["event_id"] == "ev-m-fail-1"
    assert dead[1]["tenant"] == TENANT
    assert dead[1]["source"]["offset"] == 6

    # acks: the stale ones first, then every live request in order
    assert h.outcomes() == [
        ("m-two", 1, "stale"),
        ("m-moved", 1, "stale"),
        ("old-london", 1, "enriched"),
        ("m-two", 2, "enriched"),
        ("m-paris", 1, "enriched"),
        ("m-fail", 1, "partial"),
        ("m-plain", 1, "enriched"),
    ]
    acks = {(a["memory_id"], a["version"]): a for a in h.acks()}
    assert acks["m-paris", 1]["decision"] == "UPDATE"
    assert acks["m-paris", 1]["decision_by"] == "llm"
    assert acks["m-paris", 1]["target"] == "old-london"
    # the outcome holds no text: how many facts, the reason of each failure
    assert acks["m-fail", 1]["facts"] == 1
    assert h.store.written()["m-fail"] == (1, {"facts": ["ERIN LIKES JAZZ"]})
    assert acks["m-fail", 1]["importance"] is None
    assert acks["m-fail", 1]["failures"] == {"importance": "timeout"}
    assert acks["m-fail", 1]["decision"] is None
    assert acks["old-london", 1]["decision_by"] == "rule"
    assert acks["m-plain", 1]["decision"] == "ADD"
    assert acks["m-two", 1]["enriched_at_ms"] == NOW_MS
    assert {a["enriched_at_ms"] for a in h.acks()} == {NOW_MS}

    # the decision: derived events on memory.events
    update, delete = h.derived()
    assert (update.type, update.memory_id, update.content, update.mode) == (
        EventType.UPDATE,
        "old-london",
        "Alice lives in Paris",
        Mode.INTELLIGENT,
    )
    assert (delete.type, delete.memory_id, delete.content, delete.mode) == (
        EventType.DELETE,
        "m-paris",
        None,
        Mode.FAST,
    )
    assert update.caused_by == delete.caused_by == paris.event_id
    assert update.occurred_at == delete.occurred_at == T0
    assert [r.key for r in h.sink.records[EVENTS]] == [b"acme", b"acme"]

    # facts and importance: written for the rest, not for the superseded memories
    assert h.store.written() == {
        "m-two": (2, {"facts": ["TWO V2"], "importance": 0.5}),
        "m-fail": (1, {"facts": ["ERIN LIKES JAZZ"]}),
        "m-plain": (1, {"facts": ["BOB PLAYS CHESS"], "importance": 0.5}),
    }
    assert h.store.locked_during_write == [True]

    # what was asked: all live memories for facts and importance, decisions only where needed
    live = ["Alice lives in London", "Two v2", "Alice moved to Paris", "Erin likes jazz"]
    assert h.facts.memories() == [*live, "Bob plays chess"]
    assert h.importance.memories() == [*live, "Bob plays chess"]
    assert h.decision.runs == [
        {
            "2": {
                "memory": "Alice moved to Paris",
                "existing": [{"id": "0", "memory": "Alice lives in London"}],
            },
            "4": {
                "memory": "Bob plays chess",
                "existing": [{"id": "0", "memory": "Bob plays golf"}],
            },
        }
    ]
    # neighbours only for the memories that decide, with the configured bounds
    assert h.store.neighbour_calls == [
        (TENANT, "old-london", 3, 0.4),
        (TENANT, "m-two", 3, 0.4),
        (TENANT, "m-paris", 3, 0.4),
        (TENANT, "m-plain", 3, 0.4),
    ]

    # metrics
    assert h.enrichments("stale") == 2.0
    assert h.enrichments("enriched") == 4.0
    assert h.enrichments("partial") == 1.0
    assert h.enrichments("failed") == 0.0
    assert h.metric("agentmem_deadletters_total", stage="enrich", reason="invalid_request") == 1.0
    assert h.metric("agentmem_deadletters_total", stage="enrich", reason="timeout") == 1.0
    assert h.metric("agentmem_events_failed_total", stage="enrich", reason="timeout") == 1.0
    assert h.metric("agentmem_enrich_decisions_total", action="UPDATE") == 1.0
    assert h.metric("agentmem_enrich_decisions_total", action="ADD") == 3.0
    assert h.metric("agentmem_enrichment_lag_seconds_count") == 5.0
    assert h.metric("agentmem_enrichment_lag_seconds_sum") == 10.0


# -- versions -----------------------------------------------------------------------------


async def test_older_version_after_newer_is_stale() -> None:
    h = Harness()
    h.store.put("m", 3)
    await h.stage.process(batch(req("m", "v3", version=3), req("m", "v2", version=2)))
    assert h.outcomes() == [("m", 2, "stale"), ("m", 3, "enriched")]
    assert h.store.written() == {"m": (3, {"facts": ["V3"], "importance": 0.5})}


async def test_same_version_twice_keeps_the_later() -> None:
    h = Harness()
    h.store.put("m", 1)
    first, second = req("m", "same"), req("m", "same")
    await h.stage.process(batch(first, second))
    assert h.outcomes() == [("m", 1, "stale"), ("m", 1, "enriched")]
    assert h.facts.memories() == ["same"]


async def test_memory_gone_from_store_is_stale() -> None:
    h = Harness()
    await h.stage.process(batch(req("gone", "text")))
    assert h.outcomes() == [("gone", 1, "stale")]
    assert h.facts.memories() == []
    assert h.store.writes == []
    assert h.store.fetches == [(TENANT, [uid("gone")])]


async def test_memories_are_fetched_per_tenant() -> None:
    h = Harness()
    h.store.put("a", 1, tenant="t1")
    h.store.put("b", 1, tenant="t2")
    h.store.put("c", 1, tenant="t1")
    await h.stage.process(
        batch(req("a", "A", tenant="t1"), req("b", "B", tenant="t2"), req("c", "C", tenant="t1"))
    )
    assert h.store.fetches == [
        ("t1", [object_uuid("t1", "a"), object_uuid("t1", "c")]),
        ("t2", [object_uuid("t2", "b")]),
    ]
    assert [w[0] for w in h.store.writes] == ["t1", "t2"]
    assert h.outcomes() == [("a", 1, "enriched"), ("b", 1, "enriched"), ("c", 1, "enriched")]


# -- decisions ----------------------------------------------------------------------------


async def test_exact_duplicate_is_noop_by_rule_without_asking() -> None:
    h = Harness()
    h.store.put("dup", 1)
    h.store.near = {"dup": [Candidate("orig", "Alice likes tea", 0.0)]}
    dup = req("dup", "Alice likes tea")
    await h.stage.process(batch(dup))
    assert h.decision.runs == [{}]
    (event,) = h.derived()
    assert (event.type, event.memory_id, event.caused_by) == (EventType.DELETE, "dup", dup.event_id)
    assert h.store.writes == []  # the duplicate is deleted: nothing to write on it
    (ack,) = h.acks()
    assert (ack["outcome"], ack["decision"], ack["decision_by"], ack["target"]) == (
        "enriched",
        "NOOP",
        "rule",
        "orig",
    )
    assert h.metric("agentmem_enrich_decisions_total", action="NOOP") == 1.0


async def test_delete_decision_deletes_the_target_and_keeps_the_new_memory() -> None:
    h = Harness(decision=lambda p: {"action": "DELETE", "target": "0", "text": None})
    h.store.put("new", 1)
    h.store.near = {"new": [Candidate("old", "Carol works at Initech", 0.2)]}
    await h.stage.process(batch(req("new", "Carol no longer works at Initech")))
    (event,) = h.derived()
    assert (event.type, event.memory_id, event.mode) == (EventType.DELETE, "old", Mode.FAST)
    assert h.store.written() == {
        "new": (1, {"facts": ["CAROL NO LONGER WORKS AT INITECH"], "importance": 0.5})
    }
    assert h.acks()[0]["target"] == "old"


async def test_second_decision_on_a_removed_target_is_kept_as_add() -> None:
    h = Harness(decision=lambda p: {"action": "DELETE", "target": "0", "text": None})
    h.store.put("a", 1)
    h.store.put("b", 1)
    shared = [Candidate("old", "Carol works at Initech", 0.2)]
    h.store.near = {"a": shared, "b": shared}
    await h.stage.process(batch(req("a", "Carol quit Initech"), req("b", "Carol left Initech")))
    assert [(e.type, e.memory_id, e.caused_by) for e in h.derived()] == [
        (EventType.DELETE, "old", "ev-a-1")
    ]
    acks = h.acks()
    assert [(a["decision"], a["decision_by"]) for a in acks] == [
        ("DELETE", "llm"),
        ("ADD", "stale_target"),
    ]
    assert h.metric("agentmem_enrich_decisions_total", action="DELETE") == 1.0
    assert h.metric("agentmem_enrich_decisions_total", action="ADD") == 1.0


async def test_invalid_target_is_add() -> None:
    h = Harness(decision=lambda p: {"action": "NOOP", "target": "7", "text": None})
    h.store.put("m", 1)
    h.store.near = {"m": [Candidate("o", "other", 0.2)]}
    await h.stage.process(batch(req("m", "mine")))
    assert h.derived() == []
    assert (h.acks()[0]["decision"], h.acks()[0]["decision_by"]) == ("ADD", "invalid_target")
    assert h.store.written() == {"m": (1, {"facts": ["MINE"], "importance": 0.5})}


async def test_derived_change_request_is_not_decided_again() -> None:
    h = Harness()
    h.store.put("m", 2)
    h.store.near = {"m": [Candidate("o", "other", 0.2)]}
    await h.stage.process(batch(req("m", "rewritten", version=2, decide=False)))
    assert h.store.neighbour_calls == []
    assert h.decision.runs == [{}]
    ack = h.acks()[0]
    assert (ack["outcome"], ack["decision"]) == ("enriched", None)
    assert h.metric("agentmem_enrich_decisions_total", action="ADD") == 0.0


# -- failures -----------------------------------------------------------------------------


async def test_decision_failure_is_partial_and_dead_lettered() -> None:
    h = Harness(decision=lambda p: Failure("circuit_open", "circuit open for llm"))
    h.store.put("m", 1)
    h.store.near = {"m": [Candidate("o", "other", 0.2)]}
    incoming = batch(req("m", "mine"))
    await h.stage.process(incoming)
    assert h.derived() == []
    (ack,) = h.acks()
    assert (ack["outcome"], ack["decision"]) == ("partial", None)
    assert ack["failures"] == {"decision": "circuit_open"}
    (dead,) = h.dead()
    assert (dead["stage"], dead["reason"], dead["detail"]) == (
        "enrich",
        "circuit_open",
        "decision: circuit_open: circuit open for llm",
    )
    assert dead["value"] == (incoming[0].value or b"").decode()
    assert h.store.written() == {"m": (1, {"facts": ["MINE"], "importance": 0.5})}
    assert h.enrichments("partial") == 1.0


async def test_outcomes_are_sent_after_their_dead_letters() -> None:
    # A "failed" or "partial" outcome vouches that its dead letter is on the broker
    # (requeue-enrich looks for it there), even when the dead-letter send is slow.
    h = Harness(
        facts=lambda p: Failure("timeout", "t"),
        sink=FakeSink(slow=frozenset({DEADLETTER})),
    )
    h.store.put("m", 1)
    await h.stage.process(batch(req("m", "mine")))
    assert [topic for topic, _ in h.sink.calls] == [DEADLETTER, ENRICHED]


async def test_missing_result_is_a_failure() -> None:
    h = Harness(facts=lambda p: None)
    h.store.put("m", 1)
    await h.stage.process(batch(req("m", "mine")))
    (ack,) = h.acks()
    assert ack["outcome"] == "partial"
    assert ack["failures"] == {"facts": "missing"}
    assert h.dead()[0]["reason"] == "missing"
    assert h.store.written() == {"m": (1, {"importance": 0.5})}


async def test_everything_failing_is_failed() -> None:
    fail = Failure("rate_limited", "429")
    h = Harness(facts=lambda p: fail, importance=lambda p: fail, decision=lambda p: fail)
    h.store.put("m", 1)
    h.store.near = {"m": [Candidate("o", "other", 0.2)]}
    await h.stage.process(batch(req("m", "mine")))
    (ack,) = h.acks()
    assert ack["outcome"] == "failed"
    assert ack["failures"] == {
        "facts": "rate_limited",
        "importance": "rate_limited",
        "decision": "rate_limited",
    }
    (dead,) = h.dead()
    assert dead["reason"] == "rate_limited"
    assert dead["detail"] == (
        "decision: rate_limited: 429; facts: rate_limited: 429; importance: rate_limited: 429"
    )
    assert h.store.writes == []
    assert h.enrichments("failed") == 1.0
    assert h.metric("agentmem_enrichment_lag_seconds_count") == 0.0


async def test_both_failing_without_decision_is_failed() -> None:
    fail = Failure("timeout", "t")
    h = Harness(facts=lambda p: fail, importance=lambda p: fail)
    h.store.put("m", 1)
    await h.stage.process(batch(req("m", "mine", decide=False)))
    assert h.outcomes() == [("m", 1, "failed")]


async def test_failure_detail_is_truncated() -> None:
    h = Harness(facts=lambda p: Failure("invalid_answer", "x" * 500))
    h.store.put("m", 1)
    await h.stage.process(batch(req("m", "mine", decide=False)))
    assert h.acks()[0]["failures"] == {"facts": "invalid_answer"}
    assert h.dead()[0]["detail"] == "facts: invalid_answer: " + "x" * 200


async def test_refused_write_is_partial() -> None:
    h = Harness()
    h.store.put("m", 1)
    h.store.put("n", 1)
    h.store.refuse = {uid("m"): "vector index is read-only"}
    await h.stage.process(batch(req("m", "mine", decide=False), req("n", "next", decide=False)))
    assert h.outcomes() == [("m", 1, "partial"), ("n", 1, "enriched")]
    assert h.acks()[0]["failures"] == {"write": "weaviate_rejected"}
    (dead,) = h.dead()
    assert (dead["reason"], dead["event_id"]) == ("weaviate_rejected", "ev-m-1")


# -- plumbing -----------------------------------------------------------------------------


async def test_empty_batch() -> None:
    h = Harness()
    report = await h.stage.process([])
    assert (report.received, report.dead_lettered) == (0, 0)
    assert h.sink.calls == []
    assert h.facts.runs == []
    assert h.store.writes == []


async def test_only_invalid_requests() -> None:
    h = Harness()
    await h.stage.process(batch(b"", b'{"tenant": "t"}'))
    assert [(d["reason"], d["detail"]) for d in h.dead()] == [
        ("invalid_request", "Invalid JSON: EOF while parsing a value at line 1 column 0"),
        ("invalid_request", "Field required"),
    ]
    assert h.acks() == []


async def test_transient_sink_failure_is_retried() -> None:
    h = Harness(sink=FakeSink(fail_times=1))
    h.store.put("m", 1)
    await h.stage.process(batch(req("m", "mine")))
    assert h.outcomes() == [("m", 1, "enriched")]
    assert h.metric("agentmem_retries_total", operation="enriched_append") == 1.0


async def test_process_safely_dead_letters_a_batch_that_keeps_failing() -> None:
    h = Harness()
    h.stage.processors = {
        PromptKind.FACTS: BrokenProcessor(),
        PromptKind.IMPORTANCE: h.importance,
        PromptKind.DECISION: h.decision,
    }
    h.store.put("m", 1)
    h.store.put("n", 1)
    await h.stage.process_safely(batch(req("m", "mine"), req("n", "next")))
    assert [(d["stage"], d["reason"]) for d in h.dead()] == [
        ("enrich", "internal_error"),
        ("enrich", "internal_error"),
    ]
    assert h.dead()[0]["detail"] == "RuntimeError: processor bug"
    assert [d["event_id"] for d in h.dead()] == ["ev-m-1", "ev-n-1"]
    # whoever waits for these enrichments hears that they failed, after the dead letters
    assert h.outcomes() == [("m", 1, "failed"), ("n", 1, "failed")]
    assert h.acks()[0]["failures"] == {"enrich": "internal_error"}
    # each culprit is isolated (the batch bisected) and quarantined on its own
    assert [topic for topic, _ in h.sink.calls] == [DEADLETTER, ENRICHED, DEADLETTER, ENRICHED]
    assert h.enrichments("failed") == 2.0
    assert h.metric("agentmem_events_in_total", stage="enrich") == 2.0
    # three attempts of the whole batch, then three of each event alone
    assert [len(run) for run in h.importance.runs] == [2, 2, 2, 1, 1, 1, 1, 1, 1]


async def test_one_unusable_target_does_not_fail_the_batch() -> None:
    def decision(payload: dict[str, Any]) -> Result | None:
        if payload["memory"] == "odd":
            return {"action": "DELETE", "target": "\u00b2", "text": None}
        return {"action": "ADD", "target": None, "text": None}

    h = Harness(decision=decision)
    h.store.put("odd", 1)
    h.store.put("fine", 1)
    near = [Candidate("o", "other", 0.2)]
    h.store.near = {"odd": near, "fine": near}
    await h.stage.process(batch(req("odd", "odd"), req("fine", "fine")))
    assert h.outcomes() == [("odd", 1, "enriched"), ("fine", 1, "enriched")]
    assert (h.acks()[0]["decision"], h.acks()[0]["decision_by"]) == ("ADD", "invalid_target")


async def test_each_item_is_asked_in_the_scope_of_its_partition_and_tenant() -> None:
    h = Harness()
    h.store.put("a", 1, tenant="t1")
    h.store.put("b", 1, tenant="t2")
    items = [*batch(req("a", "alpha", tenant="t1"), req("b", "beta", tenant="t2"))]
    items = [
        Incoming(i.key, i.value, SourceRef("memory.enrich", 4, n, 0), None)
        for n, i in enumerate(items)
    ]
    await h.stage.process(items)
    (scopes,) = h.facts.scopes
    assert sorted(scopes.values()) == ["4\x1ft1\x1f", "4\x1ft2\x1f"]


async def test_an_erase_while_the_model_is_asked_keeps_the_answers_out_of_the_cache() -> None:
    cache = DictCache()

    def facts_while_erased(payload: dict[str, Any]) -> Result | None:
        cache.forget("0\x1facme\x1f")  # the index stage erased a memory meanwhile
        return {"facts": [payload["memory"]]}

    h = Harness(facts=facts_while_erased, cache=cache)
    h.store.put("m", 1)
    await h.stage.process(batch(req("m", "mine", decide=False)))
    assert [keep() for keep in h.facts.keeps] == [False]
    assert [keep() for keep in h.importance.keeps] == [False]
    # a batch after it caches again
    quiet = Harness(cache=cache)
    quiet.store.put("m", 1)
    await quiet.stage.process(batch(req("m", "mine", decide=False)))
    assert [keep() for keep in quiet.facts.keeps] == [True]


async def test_derived_events_go_to_the_partition_of_the_request_that_decided_them() -> None:
    def decision(payload: dict[str, Any]) -> Result | None:
        return {"action": "UPDATE", "target": "0", "text": "Alice lives in Paris"}

    h = Harness(decision=decision)
    h.store.put("old", 1)
    h.store.put("new", 1)
    h.store.near = {"new": [Candidate("old", "Alice lives in London", 0.1)]}
    (one,) = batch(req("new", "Alice moved to Paris"))
    await h.stage.process([Incoming(one.key, one.value, SourceRef("memory.enrich", 5, 0, 0), None)])
    derived = h.sink.records[EVENTS]
    assert [r.partition for r in derived] == [5, 5]
    delete = MemoryEvent.model_validate_json(derived[1].value or b"")
    assert (delete.memory_id, delete.folded_into) == ("new", "old")
