"""The index stage: one micro-batch of raw events to searchable memories.

validate -> plan against state -> embed (worker thread) -> Weaviate upsert/delete
-> history, dead letters and acks (awaited) -> state. Only then does the caller let
the batch's offsets commit. Transient failures retry here and hold the batch;
``process`` never raises for one bad event.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Generic, Protocol, TypeVar

from processors.enrichment import EnrichRequest
from processors.events import MemoryEvent, Mode
from processors.metrics import Metrics
from processors.plan import Applied, BatchPlan, Kind, NoOp, plan_batch
from processors.records import (
    OutRecord,
    SourceRef,
    ack_record,
    dead_letter_record,
    history_records,
)
from processors.retry import Backoff, retry_forever
from processors.state import MemoryState, memory_key
from processors.validation import Limits, Rejection, parse_event
from processors.weaviate_store import DeleteItem, UpsertItem, object_properties, object_uuid

log = logging.getLogger(__name__)

H = TypeVar("H")
T = TypeVar("T")
H_contra = TypeVar("H_contra", contravariant=True)


class StateStore(Protocol[H_contra]):
    """Per-memory state; the handle is the incoming event the key arrived with."""

    def get(self, handle: H_contra, key: str) -> MemoryState | None: ...

    def put(self, handle: H_contra, key: str, state: MemoryState) -> None: ...


class RecordSink(Protocol):
    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None: ...


class VectorStore(Protocol):
    async def upsert(self, items: Sequence[UpsertItem]) -> dict[str, str]: ...

    async def delete(self, items: Sequence[DeleteItem]) -> None: ...


class TextEmbedder(Protocol):
    def embed(self, texts: Sequence[str], batch_size: int = ...) -> list[list[float]]: ...


@dataclass(frozen=True)
class Incoming(Generic[H]):
    """One message of ``memory.events`` and an opaque handle for state writes."""

    key: bytes | None
    value: bytes | None
    source: SourceRef
    handle: H


@dataclass(frozen=True)
class IndexConfig:
    history_topic: str
    deadletter_topic: str
    indexed_topic: str
    limits: Limits
    embed_batch: int = 256
    # memory.enrich: where intelligent-mode memories go once searchable (None: nowhere)
    enrich_topic: str | None = None
    object_attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True)
class DeadLetter:
    stage: str
    reason: str
    detail: str
    source: SourceRef
    event_id: str | None
    record: OutRecord
    tenant: str | None = None


@dataclass
class BatchReport:
    received: int = 0
    applied: int = 0
    noops: int = 0
    dead_lettered: int = 0


def rejected_acks(dead: Sequence[DeadLetter], at: datetime) -> list[OutRecord]:
    """Acks for dead-lettered events whose id and tenant are known: a writer waiting
    on an event that was refused learns it at once, not by timeout."""
    return [
        ack_record(d.event_id, d.tenant, "", None, f"rejected:{d.reason}", d.source, None, at)
        for d in dead
        if d.event_id and d.tenant
    ]


class IndexStage(Generic[H]):
    def __init__(
        self,
        config: IndexConfig,
        state: StateStore[H],
        embedder: TextEmbedder,
        store: VectorStore,
        sink: RecordSink,
        metrics: Metrics,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self.config = config
        # Shared with the enrich stage so that its writes never overwrite a newer version.
        self.write_lock = write_lock or asyncio.Lock()
        self.state = state
        self.embedder = embedder
        self.store = store
        self.sink = sink
        self.metrics = metrics
        self.now = now
        self._rng = random.Random()

    # -- helpers -----------------------------------------------------------------

    async def _retry(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Retry a whole-call failure until it succeeds, flagging the wait in metrics."""
        gauge = self.metrics.batches_in_retry.labels(operation)

        def on_retry(op: str, attempt: int, exc: BaseException) -> None:
            gauge.set(1)
            self.metrics.retries.labels(op).inc()

        try:
            return await retry_forever(
                operation, call, backoff=self.config.backoff, on_retry=on_retry
            )
        finally:
            gauge.set(0)

    def _dead(
        self,
        incoming: Incoming[H],
        stage: str,
        reason: str,
        detail: str,
        event_id: str | None,
        tenant: str | None,
    ) -> DeadLetter:
        record = dead_letter_record(
            stage,
            reason,
            detail,
            incoming.source,
            incoming.key,
            incoming.value,
            self.now(),
            event_id,
            tenant,
        )
        return DeadLetter(stage, reason, detail, incoming.source, event_id, record, tenant)

    async def _send_dead(self, dead: Sequence[DeadLetter]) -> None:
        """Write dead letters (retrying), then log and count what was written."""
        records = [d.record for d in dead]
        await self._retry(
            "deadletter_append", lambda: self.sink.send_all(self.config.deadletter_topic, records)
        )
        for d in dead:
            log.info(
                "dead-letter %s event %s: %s (%s)", d.source, d.event_id or "?", d.reason, d.detail
            )
            self.metrics.events_failed.labels(d.stage, d.reason).inc()
            self.metrics.deadletters.labels(d.stage, d.reason).inc()

    # -- the batch ---------------------------------------------------------------

    async def process_safely(self, batch: Sequence[Incoming[H]], attempts: int = 3) -> BatchReport:
        """``process`` that never raises: an unexpected error is retried, then the whole
        batch is dead-lettered (stage ``index``, reason ``internal_error``) so that no
        event is lost and the loop moves on."""
        self.metrics.batch_size.labels("index").observe(len(batch))
        self.metrics.events_in.labels("index").inc(len(batch))
        for attempt in range(attempts):
            try:
                return await self.process(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "batch of %d from %s failed (attempt %d of %d)",
                    len(batch),
                    batch[0].source if batch else "?",
                    attempt + 1,
                    attempts,
                )
                await asyncio.sleep(self.config.backoff.delay(attempt, self._rng))
        dead = []
        for incoming in batch:
            # Best effort: the ids let a waiting writer hear of it (see rejected_acks).
            parsed = parse_event(incoming.value, self.config.limits)
            dead.append(
                self._dead(
                    incoming,
                    "index",
                    "internal_error",
                    "processing failed repeatedly",
                    parsed.event_id,
                    parsed.tenant,
                )
            )
        await self._publish([], [], dead, rejected_acks(dead, self.now()))
        return BatchReport(received=len(batch), dead_lettered=len(dead))

    async def process(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        report = BatchReport(received=len(batch))
        if not batch:
            return report
        dead: list[DeadLetter] = []
        valid: list[tuple[int, MemoryEvent]] = []
        for index, incoming in enumerate(batch):
            parsed = parse_event(incoming.value, self.config.limits)
            if isinstance(parsed, Rejection):
                dead.append(
                    self._dead(
                        incoming,
                        "validate",
                        parsed.reason,
                        parsed.detail,
                        parsed.event_id,
                        parsed.tenant,
                    )
                )
            else:
                valid.append((index, parsed))

        handles = {memory_key(ev.tenant, ev.resolved_memory_id): batch[i].handle for i, ev in valid}
        plan = plan_batch(valid, lambda key: self.state.get(handles[key], key), self.now())
        for refused in plan.refused:
            ev = refused.event
            dead.append(
                self._dead(
                    batch[refused.index],
                    "apply",
                    refused.reason,
                    refused.detail,
                    ev.event_id,
                    ev.tenant,
                )
            )

        failed = await self._write_weaviate(plan)
        applied = [a for a in plan.applied if a.key not in failed]
        noops = [n for n in plan.noops if n.key not in failed]
        # A no-op judged against a change Weaviate refused depends on it: dead-letter it too.
        dependent: list[Applied | NoOp] = [*plan.applied, *plan.noops]
        for change in dependent:
            if change.key in failed:
                ev = change.event
                dead.append(
                    self._dead(
                        batch[change.index],
                        "index",
                        "weaviate_rejected",
                        failed[change.key],
                        ev.event_id,
                        ev.tenant,
                    )
                )
        searchable_at = self.now()
        self._observe_latency(batch, applied, searchable_at)

        history = [
            rec
            for change in applied
            for rec in history_records(change, batch[change.index].source.timestamp_ms)
        ]
        acks = [
            self._ack(batch, a.index, a.event, a.after.version, "applied", searchable_at)
            for a in applied
        ]
        acks += [
            self._ack(batch, n.index, n.event, None, f"noop:{n.reason}", searchable_at)
            for n in noops
        ]
        acks += rejected_acks(dead, searchable_at)
        enrich = self._enrich_requests(plan, failed, searchable_at)
        started = time.perf_counter()
        await self._publish(history, enrich, dead, acks)
        self.metrics.stage_seconds.labels("history_append").observe(time.perf_counter() - started)

        last: dict[str, Applied] = {a.key: a for a in applied}
        for change in last.values():
            self.state.put(batch[change.index].handle, change.key, change.after)

        for change in applied:
            self.metrics.events_applied.labels(change.event.type.value).inc()
        for noop in noops:
            self.metrics.events_noop.labels(noop.event.type.value, noop.reason).inc()
        report.applied, report.noops, report.dead_lettered = (
            len(applied),
            len(noops),
            len(dead),
        )
        return report

    def _enrich_requests(
        self, plan: BatchPlan, failed: dict[str, str], at: datetime
    ) -> list[OutRecord]:
        """One request per intelligent memory whose final version in the batch is live."""
        if self.config.enrich_topic is None:
            return []
        at_ms = int(at.timestamp() * 1000)
        return [
            EnrichRequest(
                tenant=a.event.tenant,
                memory_id=a.event.resolved_memory_id,
                version=a.after.version,
                event_id=a.event.event_id,
                content=a.after.content or "",
                decide=a.event.caused_by is None,
                occurred_at=a.event.occurred_at,
                indexed_at_ms=at_ms,
            ).record()
            for a in plan.final_changes()
            if a.kind == Kind.UPSERT and a.event.mode == Mode.INTELLIGENT and a.key not in failed
        ]

    async def _publish(
        self,
        history: list[OutRecord],
        enrich: list[OutRecord],
        dead: Sequence[DeadLetter],
        acks: list[OutRecord],
    ) -> None:
        """Write a batch's records. An ack vouches for what is already durable: the
        history entry, the enrichment request, the dead letter of a rejected event. So
        acks go out only after those are on the broker; a reader that sees an ack can
        find them."""
        await asyncio.gather(
            self._send_history(history),
            self._send_enrich(enrich),
            self._send_dead(dead),
        )
        await self._retry("ack_append", lambda: self.sink.send_all(self.config.indexed_topic, acks))

    async def _send_history(self, records: list[OutRecord]) -> None:
        if records:
            topic = self.config.history_topic
            await self._retry("history_append", lambda: self.sink.send_all(topic, records))

    async def _send_enrich(self, records: list[OutRecord]) -> None:
        topic = self.config.enrich_topic
        if records and topic is not None:
            await self._retry("enrich_request", lambda: self.sink.send_all(topic, records))

    def _ack(
        self,
        batch: Sequence[Incoming[H]],
        index: int,
        event: MemoryEvent,
        version: int | None,
        outcome: str,
        at: datetime,
    ) -> OutRecord:
        return ack_record(
            event.event_id,
            event.tenant,
            event.resolved_memory_id,
            version,
            outcome,
            batch[index].source,
            event.occurred_at,
            at,
        )

    def _observe_latency(
        self, batch: Sequence[Incoming[H]], applied: Sequence[Applied], at: datetime
    ) -> None:
        now_s = at.timestamp()
        for change in applied:
            if change.event.occurred_at is not None:
                start = change.event.occurred_at.timestamp()
            elif batch[change.index].source.timestamp_ms is not None:
                start = (batch[change.index].source.timestamp_ms or 0) / 1000
            else:
                continue
            self.metrics.end_to_end_seconds.observe(max(0.0, now_s - start))

    async def _vectors(self, upserts: Sequence[Applied]) -> list[list[float]]:
        """Supplied vectors as they are; the rest embedded in one call, off the event loop."""
        to_embed = [a for a in upserts if a.event.vector is None]
        started = time.perf_counter()
        embedded = (
            await asyncio.to_thread(
                self.embedder.embed,
                [a.after.content or "" for a in to_embed],
                self.config.embed_batch,
            )
            if to_embed
            else []
        )
        if to_embed:
            self.metrics.stage_seconds.labels("embed").observe(time.perf_counter() - started)
        by_key = dict(zip((a.key for a in to_embed), embedded, strict=True))
        return [a.event.vector if a.event.vector is not None else by_key[a.key] for a in upserts]

    async def _write_weaviate(self, plan: BatchPlan) -> dict[str, str]:
        """Make Weaviate hold each memory's final state; return key -> error for refusals."""
        finals = plan.final_changes()
        upserts = [a for a in finals if a.kind == Kind.UPSERT]
        # Deletes go out even for memories the state never saw live: after a crash between
        # a Weaviate write and the state write, Weaviate can hold what the state does not.
        deletes = [a for a in finals if a.kind != Kind.UPSERT]
        vectors = await self._vectors(upserts)
        items = {
            object_uuid(a.event.tenant, a.event.resolved_memory_id): (
                a.key,
                UpsertItem(
                    tenant=a.event.tenant,
                    uuid=object_uuid(a.event.tenant, a.event.resolved_memory_id),
                    properties=object_properties(
                        a.event.resolved_memory_id, a.after, a.event.event_id, a.event.occurred_at
                    ),
                    vector=vec,
                ),
            )
            for a, vec in zip(upserts, vectors, strict=True)
        }
        async with self.write_lock:
            started = time.perf_counter()
            pending = dict(items)
            errors: dict[str, str] = {}
            for attempt in range(self.config.object_attempts):
                if attempt:
                    self.metrics.retries.labels("weaviate_object").inc(len(pending))
                    await asyncio.sleep(self.config.backoff.delay(attempt - 1, self._rng))
                current = [item for _, item in pending.values()]
                errors = await self._retry("weaviate_write", partial(self.store.upsert, current))
                pending = {u: v for u, v in pending.items() if u in errors}
                if not pending:
                    break
            if deletes:
                delete_items = [
                    DeleteItem(
                        a.event.tenant, object_uuid(a.event.tenant, a.event.resolved_memory_id)
                    )
                    for a in deletes
                ]
                await self._retry("weaviate_delete", lambda: self.store.delete(delete_items))
        self.metrics.stage_seconds.labels("weaviate_write").observe(time.perf_counter() - started)
        return {key: errors.get(u, "refused") for u, (key, _) in pending.items()}
