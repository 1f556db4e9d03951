"""The index stage: one micro-batch of raw events to searchable memories.

validate (value, then key = tenant) -> plan against state -> embed (worker thread)
-> Weaviate upsert/delete (object_writes) -> history, enrich requests and dead
letters, then acks (awaited) -> state. Only then does the caller let the batch's
offsets commit. Dependencies that fail retry here and hold the batch;
``process_safely`` never raises and dead-letters exactly the events that fail
(batch_guard). Depends only on protocols; clock and sleep are injected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from processors.adapters.weaviate.store import (
    DeleteItem,
    UpsertItem,
    object_properties,
    object_uuid,
)
from processors.core.enrichment import EnrichRequest
from processors.core.events import MemoryEvent, Mode
from processors.core.health import Health
from processors.core.plan import Applied, BatchPlan, Kind, NoOp, plan_batch
from processors.core.reasons import Reason
from processors.core.records import (
    OutRecord,
    SourceRef,
    ack_record,
    dead_letter_record,
    history_records,
)
from processors.core.retry import Backoff, Sleep
from processors.core.state import MemoryState, memory_key
from processors.core.validation import Limits, Rejection, check_key, parse_event
from processors.metrics import Metrics
from processors.stages.batch_guard import BatchGuard, BatchReport, error_detail
from processors.stages.object_writes import Failed, ObjectWriter, VectorStore, WritePolicy
from processors.stages.stage_retry import StageRetry

__all__ = ["BatchReport", "Incoming", "IndexConfig", "IndexStage", "RecordSink", "StateStore"]

log = logging.getLogger(__name__)

H = TypeVar("H")
H_contra = TypeVar("H_contra", contravariant=True)

# A dead letter the broker refused as too large is sent again cut to this size.
SMALL_DEAD_LETTER_BYTES = 8 * 1024


class StateStore(Protocol[H_contra]):
    """Per-memory state; the handle is the incoming event the key arrived with."""

    def get(self, handle: H_contra, key: str) -> MemoryState | None: ...

    def put(self, handle: H_contra, key: str, state: MemoryState) -> None: ...


class RecordSink(Protocol):
    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None: ...


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
    writes: WritePolicy = field(default_factory=WritePolicy)
    backoff: Backoff = field(default_factory=Backoff)
    # tries of a batch that fails as a whole before it is bisected (batch_guard)
    batch_attempts: int = 3


@dataclass(frozen=True)
class DeadLetter:
    stage: str
    reason: str
    detail: str
    source: SourceRef
    event_id: str | None
    record: OutRecord
    tenant: str | None = None
    small: OutRecord | None = None  # the same, cut short, if the broker refuses record


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
        health: Health | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        # Shared with the enrich stage so that its writes never overwrite a newer version.
        self.write_lock = write_lock or asyncio.Lock()
        self.state = state
        self.embedder = embedder
        self.sink = sink
        self.metrics = metrics
        self.now = now
        self.health = health or Health()
        self._retry = StageRetry(metrics, self.health, config.backoff, sleep)
        self.writer = ObjectWriter(
            store, config.writes, self._retry, sleep, self._count_object_retries
        )
        self.guard: BatchGuard[Incoming[H]] = BatchGuard(
            "index",
            self.process,
            self._quarantine,
            lambda size: self.metrics.batches_isolated.labels("index").inc(),
            attempts=config.batch_attempts,
            backoff=config.backoff,
            sleep=sleep,
        )

    # -- helpers -----------------------------------------------------------------

    def _count_object_retries(self, objects: int, transient: bool) -> None:
        self.metrics.retries.labels("weaviate_object").inc(objects)
        if transient:
            self.health.set_waiting("weaviate_object", f"{objects} objects refused for now")

    def _dead(
        self,
        incoming: Incoming[H],
        stage: str,
        reason: str,
        detail: str,
        event_id: str | None,
        tenant: str | None,
    ) -> DeadLetter:
        def record(max_bytes: int | None = None) -> OutRecord:
            extra = {} if max_bytes is None else {"max_bytes": max_bytes}
            return dead_letter_record(
                stage,
                reason,
                detail,
                incoming.source,
                incoming.key,
                incoming.value,
                self.now(),
                event_id,
                tenant,
                **extra,
            )

        return DeadLetter(
            stage,
            reason,
            detail,
            incoming.source,
            event_id,
            record(),
            tenant,
            record(SMALL_DEAD_LETTER_BYTES),
        )

    async def _send_dead(self, dead: Sequence[DeadLetter]) -> None:
        """Write dead letters (retrying; never given up), then log and count them."""
        if not dead:
            return
        topic = self.config.deadletter_topic
        records = [d.record for d in dead]
        small = [d.small or d.record for d in dead]
        await self._retry.must_send(
            "deadletter_append",
            lambda: self.sink.send_all(topic, records),
            lambda: self.sink.send_all(topic, small),
        )
        for d in dead:
            log.info(
                "dead-letter %s event %s: %s (%s)", d.source, d.event_id or "?", d.reason, d.detail
            )
            self.metrics.events_failed.labels(d.stage, d.reason).inc()
            self.metrics.deadletters.labels(d.stage, d.reason).inc()

    # -- the batch ---------------------------------------------------------------

    async def process_safely(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        """``process`` that never raises: a batch that fails as a whole is retried,
        then bisected until the events that fail alone are found; those are
        dead-lettered (stage ``index``, reason ``internal_error``) and the rest
        applied."""
        self.metrics.batch_size.labels("index").observe(len(batch))
        self.metrics.events_in.labels("index").inc(len(batch))
        self.health.batch_started("index")
        try:
            return await self.guard.run(batch)
        finally:
            self.health.batch_done("index")

    async def _quarantine(self, incoming: Incoming[H], exc: Exception) -> BatchReport:
        """The one event that fails alone: dead-lettered with what it raised."""
        parsed = parse_event(incoming.value, self.config.limits)  # total: never raises
        dead = [
            self._dead(
                incoming,
                "index",
                Reason.INTERNAL_ERROR,
                error_detail(exc),
                parsed.event_id,
                parsed.tenant,
            )
        ]
        await self._publish([], [], dead, rejected_acks(dead, self.now()))
        return BatchReport(received=1, dead_lettered=1)

    async def process(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        if not batch:
            return BatchReport()
        dead, valid = self._validate(batch)
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
        changes: list[Applied | NoOp] = [*plan.applied, *plan.noops]
        for change in changes:
            why = failed.get(change.key)
            if why is not None:
                ev = change.event
                dead.append(
                    self._dead(
                        batch[change.index],
                        "index",
                        why.reason,
                        why.detail,
                        ev.event_id,
                        ev.tenant,
                    )
                )
        searchable_at = self.now()
        self._observe_latency(batch, applied, searchable_at)
        started = time.perf_counter()
        await self._publish(
            [r for c in applied for r in history_records(c, batch[c.index].source.timestamp_ms)],
            self._enrich_requests(plan, failed, searchable_at),
            dead,
            self._acks(batch, applied, noops, dead, searchable_at),
        )
        self.metrics.stage_seconds.labels("history_append").observe(time.perf_counter() - started)
        # No-ops and refusals are remembered too (their event ids), so that a
        # re-delivered one stays a no-op whatever changed since.
        for key, (index, after) in plan.states.items():
            if key not in failed:
                self.state.put(batch[index].handle, key, after)
        for change in applied:
            self.metrics.events_applied.labels(change.event.type.value).inc()
        for noop in noops:
            self.metrics.events_noop.labels(noop.event.type.value, noop.reason).inc()
        return BatchReport(len(batch), len(applied), len(noops), len(dead))

    def _validate(
        self, batch: Sequence[Incoming[H]]
    ) -> tuple[list[DeadLetter], list[tuple[int, MemoryEvent]]]:
        """Each value parsed, and its record key checked against its tenant (the key
        decides the partition, so a wrong one would break the tenant's order)."""
        dead: list[DeadLetter] = []
        valid: list[tuple[int, MemoryEvent]] = []
        for index, incoming in enumerate(batch):
            parsed = parse_event(incoming.value, self.config.limits)
            problem = parsed if isinstance(parsed, Rejection) else check_key(incoming.key, parsed)
            if problem is None and isinstance(parsed, MemoryEvent):
                valid.append((index, parsed))
            elif problem is not None:
                dead.append(
                    self._dead(
                        incoming,
                        "validate",
                        problem.reason,
                        problem.detail,
                        problem.event_id,
                        problem.tenant,
                    )
                )
        return dead, valid

    def _acks(
        self,
        batch: Sequence[Incoming[H]],
        applied: Sequence[Applied],
        noops: Sequence[NoOp],
        dead: Sequence[DeadLetter],
        at: datetime,
    ) -> list[OutRecord]:
        acks = [self._ack(batch, a.index, a.event, a.after.version, "applied", at) for a in applied]
        acks += [self._ack(batch, n.index, n.event, None, f"noop:{n.reason}", at) for n in noops]
        return acks + rejected_acks(dead, at)

    def _enrich_requests(
        self, plan: BatchPlan, failed: dict[str, Failed], at: datetime
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
        if acks:
            topic = self.config.indexed_topic
            await self._retry("ack_append", lambda: self.sink.send_all(topic, acks))

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

    async def _write_weaviate(self, plan: BatchPlan) -> dict[str, Failed]:
        """Make Weaviate hold each memory's final state; key -> why, for what it refused."""
        finals = plan.final_changes()
        upserts = [a for a in finals if a.kind == Kind.UPSERT]
        # Deletes go out even for memories the state never saw live: after a crash between
        # a Weaviate write and the state write, Weaviate can hold what the state does not.
        deletes = [a for a in finals if a.kind != Kind.UPSERT]
        vectors = await self._vectors(upserts)
        at = self.now()
        items: dict[str, tuple[str, UpsertItem]] = {}
        for a, vec in zip(upserts, vectors, strict=True):
            uid = object_uuid(a.event.tenant, a.event.resolved_memory_id)
            props = object_properties(
                a.event.resolved_memory_id, a.after, a.event.event_id, a.event.occurred_at, at
            )
            items[uid] = (a.key, UpsertItem(a.event.tenant, uid, props, vec))
        gone: dict[str, tuple[str, DeleteItem]] = {}
        for a in deletes:
            uid = object_uuid(a.event.tenant, a.event.resolved_memory_id)
            gone[uid] = (a.key, DeleteItem(a.event.tenant, uid))
        async with self.write_lock:
            started = time.perf_counter()
            failed = await self.writer.write(items, gone)
        self.metrics.stage_seconds.labels("weaviate_write").observe(time.perf_counter() - started)
        self.health.set_waiting("weaviate_object", None)
        return failed
