"""The index stage: one micro-batch of raw events to searchable memories.

validate (value, then key = tenant) -> plan against state -> embed (worker thread)
-> Weaviate upsert/delete (index_writes) -> history, enrich requests and dead
letters, then acks (awaited) -> state. Only then does the caller let the batch's
offsets commit. Dependencies that fail retry here and hold the batch;
``process_safely`` (the shared skeleton) never raises and dead-letters exactly the
events that fail. Depends on ports and core only; clock, sleep and jitter are injected.

Not pure (awaits I/O), through the ports only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from processors.core.duplicates import Identity, Screened, peek, screen
from processors.core.events import EventType, MemoryEvent
from processors.core.health import Health
from processors.core.plan import Applied, BatchPlan, NoOp, plan_batch
from processors.core.records import (
    OutRecord,
    SourceRef,
    history_records,
)
from processors.core.retry import Backoff
from processors.core.state import MemoryState, memory_key
from processors.core.validation import Limits, Rejection, check_key, parse_event
from processors.metrics import Metrics
from processors.ports import (
    Clock,
    DeadLetterEraser,
    Forgetting,
    Incoming,
    RecordSink,
    Sleep,
    StateStore,
    StateWrite,
    TextEmbedder,
    VectorStore,
    utc_now,
)
from processors.stages.batch_guard import BatchReport
from processors.stages.index_erasure import ErasureEffects
from processors.stages.index_records import (
    duplicate_acks,
    enrich_requests,
    event_ack,
    last_offsets,
    rejected_acks,
)
from processors.stages.index_writes import IndexWrites
from processors.stages.object_writes import Failed, WritePolicy
from processors.stages.skeleton import DeadLetter, StageSkeleton

__all__ = ["IndexConfig", "IndexStage", "rejected_acks"]

log = logging.getLogger(__name__)

H = TypeVar("H")


@dataclass(frozen=True)
class IndexConfig:
    """Topics, limits and retry policy of the index stage."""

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


class IndexStage(StageSkeleton[H]):
    """Raw events in, searchable memories, history, acks and dead letters out."""

    ack_operation = "ack_append"

    def __init__(
        self,
        config: IndexConfig,
        state: StateStore,
        embedder: TextEmbedder,
        store: VectorStore,
        sink: RecordSink,
        metrics: Metrics,
        *,
        now: Clock = utc_now,
        write_lock: asyncio.Lock | None = None,
        health: Health | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        cache: Forgetting | None = None,
        deadletters: DeadLetterEraser | None = None,
    ) -> None:
        """``cache``: the enrich stage's ``llm_cache``, whose answers about a tenant an
        erase forgets; ``deadletters``: where an erase tombstones the memory's dead
        letters."""
        super().__init__(
            "index", config, sink, metrics, health=health, now=now, sleep=sleep, rng=rng
        )
        self.ack_topic = config.indexed_topic
        self.config = config
        self.erasure = ErasureEffects(store, self.retry, cache, deadletters)
        # Shared with the enrich stage so that its writes never overwrite a newer version.
        self.write_lock = write_lock or asyncio.Lock()
        self.state = state
        self.embedder = embedder
        self.writes = IndexWrites(
            embedder,
            store,
            config.writes,
            self.retry,
            metrics,
            self.health,
            embed_batch=config.embed_batch,
            write_lock=self.write_lock,
            now=now,
            sleep=sleep,
            rng=self.rng,
        )

    # -- the skeleton's hooks ----------------------------------------------------------

    def identify(self, incoming: Incoming[H]) -> tuple[str | None, str | None, str | None]:
        parsed = parse_event(incoming.value, self.config.limits)  # total: never raises
        if isinstance(parsed, Rejection):
            return parsed.event_id, parsed.tenant, parsed.memory_id
        return parsed.event_id, parsed.tenant, parsed.resolved_memory_id

    def quarantine_acks(self, incoming: Incoming[H], dead: DeadLetter) -> list[OutRecord]:
        return rejected_acks([dead], self.now())

    # -- the batch ---------------------------------------------------------------------

    async def process(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        if not batch:
            return BatchReport()
        partitions = {incoming.source.partition for incoming in batch}
        await self.retry("state_restore", lambda: self.state.ready(partitions))
        # A replay (offsets reset, a new consumer group) re-delivers what the partition
        # has applied already: skipped before any work, no acks sent again.
        state = self.state
        through = {p: state.applied_through(p) for p in partitions}
        fresh = [i for i in batch if i.source.offset > through[i.source.partition]]
        skipped = len(batch) - len(fresh)
        if skipped:
            self.metrics.events_replayed.labels(self.stage).inc(skipped)
        report, writes = await self._process_fresh(fresh) if fresh else (BatchReport(), [])
        applied_offsets = last_offsets(batch)
        await self.retry("state_commit", lambda: state.commit(writes, applied_offsets))
        return report + BatchReport(received=skipped, noops=skipped)

    async def _process_fresh(
        self, batch: Sequence[Incoming[H]]
    ) -> tuple[BatchReport, list[StateWrite]]:
        """A batch of events not applied before: everything but the state commit, which
        the caller makes with the states returned. Re-published events are screened out
        first (processors/core/duplicates.py): acked, nothing else done for them."""
        screened = self._screen(batch)
        duplicates = [(batch[i].source, identity) for i, identity in screened.duplicates]
        if duplicates:
            self._count_duplicates(identity for _, identity in duplicates)
        rest = [batch[i] for i in screened.rest]
        if rest:
            report, writes = await self._process_full(rest, duplicates)
        else:
            acks = duplicate_acks(duplicates, self.now())
            await self.send(self.ack_operation, self.ack_topic, acks)
            report, writes = BatchReport(), []
        return report + BatchReport(len(duplicates), noops=len(duplicates)), writes

    def _screen(self, batch: Sequence[Incoming[H]]) -> Screened:
        """The batch's duplicates, judged against the committed states of their memories."""
        state = self.state
        return screen(
            [peek(incoming.value, incoming.key) for incoming in batch],
            lambda index, key: state.get(batch[index].source.partition, key),
            [incoming.source.offset for incoming in batch],
        )

    def _count_duplicates(self, duplicates: Iterable[Identity]) -> None:
        """Counted once per event type, not per event."""
        for type_, count in Counter(identity.type for identity in duplicates).items():
            self.metrics.events_noop.labels(type_, "duplicate_event").inc(count)

    async def _process_full(
        self,
        batch: Sequence[Incoming[H]],
        duplicates: Sequence[tuple[SourceRef, Identity]],
    ) -> tuple[BatchReport, list[StateWrite]]:
        """Validate, plan, embed, write and publish ``batch`` (the acks of the screened
        ``duplicates`` go out with its own); the states it leaves are returned."""
        dead, valid = self._validate(batch)
        partition_of = {
            memory_key(ev.tenant, ev.resolved_memory_id): batch[i].source.partition
            for i, ev in valid
        }
        # A tenant erasure reads every memory of its tenant, and an erase the memories
        # its text was folded into: in the partition of the tenant's event.
        tenant_partition = {ev.tenant: batch[i].source.partition for i, ev in valid}

        def lookup(key: str) -> MemoryState | None:
            partition = partition_of.get(key)
            if partition is None:
                partition = tenant_partition[key.split("/", 1)[0]]
            return self.state.get(partition, key)

        plan = plan_batch(
            valid,
            lookup,
            self.now(),
            lambda index: batch[index].source.offset,
            lambda tenant: self.state.tenant_keys(tenant_partition[tenant], tenant),
        )
        for refused in plan.refused:
            ev = refused.event
            incoming = batch[refused.index]
            dead.append(
                self.dead(
                    incoming,
                    refused.reason,
                    refused.detail,
                    ev.event_id,
                    ev.tenant,
                    stage="apply",
                    memory_id=ev.resolved_memory_id,
                )
            )
        failed = await self.writes.write(plan)
        applied = [a for a in plan.applied if a.key not in failed]
        await self.erasure.carry_out(batch, plan, failed, applied)
        noops = [n for n in plan.noops if n.key not in failed]
        # A no-op judged against a change Weaviate refused depends on it: dead-letter it too
        # (an event once, though a tenant erasure may have failed for several memories).
        changes: list[Applied | NoOp] = [*plan.applied, *plan.noops]
        dead_letters = set()
        for change in changes:
            why = failed.get(change.key)
            if why is not None and change.index not in dead_letters:
                dead_letters.add(change.index)
                ev = change.event
                incoming = batch[change.index]
                dead.append(
                    self.dead(
                        incoming,
                        why.reason,
                        why.detail,
                        ev.event_id,
                        ev.tenant,
                        memory_id=ev.resolved_memory_id,
                    )
                )
        searchable_at = self.now()
        self._observe_latency(batch, applied, searchable_at)
        started = time.perf_counter()
        await self._publish(batch, plan, failed, dead, searchable_at, duplicates)
        self.metrics.stage_seconds.labels("history_append").observe(time.perf_counter() - started)
        for change in applied:
            self.metrics.events_applied.labels(change.event.type.value).inc()
        for noop in noops:
            self.metrics.events_noop.labels(noop.event.type.value, noop.reason).inc()
        report = BatchReport(len(batch), len(applied), len(noops), len(dead))
        return report, self._state_writes(batch, plan, failed)

    async def _publish(
        self,
        batch: Sequence[Incoming[H]],
        plan: BatchPlan,
        failed: dict[str, Failed],
        dead: Sequence[DeadLetter],
        at: datetime,
        duplicates: Sequence[tuple[SourceRef, Identity]] = (),
    ) -> None:
        """History, enrich requests and dead letters, then the acks that vouch for
        them (and those of the screened ``duplicates``): a reader that sees an ack can
        find what it stands for."""
        applied = [a for a in plan.applied if a.key not in failed]
        noops = [n for n in plan.noops if n.key not in failed]
        history = [
            r for a in applied for r in history_records(a, batch[a.index].source.timestamp_ms)
        ]
        partitions = [incoming.source.partition for incoming in batch]
        enrich = enrich_requests(plan, failed, at, partitions) if self.config.enrich_topic else []
        acks = [
            event_ack(batch[a.index].source, a.event, a.after.version, "applied", at)
            for a in applied
            if a.event.type != EventType.ERASE_TENANT and not a.cascade
        ]
        # one ack per tenant erasure, once every memory it erased is gone
        acks += [
            event_ack(batch[e.index].source, e.event, None, "applied", at, erased=e.erased)
            for e in plan.tenant_erasures
            if not any(a.key in failed for a in plan.applied if a.index == e.index)
        ]
        acks += [
            event_ack(batch[n.index].source, n.event, None, f"noop:{n.reason}", at) for n in noops
        ]
        acks += duplicate_acks(duplicates, at)
        await self.publish(
            dead,
            acks + rejected_acks(dead, at),
            alongside=[
                self.send("history_append", self.config.history_topic, history),
                self.send("enrich_request", self.config.enrich_topic, enrich),
            ],
        )

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
                read = parsed if isinstance(parsed, MemoryEvent) else None
                dead.append(
                    self.dead(
                        incoming,
                        problem.reason,
                        problem.detail,
                        problem.event_id,
                        problem.tenant,
                        stage="validate",
                        memory_id=read.resolved_memory_id if read else problem.memory_id,
                    )
                )
        return dead, valid

    def _state_writes(
        self, batch: Sequence[Incoming[H]], plan: BatchPlan, failed: dict[str, Failed]
    ) -> list[StateWrite]:
        """The states the batch leaves, committed last, once everything they vouch for
        is durable. No-ops and refusals are remembered too (their event ids and log
        positions), so that a re-delivered one stays a no-op whatever changed since."""
        return [
            StateWrite(batch[index].source.partition, key, after)
            for key, (index, after) in plan.states.items()
            if key not in failed
        ]

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
