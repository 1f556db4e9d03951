"""Intelligent mode's pure rules: local decisions, answers to decisions, the decision plan."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from processors.core.enrichment import (
    DERIVED_NAMESPACE,
    Candidate,
    Decision,
    DecisionPlan,
    DerivedChange,
    EnrichRequest,
    decision_from_answer,
    decision_item,
    enriched_record,
    local_decision,
    plan_decisions,
)
from processors.core.events import EventType, MemoryEvent, Mode
from processors.core.records import OutRecord

T0 = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
TENANT = "acme"

CANDIDATES = [
    Candidate("old-0", "Alice lives in London", 0.12),
    Candidate("old-1", "Alice likes tea", 0.31),
    Candidate("old-2", "Bob works at Initech", 0.55),
]


def request(memory_id: str, event_id: str | None = None, tenant: str = TENANT) -> EnrichRequest:
    return EnrichRequest(
        tenant=tenant,
        memory_id=memory_id,
        version=1,
        event_id=event_id or f"ev-{memory_id}",
        content=f"content of {memory_id}",
        occurred_at=T0,
        indexed_at_ms=1_709_296_200_000,
    )


# -- local_decision -----------------------------------------------------------------------


def test_no_candidates_is_add_by_rule() -> None:
    assert local_decision("anything", []) == Decision("ADD", None, None, "rule")


def test_exact_duplicate_is_noop_by_rule() -> None:
    assert local_decision("Alice likes tea", CANDIDATES) == Decision("NOOP", "old-1", None, "rule")


def test_first_exact_duplicate_wins() -> None:
    candidates = [*CANDIDATES, Candidate("old-3", "Alice likes tea", 0.0)]
    assert local_decision("Alice likes tea", candidates) == Decision("NOOP", "old-1", None, "rule")


@pytest.mark.parametrize(
    "content", ["alice likes tea", "Alice likes tea ", "Alice  likes\ttea.", "ALICE LIKES TEA!"]
)
def test_a_duplicate_but_for_case_spaces_and_a_full_stop_is_noop_by_rule(content: str) -> None:
    # what same_text ignores does not change what the memory says
    assert local_decision(content, CANDIDATES) == Decision("NOOP", "old-1", None, "rule")


def test_an_exact_duplicate_wins_over_a_near_one() -> None:
    candidates = [Candidate("old-0", "alice likes tea", 0.0), *CANDIDATES]
    assert local_decision("Alice likes tea", candidates) == Decision("NOOP", "old-1", None, "rule")


@pytest.mark.parametrize(
    ("content", "existing"),
    [
        ("Alice moved to Paris", "Alice lives in London"),
        ("Alice likes tea?", "Alice likes tea"),  # a question is not the statement
        ("The freezer is at -18", "The freezer is at 18"),  # a sign is kept
        ("Ben earns 7.5k", "Ben earns 75k"),  # so is a decimal point
        ("Alice no longer likes tea", "Alice likes tea"),  # near in vectors, a DELETE
        (".", "!"),  # nothing left to compare
    ],
)
def test_anything_else_needs_the_model(content: str, existing: str) -> None:
    assert local_decision(content, [Candidate("old-0", existing, 0.01)]) is None


# -- decision_item ------------------------------------------------------------------------


def test_decision_item_uses_positional_ids() -> None:
    assert decision_item("Alice moved to Paris", CANDIDATES) == {
        "memory": "Alice moved to Paris",
        "existing": [
            {"id": "0", "memory": "Alice lives in London"},
            {"id": "1", "memory": "Alice likes tea"},
            {"id": "2", "memory": "Bob works at Initech"},
        ],
    }


def test_decision_item_holds_no_memory_ids() -> None:
    other_ids = [Candidate(f"x-{c.memory_id}", c.content, c.distance) for c in CANDIDATES]
    assert decision_item("m", CANDIDATES) == decision_item("m", other_ids)
    assert "old-0" not in json.dumps(decision_item("m", CANDIDATES))


def test_decision_item_without_candidates() -> None:
    assert decision_item("m", []) == {"memory": "m", "existing": []}


# -- decision_from_answer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "decision"),
    [
        ({"action": "ADD", "target": None, "text": None}, Decision("ADD")),
        ({"action": "ADD", "target": "1", "text": "ignored"}, Decision("ADD")),
        ({"action": "NOOP", "target": "1", "text": None}, Decision("NOOP", "old-1")),
        ({"action": "DELETE", "target": "2", "text": "ignored"}, Decision("DELETE", "old-2")),
        (
            {"action": "UPDATE", "target": "0", "text": "Alice lives in Paris"},
            Decision("UPDATE", "old-0", "Alice lives in Paris"),
        ),
        ({"action": "NOOP", "target": "0"}, Decision("NOOP", "old-0")),
    ],
)
def test_answer_target_maps_to_memory_id(answer: dict[str, Any], decision: Decision) -> None:
    result = decision_from_answer(answer, CANDIDATES)
    assert result == decision
    assert result.by == "llm"


@pytest.mark.parametrize(
    "answer",
    [
        {"action": "NOOP", "target": None, "text": None},
        {"action": "DELETE", "target": "3", "text": None},
        {"action": "DELETE", "target": "99", "text": None},
        {"action": "DELETE", "target": "-1", "text": None},
        {"action": "DELETE", "target": "one", "text": None},
        {"action": "DELETE", "target": "", "text": None},
        {"action": "DELETE", "target": 1, "text": None},
        {"action": "UPDATE", "target": "old-0", "text": "x"},
        {"action": "UPDATE", "target": "0", "text": None},
        {"action": "UPDATE", "target": "0", "text": ""},
        {"action": "UPDATE", "target": "0", "text": "   "},
        {"action": "UPDATE", "target": "0", "text": 5},
    ],
)
def test_unusable_answers_become_add(answer: dict[str, Any]) -> None:
    assert decision_from_answer(answer, CANDIDATES) == Decision("ADD", by="invalid_target")


def test_any_target_is_invalid_without_candidates() -> None:
    answer = {"action": "NOOP", "target": "0", "text": None}
    assert decision_from_answer(answer, []) == Decision("ADD", by="invalid_target")


def test_answer_without_action_is_add() -> None:
    assert decision_from_answer({}, CANDIDATES) == Decision("ADD")


# -- plan_decisions -----------------------------------------------------------------------


def test_empty_plan() -> None:
    assert plan_decisions([]) == DecisionPlan()


def test_add_changes_nothing() -> None:
    req = request("new")
    plan = plan_decisions([(req, Decision("ADD"))])
    assert plan.changes == []
    assert plan.carried_out == {"acme/new": Decision("ADD")}
    assert plan.superseded == set()


def test_noop_deletes_the_new_memory() -> None:
    req = request("new")
    decision = Decision("NOOP", "old-1")
    plan = plan_decisions([(req, decision)])
    assert plan.changes == [DerivedChange(EventType.DELETE, TENANT, "new", None, "ev-new", "noop")]
    assert plan.carried_out == {"acme/new": decision}
    assert plan.superseded == {"acme/new"}


def test_delete_deletes_the_target() -> None:
    req = request("new")
    decision = Decision("DELETE", "old-2")
    plan = plan_decisions([(req, decision)])
    assert plan.changes == [
        DerivedChange(EventType.DELETE, TENANT, "old-2", None, "ev-new", "delete")
    ]
    assert plan.carried_out == {"acme/new": decision}
    assert plan.superseded == {"acme/old-2"}


def test_update_rewrites_the_target_and_deletes_the_new_memory() -> None:
    req = request("new")
    decision = Decision("UPDATE", "old-0", "Alice lives in Paris")
    plan = plan_decisions([(req, decision)])
    assert plan.changes == [
        DerivedChange(
            EventType.UPDATE, TENANT, "old-0", "Alice lives in Paris", "ev-new", "update"
        ),
        # the new memory's text lives on in old-0: an erase of it erases old-0 too
        DerivedChange(
            EventType.DELETE, TENANT, "new", None, "ev-new", "update", folded_into="old-0"
        ),
    ]
    assert plan.carried_out == {"acme/new": decision}
    assert plan.superseded == {"acme/old-0", "acme/new"}
    assert plan.changes[1].event(None).folded_into == "old-0"


def test_decision_on_a_memory_deleted_earlier_in_the_batch_becomes_add() -> None:
    first, second = request("a"), request("b")
    plan = plan_decisions(
        [
            (first, Decision("DELETE", "old")),
            (second, Decision("UPDATE", "old", "rewritten")),
        ]
    )
    assert plan.changes == [DerivedChange(EventType.DELETE, TENANT, "old", None, "ev-a", "delete")]
    assert plan.carried_out == {
        "acme/a": Decision("DELETE", "old"),
        "acme/b": Decision("ADD", by="stale_target"),
    }
    assert plan.superseded == {"acme/old"}


def test_noop_against_a_memory_that_was_itself_a_duplicate_becomes_add() -> None:
    first, second = request("a"), request("b")
    plan = plan_decisions([(first, Decision("NOOP", "old")), (second, Decision("NOOP", "a"))])
    assert plan.changes == [DerivedChange(EventType.DELETE, TENANT, "a", None, "ev-a", "noop")]
    assert plan.carried_out["acme/b"] == Decision("ADD", by="stale_target")
    assert plan.superseded == {"acme/a"}


def test_delete_of_a_memory_folded_into_an_update_becomes_add() -> None:
    first, second = request("a"), request("b")
    plan = plan_decisions(
        [(first, Decision("UPDATE", "old", "new text")), (second, Decision("DELETE", "a"))]
    )
    assert [c.action for c in plan.changes] == ["update", "update"]
    assert plan.carried_out["acme/b"] == Decision("ADD", by="stale_target")
    assert plan.superseded == {"acme/old", "acme/a"}


@pytest.mark.parametrize("action", ["NOOP", "DELETE", "UPDATE"])
def test_decision_aimed_at_itself_becomes_add(action: str) -> None:
    req = request("self")
    plan = plan_decisions([(req, Decision(action, "self", "text"))])
    assert plan.changes == []
    assert plan.carried_out == {"acme/self": Decision("ADD", by="stale_target")}
    assert plan.superseded == set()


@pytest.mark.parametrize("action", ["NOOP", "DELETE", "UPDATE"])
def test_decision_without_target_becomes_add(action: str) -> None:
    plan = plan_decisions([(request("m"), Decision(action, None, "text"))])
    assert plan.changes == []
    assert plan.carried_out == {"acme/m": Decision("ADD", by="stale_target")}


def test_removals_are_per_tenant() -> None:
    first = request("a", tenant="t1")
    second = request("b", tenant="t2")
    plan = plan_decisions(
        [(first, Decision("DELETE", "shared-id")), (second, Decision("DELETE", "shared-id"))]
    )
    assert plan.changes == [
        DerivedChange(EventType.DELETE, "t1", "shared-id", None, "ev-a", "delete"),
        DerivedChange(EventType.DELETE, "t2", "shared-id", None, "ev-b", "delete"),
    ]
    assert plan.superseded == {"t1/shared-id", "t2/shared-id"}


def test_independent_decisions_are_all_carried_out_in_order() -> None:
    plan = plan_decisions(
        [
            (request("a"), Decision("ADD")),
            (request("b"), Decision("NOOP", "x")),
            (request("c"), Decision("DELETE", "y")),
            (request("d"), Decision("UPDATE", "z", "zz")),
        ]
    )
    assert [(c.type, c.memory_id, c.caused_by) for c in plan.changes] == [
        (EventType.DELETE, "b", "ev-b"),
        (EventType.DELETE, "y", "ev-c"),
        (EventType.UPDATE, "z", "ev-d"),
        (EventType.DELETE, "d", "ev-d"),
    ]
    assert list(plan.carried_out) == ["acme/a", "acme/b", "acme/c", "acme/d"]
    assert plan.superseded == {"acme/b", "acme/y", "acme/z", "acme/d"}


# -- DerivedChange.event ------------------------------------------------------------------


def test_event_id_is_deterministic_uuid5() -> None:
    change = DerivedChange(EventType.DELETE, TENANT, "old", None, "ev-1", "delete")
    event = change.event(T0)
    expected = uuid.uuid5(DERIVED_NAMESPACE, "ev-1/delete/memory.delete/acme/old")
    assert event.event_id == str(expected)
    assert uuid.UUID(event.event_id).version == 5
    assert change.event(None).event_id == event.event_id
    same = DerivedChange(EventType.DELETE, TENANT, "old", None, "ev-1", "delete")
    assert same.event(T0).event_id == event.event_id


@pytest.mark.parametrize(
    "other",
    [
        DerivedChange(EventType.DELETE, TENANT, "old", None, "ev-2", "delete"),
        DerivedChange(EventType.DELETE, TENANT, "old", None, "ev-1", "noop"),
        DerivedChange(EventType.UPDATE, TENANT, "old", "x", "ev-1", "delete"),
        DerivedChange(EventType.DELETE, "other", "old", None, "ev-1", "delete"),
        DerivedChange(EventType.DELETE, TENANT, "older", None, "ev-1", "delete"),
    ],
)
def test_event_id_differs_for_different_changes(other: DerivedChange) -> None:
    base = DerivedChange(EventType.DELETE, TENANT, "old", None, "ev-1", "delete")
    assert other.event(T0).event_id != base.event(T0).event_id


def test_update_event_is_intelligent_with_caused_by() -> None:
    change = DerivedChange(
        EventType.UPDATE, TENANT, "old-0", "Alice lives in Paris", "ev-9", "update"
    )
    event = change.event(T0)
    assert event.type == EventType.UPDATE
    assert event.mode == Mode.INTELLIGENT
    assert event.tenant == TENANT
    assert event.memory_id == "old-0"
    assert event.content == "Alice lives in Paris"
    assert event.caused_by == "ev-9"
    assert event.occurred_at == T0


def test_delete_event_is_fast_with_caused_by() -> None:
    event = DerivedChange(EventType.DELETE, TENANT, "new", None, "ev-9", "noop").event(None)
    assert event.type == EventType.DELETE
    assert event.mode == Mode.FAST
    assert event.memory_id == "new"
    assert event.content is None
    assert event.caused_by == "ev-9"
    assert event.occurred_at is None


def test_update_plan_events_have_distinct_ids() -> None:
    plan = plan_decisions([(request("new"), Decision("UPDATE", "old", "t"))])
    ids = {c.event(T0).event_id for c in plan.changes}
    assert len(ids) == 2


def test_event_survives_the_wire() -> None:
    event = DerivedChange(EventType.UPDATE, TENANT, "m", "text", "ev-1", "update").event(T0)
    raw = json.loads(event.to_json())
    assert raw["caused_by"] == "ev-1"
    assert raw["mode"] == "intelligent"
    assert raw["type"] == "memory.update"
    assert raw["schema"] == "agentmem.memory/v1"
    assert MemoryEvent.model_validate_json(event.to_json()) == event


# -- EnrichRequest ------------------------------------------------------------------------


def test_enrich_request_round_trips_through_its_record() -> None:
    req = EnrichRequest(
        tenant="t-1",
        memory_id="mem:7",
        version=3,
        event_id="e-7",
        decide=False,
        occurred_at=T0,
        indexed_at_ms=1_709_296_200_123,
    )
    record = req.record()
    assert isinstance(record, OutRecord)
    assert (record.key, record.partition) == (b"t-1", None)
    assert record.value is not None
    assert EnrichRequest.model_validate_json(record.value) == req
    assert json.loads(record.value)["decide"] is False
    assert req.record(partition=3).partition == 3


def test_enrich_request_goes_by_reference() -> None:
    """A request written before they went by reference is still read; its text is
    never written again (memory.enrich holds no memory's text)."""
    old = EnrichRequest.model_validate_json(
        b'{"tenant":"t","memory_id":"m","version":1,"event_id":"e",'
        b'"content":"Zo\\u00eb lives in Z\\u00fcrich","indexed_at_ms":5}'
    )
    assert old.content == "Zoë lives in Zürich"
    value = old.record().value or b""
    assert b"content" not in value and "Zürich" not in value.decode()


def test_enrich_request_defaults() -> None:
    req = EnrichRequest.model_validate_json(
        b'{"tenant":"t","memory_id":"m","version":1,"event_id":"e","indexed_at_ms":5}'
    )
    assert req.decide is True
    assert req.occurred_at is None
    assert req.record().value is not None
    assert EnrichRequest.model_validate_json(req.record().value or b"") == req


@pytest.mark.parametrize(
    "raw",
    [
        b'{"tenant":"t","memory_id":"m","version":0,"event_id":"e","content":"c",'
        b'"indexed_at_ms":5}',
        b'{"tenant":"t","memory_id":"m","version":1,"event_id":"e","content":"c",'
        b'"indexed_at_ms":5,"extra":1}',
        b'{"tenant":"t","memory_id":"m","version":1,"event_id":"e","content":"c"}',
        b"not json",
    ],
)
def test_enrich_request_rejects_bad_values(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        EnrichRequest.model_validate_json(raw)


# -- enriched_record ----------------------------------------------------------------------


def test_enriched_record_shape() -> None:
    req = request("m")
    record = enriched_record(
        req,
        "partial",
        Decision("UPDATE", "old", "x"),
        ["a fact"],
        None,
        {"importance": "timeout: slow"},
        1_709_296_201_000,
    )
    assert record.key == b"acme"
    assert json.loads(record.value or b"") == {
        "event_id": "ev-m",
        "tenant": "acme",
        "memory_id": "m",
        "version": 1,
        "outcome": "partial",
        "decision": "UPDATE",
        "decision_by": "llm",
        "target": "old",
        "facts": 1,
        "importance": None,
        "failures": {"importance": "timeout"},
        "indexed_at_ms": 1_709_296_200_000,
        "enriched_at_ms": 1_709_296_201_000,
    }


def test_enriched_record_without_decision() -> None:
    record = enriched_record(request("m"), "stale", None, None, None, {}, 1)
    value = json.loads(record.value or b"")
    assert (value["decision"], value["decision_by"], value["target"]) == (None, None, None)


def test_leading_zero_target_is_read_as_its_position() -> None:
    answer = {"action": "DELETE", "target": "01", "text": None}
    assert decision_from_answer(answer, CANDIDATES) == Decision("DELETE", "old-1")


@pytest.mark.parametrize(
    "target",
    [
        "\u00b2",  # SUPERSCRIPT TWO: isdigit() but int() refuses it
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() would read it as 1
        "\uff11",  # FULLWIDTH DIGIT ONE
    ],
)
def test_non_ascii_digit_targets_are_add_not_a_crash(target: str) -> None:
    answer = {"action": "DELETE", "target": target, "text": None}
    assert decision_from_answer(answer, CANDIDATES) == Decision("ADD", by="invalid_target")
