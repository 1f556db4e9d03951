"""Decide what a batch of valid events does, against the memories' current state. Pure.

Events on one memory apply in batch order (they share a partition, so they arrive
in publish order); a batch-local overlay makes the second event on a memory see the
first one's result. Nothing here does I/O: the caller supplies ``lookup``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from processors.events import EventType, MemoryEvent
from processors.state import MemoryState, content_hash, memory_key


class Kind(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"
    ERASE = "erase"


@dataclass(frozen=True)
class Applied:
    """One change that takes effect: a new version of a memory."""

    index: int  # position of the event in the batch
    event: MemoryEvent
    key: str
    kind: Kind
    before: MemoryState | None
    after: MemoryState


@dataclass(frozen=True)
class NoOp:
    index: int
    event: MemoryEvent
    key: str
    reason: str  # duplicate_event | unchanged | already_deleted | not_found


@dataclass(frozen=True)
class Refused:
    """A well-formed event that cannot apply to the memory's state (dead-lettered)."""

    index: int
    event: MemoryEvent
    reason: str
    detail: str


@dataclass
class BatchPlan:
    applied: list[Applied] = field(default_factory=list)
    noops: list[NoOp] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    def final_changes(self) -> list[Applied]:
        """The last change per memory: what Weaviate must end up holding."""
        last: dict[str, Applied] = {}
        for change in self.applied:
            last[change.key] = change
        return list(last.values())


def _upserted(
    event: MemoryEvent, before: MemoryState | None, content: str, now: datetime
) -> MemoryState:
    """A new live version; agent, run and metadata carry over from a live memory if omitted."""
    prior = before if before is not None and before.live else None
    return MemoryState(
        version=(before.version if before else 0) + 1,
        content=content,
        content_hash=content_hash(content),
        created_at=prior.created_at if prior else now.isoformat(),
        agent_id=event.agent_id or (prior.agent_id if prior else None),
        run_id=event.run_id or (prior.run_id if prior else None),
        metadata=event.metadata or (prior.metadata if prior else {}),
        event_ids=before.remember(event.event_id) if before else (event.event_id,),
    )


def decide(
    index: int, event: MemoryEvent, before: MemoryState | None, now: datetime
) -> Applied | NoOp | Refused:
    """The rule for one event against the memory's state before it."""
    key = memory_key(event.tenant, event.resolved_memory_id)
    if before is not None and before.seen(event.event_id):
        return NoOp(index, event, key, "duplicate_event")
    live = before is not None and before.live
    if event.type in (EventType.ADD, EventType.UPDATE):
        content = event.content or ""
        if event.type == EventType.UPDATE and not live:
            detail = "memory was erased" if before and before.erased else "no such live memory"
            return Refused(index, event, "memory_not_found", detail)
        if live and before and before.content_hash == content_hash(content):
            same_meta = not event.metadata or event.metadata == before.metadata
            if same_meta and event.vector is None:
                return NoOp(index, event, key, "unchanged")
        return Applied(
            index, event, key, Kind.UPSERT, before, _upserted(event, before, content, now)
        )
    if event.type == EventType.DELETE:
        if not live or before is None:
            return NoOp(index, event, key, "already_deleted" if before else "not_found")
        after = replace(
            before,
            version=before.version + 1,
            content=None,
            content_hash=None,
            deleted=True,
            event_ids=before.remember(event.event_id),
        )
        return Applied(index, event, key, Kind.DELETE, before, after)
    # ERASE
    if before is None:
        return NoOp(index, event, key, "not_found")
    if before.erased:
        return NoOp(index, event, key, "already_erased")
    return Applied(index, event, key, Kind.ERASE, before, before.purged(event.event_id))


def plan_batch(
    events: Sequence[tuple[int, MemoryEvent]],
    lookup: Callable[[str], MemoryState | None],
    now: datetime,
) -> BatchPlan:
    """Apply the rules to each event in order, each seeing the ones before it."""
    plan = BatchPlan()
    overlay: dict[str, MemoryState] = {}
    for index, event in events:
        key = memory_key(event.tenant, event.resolved_memory_id)
        before = overlay[key] if key in overlay else lookup(key)
        outcome = decide(index, event, before, now)
        if isinstance(outcome, Applied):
            plan.applied.append(outcome)
            overlay[key] = outcome.after
        elif isinstance(outcome, NoOp):
            plan.noops.append(outcome)
        else:
            plan.refused.append(outcome)
    return plan
