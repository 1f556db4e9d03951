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

from processors.core.events import EventType, MemoryEvent
from processors.core.state import MemoryState, content_hash, memory_key


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
    # an erase that follows from another's (of a memory the erased one was folded
    # into): no ack of its own, the event's ack is the first memory's
    cascade: bool = False


@dataclass(frozen=True)
class NoOp:
    index: int
    event: MemoryEvent
    key: str
    reason: str  # duplicate_event | unchanged | already_deleted | not_found | already_erased
    # The state with this event's id remembered, so that a re-delivery stays a no-op
    # even after newer changes (it must never be judged again against them).
    after: MemoryState


@dataclass(frozen=True)
class Refused:
    """A well-formed event that cannot apply to the memory's state (dead-lettered)."""

    index: int
    event: MemoryEvent
    reason: str
    detail: str
    key: str
    after: MemoryState  # as for NoOp: a refusal counts as applied for re-delivery


#: The memory id under which a tenant remembers its tenant erasures (event ids and log
#: position, as a placeholder state): no memory can have it (MEMORY_ID_PATTERN).
TENANT_MARKER = "\x1ftenant"


@dataclass(frozen=True)
class TenantErasure:
    """A ``memory.erase_tenant`` that takes effect: its memories' erasures are in
    ``BatchPlan.applied`` (one per memory that was not erased yet, with this event),
    ``erased`` says how many."""

    index: int
    event: MemoryEvent
    erased: int


@dataclass
class BatchPlan:
    applied: list[Applied] = field(default_factory=list)
    noops: list[NoOp] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    tenant_erasures: list[TenantErasure] = field(default_factory=list)
    # key -> (batch index of its last event, state after the batch) for every memory
    # whose state the batch changed, no-ops and refusals included (see NoOp.after)
    states: dict[str, tuple[int, MemoryState]] = field(default_factory=dict)

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


def _remembered(event: MemoryEvent, before: MemoryState | None) -> MemoryState:
    """``before`` with the event's id remembered; for a memory never seen, a placeholder
    at version 0 (deleted, nothing stored) that only carries the id."""
    if before is None:
        return MemoryState(
            version=0, content=None, content_hash=None, deleted=True, event_ids=(event.event_id,)
        )
    return replace(before, event_ids=before.remember(event.event_id))


def decide(
    index: int,
    event: MemoryEvent,
    before: MemoryState | None,
    now: datetime,
    position: int | None = None,
) -> Applied | NoOp | Refused:
    """The rule for one event against the memory's state before it.

    ``position`` is the event's offset in its log partition (None: unknown): an event
    at or before the memory's last judged position is a duplicate (a replay), like one
    whose id the memory remembers; every other outcome records it (see ``_at``).
    A state at version 0 is a placeholder that only remembers event ids (of no-ops
    and refusals on a memory that never existed): it counts as no memory at all."""
    key = memory_key(event.tenant, event.resolved_memory_id)
    if before is not None and before.seen(event.event_id, position):
        return NoOp(index, event, key, "duplicate_event", before)
    outcome = _judge(index, event, key, before, now)
    floor = before.position if before is not None else -1
    at = floor if position is None else max(floor, position)
    if outcome.after.position == at:
        return outcome
    return replace(outcome, after=replace(outcome.after, position=at))


def _judge(
    index: int, event: MemoryEvent, key: str, before: MemoryState | None, now: datetime
) -> Applied | NoOp | Refused:
    """:func:`decide` for an event not seen before."""
    known = before is not None and before.version > 0
    live = known and before is not None and before.live
    if event.type in (EventType.ADD, EventType.UPDATE):
        content = event.content or ""
        if event.type == EventType.UPDATE and not live:
            detail = "memory was erased" if before and before.erased else "no such live memory"
            return Refused(
                index, event, "memory_not_found", detail, key, _remembered(event, before)
            )
        if live and before and before.content_hash == content_hash(content):
            same_meta = not event.metadata or event.metadata == before.metadata
            if same_meta and event.vector is None:
                return NoOp(index, event, key, "unchanged", _remembered(event, before))
        return Applied(
            index, event, key, Kind.UPSERT, before, _upserted(event, before, content, now)
        )
    if event.type == EventType.DELETE:
        if not live or before is None:
            reason = "already_deleted" if known else "not_found"
            return NoOp(index, event, key, reason, _remembered(event, before))
        folded = before.folded_into
        if event.folded_into is not None and event.folded_into not in folded:
            folded = (*folded, event.folded_into)
        after = replace(
            before,
            version=before.version + 1,
            content=None,
            content_hash=None,
            deleted=True,
            event_ids=before.remember(event.event_id),
            folded_into=folded,
        )
        return Applied(index, event, key, Kind.DELETE, before, after)
    # ERASE, or one memory of an ERASE_TENANT
    if before is None or not known:
        return NoOp(index, event, key, "not_found", _remembered(event, before))
    if before.erased:
        return NoOp(index, event, key, "already_erased", _remembered(event, before))
    return Applied(index, event, key, Kind.ERASE, before, before.purged(event.event_id))


def plan_batch(
    events: Sequence[tuple[int, MemoryEvent]],
    lookup: Callable[[str], MemoryState | None],
    now: datetime,
    position: Callable[[int], int | None] = lambda index: None,
    tenant_keys: Callable[[str], Sequence[str]] = lambda tenant: (),
) -> BatchPlan:
    """Apply the rules to each event in order, each seeing the ones before it.
    ``position(index)`` is the log offset of the batch's event ``index``, if known;
    ``tenant_keys(tenant)`` the keys of every memory the state holds for ``tenant``
    (for a tenant erasure)."""
    plan = BatchPlan()
    overlay: dict[str, MemoryState] = {}
    for index, event in events:
        if event.type == EventType.ERASE_TENANT:
            _plan_tenant_erasure(plan, overlay, index, event, lookup, now, position, tenant_keys)
            continue
        key = memory_key(event.tenant, event.resolved_memory_id)
        before = overlay[key] if key in overlay else lookup(key)
        outcome = decide(index, event, before, now, position(index))
        if isinstance(outcome, Applied):
            plan.applied.append(outcome)
            if outcome.kind == Kind.ERASE and outcome.before is not None:
                _erase_folded(plan, overlay, outcome, lookup, now, position(index))
        elif isinstance(outcome, NoOp):
            plan.noops.append(outcome)
        else:
            plan.refused.append(outcome)
        if outcome.after is not before:  # a duplicate changes nothing
            overlay[key] = outcome.after
            plan.states[key] = (index, outcome.after)
    return plan


def _plan_tenant_erasure(
    plan: BatchPlan,
    overlay: dict[str, MemoryState],
    index: int,
    event: MemoryEvent,
    lookup: Callable[[str], MemoryState | None],
    now: datetime,
    position: Callable[[int], int | None],
    tenant_keys: Callable[[str], Sequence[str]],
) -> None:
    """An erase of every memory the tenant has at this point of the batch (the state's
    and the batch's own), as if each were erased by this event; remembered under the
    tenant's marker, so that a re-delivery of it is a no-op even after new memories."""
    marker_key = memory_key(event.tenant, TENANT_MARKER)
    marker = overlay[marker_key] if marker_key in overlay else lookup(marker_key)
    at = position(index)
    if marker is not None and marker.seen(event.event_id, at):
        plan.noops.append(NoOp(index, event, marker_key, "duplicate_event", marker))
        return
    prefix = f"{event.tenant}/"
    keys = {k for k in tenant_keys(event.tenant) if k.startswith(prefix)}
    keys |= {k for k in overlay if k.startswith(prefix)}
    keys.discard(marker_key)
    erased = 0
    for key in sorted(keys):
        memory_id = key[len(prefix) :]
        one = event.model_copy(update={"memory_id": memory_id})
        before = overlay[key] if key in overlay else lookup(key)
        if before is None or before.erased or before.version == 0:
            continue
        outcome = decide(index, one, before, now, at)
        if isinstance(outcome, Applied):
            plan.applied.append(outcome)
            overlay[key] = outcome.after
            plan.states[key] = (index, outcome.after)
            erased += 1
    after = _remembered(event, marker)
    floor = marker.position if marker is not None else -1
    after = replace(after, position=floor if at is None else max(floor, at))
    overlay[marker_key] = after
    plan.states[marker_key] = (index, after)
    plan.tenant_erasures.append(TenantErasure(index, event, erased))


def _erase_folded(
    plan: BatchPlan,
    overlay: dict[str, MemoryState],
    erased: Applied,
    lookup: Callable[[str], MemoryState | None],
    now: datetime,
    at: int | None,
) -> None:
    """The memories ``erased``'s text was folded into (by UPDATE decisions), erased by
    the same event, and those theirs was folded into, and so on."""
    tenant = erased.event.tenant
    pending = list(erased.before.folded_into if erased.before is not None else ())
    done = {erased.key}
    while pending:
        memory_id = pending.pop(0)
        key = memory_key(tenant, memory_id)
        if key in done:
            continue
        done.add(key)
        before = overlay[key] if key in overlay else lookup(key)
        if before is None or before.erased or before.version == 0:
            continue
        one = erased.event.model_copy(update={"memory_id": memory_id})
        outcome = decide(erased.index, one, before, now, at)
        if isinstance(outcome, Applied):
            outcome = replace(outcome, cascade=True)
            plan.applied.append(outcome)
            overlay[key] = outcome.after
            plan.states[key] = (erased.index, outcome.after)
            pending += list(before.folded_into)
