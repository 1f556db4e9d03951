"""The batch skeleton both stages share: the last line of defence and dead letters.

A stage subclasses :class:`StageSkeleton` and writes its own ``process`` (one
micro-batch) plus two small hooks for the event it must quarantine. The skeleton
gives it the rest, the same for every stage:

- ``process_safely``: counts the batch, marks it busy for liveness, and runs it
  through :class:`~processors.stages.batch_guard.BatchGuard` (retried, then bisected
  until the events that fail alone are found); never raises;
- quarantine: the event that fails alone is dead-lettered with reason
  ``internal_error`` and the stage's answer for it is sent after its dead letter;
- dead letters: built in full and cut short (sent if the broker refuses the full
  one), sent with :meth:`~processors.stages.stage_retry.StageRetry.must_send` (never
  given up), then logged and counted;
- ``publish``: dead letters (and whatever goes out alongside them) first, then the
  acks that vouch for them.

Depends on ports and core only; clock, sleep and jitter are injected.

Not pure (awaits I/O), through the ports only.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from processors.core.health import Health
from processors.core.reasons import Reason
from processors.core.records import OutRecord, SourceRef, dead_letter_key, dead_letter_record
from processors.core.retry import Backoff
from processors.metrics import Metrics
from processors.ports import Clock, Incoming, RecordSink, Sleep
from processors.stages.batch_guard import BatchGuard, BatchReport, error_detail
from processors.stages.stage_retry import StageRetry

__all__ = ["SMALL_DEAD_LETTER_BYTES", "DeadLetter", "StagePolicy", "StageSkeleton"]

log = logging.getLogger(__name__)

H = TypeVar("H")

# A dead letter the broker refused as too large is sent again cut to this size.
SMALL_DEAD_LETTER_BYTES = 8 * 1024


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter ready to send, with what the stage logs and counts of it."""

    stage: str
    reason: str
    detail: str
    source: SourceRef
    event_id: str | None
    record: OutRecord
    tenant: str | None = None
    small: OutRecord | None = None  # the same, cut short, if the broker refuses record


class StagePolicy(Protocol):
    """What the skeleton reads of a stage's config."""

    @property
    def deadletter_topic(self) -> str: ...

    @property
    def backoff(self) -> Backoff: ...

    @property
    def batch_attempts(self) -> int:
        """Tries of a batch that fails as a whole before it is bisected."""
        ...


class StageSkeleton(ABC, Generic[H]):
    """The shared half of a stage; ``stage`` names it in metrics, logs and dead letters.

    A subclass sets ``ack_operation`` (the retry/metrics label of its acks) and, in its
    constructor, ``ack_topic`` (where it says how each event ended)."""

    ack_operation: ClassVar[str]
    ack_topic: str

    def __init__(
        self,
        stage: str,
        policy: StagePolicy,
        sink: RecordSink,
        metrics: Metrics,
        *,
        health: Health | None,
        now: Clock,
        sleep: Sleep,
        rng: random.Random | None,
    ) -> None:
        self.stage = stage
        self.sink, self.metrics, self.now = sink, metrics, now
        self.deadletter_topic = policy.deadletter_topic
        self.health = health or Health()
        self.sleep = sleep
        self.rng = rng or random.Random()
        backoff = policy.backoff
        self.retry = StageRetry(metrics, self.health, backoff, sleep=sleep, rng=self.rng)
        self.guard: BatchGuard[Incoming[H]] = BatchGuard(
            stage,
            self.process,
            self._quarantine,
            lambda size: self.metrics.batches_isolated.labels(stage).inc(),
            attempts=policy.batch_attempts,
            backoff=backoff,
            sleep=sleep,
            rng=self.rng,
        )

    # -- what each stage supplies ----------------------------------------------------

    @abstractmethod
    async def process(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        """One micro-batch; may raise (``process_safely`` deals with it)."""

    @abstractmethod
    def identify(self, incoming: Incoming[H]) -> tuple[str | None, str | None, str | None]:
        """(event id, tenant, memory id) of a message as far as it can be read; never
        raises."""

    @abstractmethod
    def quarantine_acks(self, incoming: Incoming[H], dead: DeadLetter) -> list[OutRecord]:
        """The stage's answer for an event it quarantined (sent after its dead letter)."""

    # -- the skeleton ----------------------------------------------------------------

    async def process_safely(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        """``process`` that never raises: a batch that fails as a whole is retried,
        then bisected until the events that fail alone are found; those are
        dead-lettered (reason ``internal_error``) and the rest applied."""
        self.metrics.batch_size.labels(self.stage).observe(len(batch))
        self.metrics.events_in.labels(self.stage).inc(len(batch))
        self.health.batch_started(self.stage)
        try:
            return await self.guard.run(batch)
        finally:
            self.health.batch_done(self.stage)

    async def _quarantine(self, incoming: Incoming[H], exc: Exception) -> BatchReport:
        """The one event that fails alone: dead-lettered with what it raised."""
        event_id, tenant, memory_id = self.identify(incoming)
        dead = self.dead(
            incoming,
            Reason.INTERNAL_ERROR,
            error_detail(exc),
            event_id,
            tenant,
            memory_id=memory_id,
        )
        await self.publish([dead], self.quarantine_acks(incoming, dead))
        return BatchReport(received=1, dead_lettered=1)

    def dead(
        self,
        incoming: Incoming[H],
        reason: str,
        detail: str,
        event_id: str | None,
        tenant: str | None,
        *,
        stage: str | None = None,
        context: Mapping[str, str] | None = None,
        memory_id: str | None = None,
    ) -> DeadLetter:
        """The dead letter of ``incoming`` (``stage``: the step that refused it, by
        default the stage itself; ``context``: named texts kept beside the reason, such
        as the LLM's raw answers), in full and cut short; keyed by its tenant and
        ``memory_id`` (an erase finds it so), in the partition it was read from."""
        step = stage or self.stage
        key = dead_letter_key(tenant, memory_id, incoming.source)

        def record(max_bytes: int | None = None) -> OutRecord:
            extra = {} if max_bytes is None else {"max_bytes": max_bytes}
            return dead_letter_record(
                step,
                reason,
                detail,
                incoming.source,
                incoming.key,
                incoming.value,
                self.now(),
                event_id,
                tenant,
                context=context,
                record_key=key,
                partition=incoming.source.partition,
                **extra,
            )

        return DeadLetter(
            step,
            reason,
            detail,
            incoming.source,
            event_id,
            record(),
            tenant,
            record(SMALL_DEAD_LETTER_BYTES),
        )

    async def send(self, operation: str, topic: str | None, records: Sequence[OutRecord]) -> None:
        """Records to ``topic`` (none: nothing), retried while the sink is away."""
        if records and topic is not None:
            await self.retry(operation, lambda: self.sink.send_all(topic, records))

    async def send_dead(self, dead: Sequence[DeadLetter]) -> None:
        """Write dead letters (retrying; never given up), then log and count them."""
        if not dead:
            return
        topic = self.deadletter_topic
        records = [d.record for d in dead]
        small = [d.small or d.record for d in dead]
        await self.retry.must_send(
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

    async def publish(
        self,
        dead: Sequence[DeadLetter],
        acks: Sequence[OutRecord],
        alongside: Sequence[Awaitable[None]] = (),
    ) -> None:
        """Dead letters and ``alongside`` sends first, concurrently; then ``acks``
        (to ``ack_topic``). An ack vouches for what is already
        durable, so a reader that sees one can find its dead letter."""
        await asyncio.gather(*alongside, self.send_dead(dead))
        await self.send(self.ack_operation, self.ack_topic, acks)
