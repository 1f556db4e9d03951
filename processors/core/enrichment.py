"""Intelligent mode's data and rules: enrichment requests, decisions, and what they change. Pure.

The index stage writes an EnrichRequest to ``memory.enrich`` for each intelligent
memory it made searchable. The enrich stage answers it with facts, importance and a
decision against the tenant's older, similar memories. Decisions become ordinary
events on ``memory.events`` (with ``caused_by``), so the index stage applies them
with history, acks and idempotency like any other change, and a replay of the log
carries them out again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from processors.core.events import EventType, MemoryEvent, Mode, dumps_compact
from processors.core.records import OutRecord
from processors.core.state import content_hash

# Namespace of the ids of the events that decisions derive.
DERIVED_NAMESPACE = uuid.UUID("8d3c1f0e-6a2b-4c7d-9e5f-1a2b3c4d5e6f")


class EnrichRequest(BaseModel):
    """One memory version to enrich (the value on ``memory.enrich``, key = tenant).

    By reference: the request names the memory and its version, and the enrich stage
    reads the text from the stored object. So ``memory.enrich`` (and ``requeue-enrich``
    re-publishing it) never holds a memory's text, and an erase has nothing to reach
    there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    memory_id: str
    version: int = Field(ge=1)
    event_id: str
    # Requests written before they went by reference carried the text: still read,
    # never used, never written.
    content: str | None = Field(default=None, exclude=True)
    decide: bool = True  # False for changes a decision derived: no decision on a decision
    occurred_at: datetime | None = None
    indexed_at_ms: int

    def record(self, partition: int | None = None) -> OutRecord:
        """On ``partition`` (the events partition of the memory, so the tenant's
        requests stay in order with its events), else where the tenant hashes."""
        return OutRecord(self.tenant.encode(), self.model_dump_json().encode(), partition)


@dataclass(frozen=True)
class Candidate:
    """An older memory of the tenant near the new one."""

    memory_id: str
    content: str
    distance: float


@dataclass(frozen=True)
class Decision:
    action: str  # ADD | UPDATE | DELETE | NOOP
    target: str | None = None  # memory id
    text: str | None = None  # the target's new content for UPDATE
    by: str = "llm"  # llm | rule (decided without asking: no candidates, exact duplicate)


def same_text(text: str) -> str:
    """``text`` as compared for a duplicate: case, runs of whitespace and a final full
    stop or exclamation mark do not change what a memory says. Nothing else is
    dropped: a sign, a decimal point, a negation or a question mark can."""
    return " ".join(text.casefold().split()).rstrip(".! ")


def local_decision(content: str, candidates: Sequence[Candidate]) -> Decision | None:
    """Decisions that need no model: nothing similar exists (ADD), or a duplicate does
    (NOOP on it): the same text, or the same but for what :func:`same_text` ignores.

    Not by vector similarity, however close: "Ben earns 72,000 euros" and "Ben earns
    85,000 euros", or "I smoke" and "I no longer smoke", sit nearly on top of each
    other in embedding space and are an UPDATE and a DELETE.
    """
    if not candidates:
        return Decision("ADD", by="rule")
    mine = content_hash(content)
    for c in candidates:
        if content_hash(c.content) == mine:
            return Decision("NOOP", c.memory_id, by="rule")
    plain = same_text(content)
    for c in candidates:
        if plain and same_text(c.content) == plain:
            return Decision("NOOP", c.memory_id, by="rule")
    return None


def decision_item(content: str, candidates: Sequence[Candidate]) -> dict[str, Any]:
    """The prompt item (ids are positions, so the cache key holds no memory ids)."""
    return {
        "memory": content,
        "existing": [{"id": str(i), "memory": c.content} for i, c in enumerate(candidates)],
    }


def decision_from_answer(answer: dict[str, Any], candidates: Sequence[Candidate]) -> Decision:
    """The model's answer with its target mapped back to a memory id.

    An answer naming no valid target, or an UPDATE without text, is taken as ADD:
    keeping a memory is the safe reading of an unusable instruction.
    """
    action = str(answer.get("action", "ADD"))
    if action == "ADD":
        return Decision("ADD")
    target = answer.get("target")
    is_index = isinstance(target, str) and target.isascii() and target.isdigit()
    index = int(target) if is_index and isinstance(target, str) else -1
    if not 0 <= index < len(candidates):
        return Decision("ADD", by="invalid_target")
    text = answer.get("text")
    if action == "UPDATE" and not (isinstance(text, str) and text.strip()):
        return Decision("ADD", by="invalid_target")
    return Decision(action, candidates[index].memory_id, text if action == "UPDATE" else None)


@dataclass(frozen=True)
class DerivedChange:
    type: EventType
    tenant: str
    memory_id: str
    content: str | None
    caused_by: str  # event id of the memory whose decision this is
    action: str
    folded_into: str | None = None  # the delete of a memory an UPDATE folded: into which

    def event(self, occurred_at: datetime | None) -> MemoryEvent:
        """A deterministic event: re-running the same decision gives the same event id."""
        event_id = str(
            uuid.uuid5(
                DERIVED_NAMESPACE,
                f"{self.caused_by}/{self.action}/{self.type.value}/{self.tenant}/{self.memory_id}",
            )
        )
        return MemoryEvent.model_validate(
            {
                "event_id": event_id,
                "type": self.type.value,
                "tenant": self.tenant,
                "memory_id": self.memory_id,
                "content": self.content,
                # A rewritten memory needs new facts and importance, but no new decision.
                "mode": (Mode.INTELLIGENT if self.type == EventType.UPDATE else Mode.FAST).value,
                "occurred_at": occurred_at,
                "caused_by": self.caused_by,
                "folded_into": self.folded_into,
            }
        )


@dataclass
class DecisionPlan:
    changes: list[DerivedChange] = field(default_factory=list)
    carried_out: dict[str, Decision] = field(default_factory=dict)  # by request memory key
    # memories whose enrichment must not be written: removed or rewritten by a decision
    superseded: set[str] = field(default_factory=set)


def plan_decisions(ordered: Sequence[tuple[EnrichRequest, Decision]]) -> DecisionPlan:
    """Carry out decisions in log order; one aimed at a memory an earlier decision in
    the batch removed is kept as ADD (never drop a memory on a stale instruction)."""
    plan = DecisionPlan()
    removed: set[str] = set()
    for req, decision in ordered:
        me = f"{req.tenant}/{req.memory_id}"
        target = f"{req.tenant}/{decision.target}" if decision.target else None
        effective = decision
        if decision.action != "ADD" and (target is None or target in removed or target == me):
            effective = Decision("ADD", by="stale_target")
        elif decision.action == "NOOP":
            plan.changes.append(
                DerivedChange(
                    EventType.DELETE, req.tenant, req.memory_id, None, req.event_id, "noop"
                )
            )
            removed.add(me)
        elif decision.action == "DELETE" and decision.target:
            plan.changes.append(
                DerivedChange(
                    EventType.DELETE, req.tenant, decision.target, None, req.event_id, "delete"
                )
            )
            removed.add(target or "")
        elif decision.action == "UPDATE" and decision.target:
            plan.changes.append(
                DerivedChange(
                    EventType.UPDATE,
                    req.tenant,
                    decision.target,
                    decision.text,
                    req.event_id,
                    "update",
                )
            )
            plan.changes.append(
                DerivedChange(
                    EventType.DELETE,
                    req.tenant,
                    req.memory_id,
                    None,
                    req.event_id,
                    "update",
                    folded_into=decision.target,
                )
            )
            removed.add(me)
            plan.superseded.add(target or "")
        plan.carried_out[me] = effective
    plan.superseded |= removed
    return plan


def enriched_record(
    req: EnrichRequest,
    outcome: str,
    decision: Decision | None,
    facts: list[str] | None,
    importance: float | None,
    failures: dict[str, str],
    enriched_at_ms: int,
) -> OutRecord:
    """The acknowledgement on ``memory.enriched``: when and how a memory was enriched."""
    value = {
        "event_id": req.event_id,
        "tenant": req.tenant,
        "memory_id": req.memory_id,
        "version": req.version,
        "outcome": outcome,
        "decision": decision.action if decision else None,
        "decision_by": decision.by if decision else None,
        "target": decision.target if decision else None,
        # how many facts, not the facts: this topic holds no text of the memory (the
        # facts are on the object, which an erase reaches)
        "facts": None if facts is None else len(facts),
        "importance": importance,
        # the reason of each failure; the details (which may quote the model) are in
        # the dead letter
        "failures": {kind: why.split(":", 1)[0] for kind, why in failures.items()},
        "indexed_at_ms": req.indexed_at_ms,
        "enriched_at_ms": enriched_at_ms,
    }
    return OutRecord(req.tenant.encode(), dumps_compact(value))
