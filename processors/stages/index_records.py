"""The records the index stage sends about a batch, built from its plan: acks (of
applied, refused and screened-duplicate events), enrich requests, and the last offset of
each partition. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from processors.core.duplicates import Identity
from processors.core.enrichment import EnrichRequest
from processors.core.events import EventType, MemoryEvent, Mode
from processors.core.plan import BatchPlan, Kind
from processors.core.records import OutRecord, SourceRef, ack_record
from processors.ports import Incoming
from processors.stages.object_writes import Failed
from processors.stages.skeleton import DeadLetter

__all__ = [
    "DUPLICATE_OUTCOME",
    "duplicate_acks",
    "enrich_requests",
    "event_ack",
    "last_offsets",
    "rejected_acks",
]

H = TypeVar("H")

DUPLICATE_OUTCOME = "noop:duplicate_event"


def rejected_acks(dead: Sequence[DeadLetter], at: datetime) -> list[OutRecord]:
    """Acks for dead-lettered events whose id and tenant are known: a writer waiting
    on an event that was refused learns it at once, not by timeout. Pure."""
    return [
        ack_record(d.event_id, d.tenant, "", None, f"rejected:{d.reason}", d.source, None, at)
        for d in dead
        if d.event_id and d.tenant
    ]


def last_offsets(batch: Sequence[Incoming[H]]) -> dict[int, int]:
    """The highest offset of each partition in ``batch``. Pure."""
    last: dict[int, int] = {}
    for incoming in batch:
        p, offset = incoming.source.partition, incoming.source.offset
        last[p] = max(offset, last.get(p, -1))
    return last


def event_ack(
    source: SourceRef,
    event: MemoryEvent,
    version: int | None,
    outcome: str,
    at: datetime,
    erased: int | None = None,
) -> OutRecord:
    """The ``memory.indexed`` ack of one event (a tenant erasure's names no memory).
    Pure."""
    whole_tenant = event.type == EventType.ERASE_TENANT
    return ack_record(
        event.event_id,
        event.tenant,
        None if whole_tenant else event.resolved_memory_id,
        version,
        outcome,
        source,
        event.occurred_at,
        at,
        erased,
    )


def duplicate_acks(
    duplicates: Sequence[tuple[SourceRef, Identity]], at: datetime
) -> list[OutRecord]:
    """The ``noop:duplicate_event`` acks of events screened as duplicates, in order; the
    same records :func:`event_ack` makes for a duplicate the plan judged. Pure."""
    return [
        ack_record(
            identity.event_id,
            identity.tenant,
            identity.memory_id,
            None,
            DUPLICATE_OUTCOME,
            source,
            identity.occurred_at,
            at,
        )
        for source, identity in duplicates
    ]


def enrich_requests(
    plan: BatchPlan, failed: dict[str, Failed], at: datetime, partition_of: Sequence[int]
) -> list[OutRecord]:
    """One request per intelligent memory whose final version in the batch is live
    and was written, on the partition its event came from (``partition_of``, by index
    in the batch). Pure."""
    at_ms = int(at.timestamp() * 1000)
    return [
        EnrichRequest(
            tenant=a.event.tenant,
            memory_id=a.event.resolved_memory_id,
            version=a.after.version,
            event_id=a.event.event_id,
            decide=a.event.caused_by is None,
            occurred_at=a.event.occurred_at,
            indexed_at_ms=at_ms,
        ).record(partition_of[a.index])
        for a in plan.final_changes()
        if a.kind == Kind.UPSERT and a.event.mode == Mode.INTELLIGENT and a.key not in failed
    ]
