"""The enrich stage: one micro-batch of ``memory.enrich`` requests to enriched memories.

dispatch: parse, keep the latest version per memory, read the memories (with vectors)
and their older neighbours -> the facts, importance and decision processors run
concurrently, each packing many memories per prompt -> merge: decisions become
derived events on ``memory.events``, facts and importance are written to the
objects still at the enriched version, ``memory.enriched`` says how each ended,
and failures go to the dead-letter topic with stage ``enrich``. The memory itself
was searchable before any of this began, and stays whatever happens here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from processors.adapters.weaviate.enrich import StoredMemory, gather_bounded
from processors.adapters.weaviate.store import object_uuid
from processors.core.enrichment import (
    Candidate,
    Decision,
    EnrichRequest,
    decision_from_answer,
    decision_item,
    enriched_record,
    local_decision,
    plan_decisions,
)
from processors.core.health import Health
from processors.core.llm_prompts import PromptKind
from processors.core.reasons import Reason
from processors.core.records import OutRecord, dead_letter_record
from processors.core.retry import Backoff, Sleep
from processors.metrics import Metrics
from processors.stages.batch_guard import BatchGuard, BatchReport, error_detail
from processors.stages.enrich_processor import Failure, Result
from processors.stages.index import SMALL_DEAD_LETTER_BYTES, Incoming, RecordSink
from processors.stages.stage_retry import StageRetry

log = logging.getLogger(__name__)

H = TypeVar("H")


class EnrichStore(Protocol):
    async def fetch(self, tenant: str, uuids: Sequence[str]) -> dict[str, StoredMemory]: ...

    async def neighbours(
        self, tenant: str, memory: StoredMemory, limit: int, max_distance: float
    ) -> list[Candidate]: ...

    async def write_enrichment(
        self, tenant: str, updates: dict[str, tuple[int, dict[str, Any]]]
    ) -> tuple[list[str], dict[str, str]]: ...


class ItemProcessor(Protocol):
    async def run(self, items: dict[str, dict[str, Any]]) -> dict[str, Result]: ...


@dataclass(frozen=True)
class EnrichConfig:
    events_topic: str
    enriched_topic: str
    deadletter_topic: str
    candidates: int = 5
    max_distance: float = 0.7
    weaviate_concurrency: int = 16
    backoff: Backoff = field(default_factory=Backoff)
    batch_attempts: int = 3


@dataclass
class Pending:
    """One live request on its way through the batch."""

    incoming: Any
    req: EnrichRequest
    stored: StoredMemory
    candidates: list[Candidate] = field(default_factory=list)
    decision: Decision | None = None
    facts: list[str] | None = None
    importance: float | None = None
    failures: dict[str, str] = field(default_factory=dict)
    asked_decision: bool = False  # the decision needed the model (no rule settled it)

    @property
    def key(self) -> str:
        return f"{self.req.tenant}/{self.req.memory_id}"


class EnrichStage(Generic[H]):
    def __init__(
        self,
        config: EnrichConfig,
        store: EnrichStore,
        processors: Mapping[PromptKind, ItemProcessor],
        sink: RecordSink,
        metrics: Metrics,
        write_lock: asyncio.Lock,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        health: Health | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config, self.store, self.processors = config, store, processors
        self.sink, self.metrics, self.write_lock, self.now = sink, metrics, write_lock, now
        self.health = health or Health()
        self._retry = StageRetry(metrics, self.health, config.backoff, sleep)
        self.guard: BatchGuard[Incoming[H]] = BatchGuard(
            "enrich",
            self.process,
            self._quarantine,
            lambda size: self.metrics.batches_isolated.labels("enrich").inc(),
            attempts=config.batch_attempts,
            backoff=config.backoff,
            sleep=sleep,
        )

    def _dead(
        self,
        incoming: Incoming[H],
        reason: str,
        detail: str,
        req: EnrichRequest | None,
        max_bytes: int | None = None,
    ) -> OutRecord:
        extra = {} if max_bytes is None else {"max_bytes": max_bytes}
        return dead_letter_record(
            "enrich",
            reason,
            detail,
            incoming.source,
            incoming.key,
            incoming.value,
            self.now(),
            req.event_id if req else None,
            req.tenant if req else None,
            **extra,
        )

    async def _send_dead(self, dead: list[tuple[str, OutRecord, OutRecord]]) -> None:
        """(reason, record, the record cut short) -> memory.deadletter, never given up."""
        topic = self.config.deadletter_topic
        await self._retry.must_send(
            "deadletter_append",
            lambda: self.sink.send_all(topic, [r for _, r, _ in dead]),
            lambda: self.sink.send_all(topic, [s for _, _, s in dead]),
        )
        for reason, _, _ in dead:
            self.metrics.deadletters.labels("enrich", reason).inc()
            self.metrics.events_failed.labels("enrich", reason).inc()

    def _dead_pair(
        self, incoming: Incoming[H], reason: str, detail: str, req: EnrichRequest | None
    ) -> tuple[str, OutRecord, OutRecord]:
        return (
            reason,
            self._dead(incoming, reason, detail, req),
            self._dead(incoming, reason, detail, req, SMALL_DEAD_LETTER_BYTES),
        )

    async def process_safely(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        """``process`` that never raises: a batch that fails as a whole is retried, then
        bisected; a request that fails alone is dead-lettered (stage ``enrich``, reason
        ``internal_error``) with a ``failed`` outcome. The memories stay searchable."""
        self.metrics.batch_size.labels("enrich").observe(len(batch))
        self.metrics.events_in.labels("enrich").inc(len(batch))
        self.health.batch_started("enrich")
        try:
            return await self.guard.run(batch)
        finally:
            self.health.batch_done("enrich")

    async def _quarantine(self, incoming: Incoming[H], exc: Exception) -> BatchReport:
        detail = error_detail(exc)
        req = _parse_request(incoming.value)
        outcomes = []
        if req is not None:
            failures = {"enrich": f"{Reason.INTERNAL_ERROR}: {detail}"}
            now_ms = int(self.now().timestamp() * 1000)
            outcomes.append(enriched_record(req, "failed", None, None, None, failures, now_ms))
        self.metrics.enrichments.labels("failed").inc()
        dead = self._dead_pair(incoming, Reason.INTERNAL_ERROR, detail, req)
        await self._publish([dead], outcomes)
        return BatchReport(received=1, dead_lettered=1)

    async def process(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        if not batch:
            return BatchReport()
        dead: list[tuple[str, OutRecord, OutRecord]] = []
        acks: list[OutRecord] = []
        latest: dict[str, tuple[Incoming[H], EnrichRequest]] = {}
        for incoming in batch:
            req = _parse_request(incoming.value)
            if req is None:
                detail = _request_problem(incoming.value)
                dead.append(self._dead_pair(incoming, Reason.INVALID_REQUEST, detail, None))
                continue
            key = f"{req.tenant}/{req.memory_id}"
            older = latest.get(key)
            if older is not None and older[1].version <= req.version:
                acks.append(self._ack(older[1], "stale"))
            if older is None or older[1].version <= req.version:
                latest[key] = (incoming, req)
            else:
                acks.append(self._ack(req, "stale"))

        started = time.perf_counter()
        pending = await self._load(list(latest.values()), acks)
        await self._neighbours(pending)
        self.metrics.stage_seconds.labels("enrich_read").observe(time.perf_counter() - started)

        started = time.perf_counter()
        await self._ask(pending)
        self.metrics.stage_seconds.labels("enrich_llm").observe(time.perf_counter() - started)

        started = time.perf_counter()
        plan = plan_decisions([(p.req, p.decision) for p in pending if p.decision is not None])
        occurred = {p.req.event_id: p.req.occurred_at for p in pending}
        derived = [
            OutRecord(c.tenant.encode(), c.event(occurred.get(c.caused_by)).to_json())
            for c in plan.changes
        ]
        if derived:
            await self._retry(
                "derived_append", lambda: self.sink.send_all(self.config.events_topic, derived)
            )
        await self._write(pending, plan.superseded)
        self.metrics.stage_seconds.labels("enrich_write").observe(time.perf_counter() - started)

        now_ms = int(self.now().timestamp() * 1000)
        for p in pending:
            decision = plan.carried_out.get(p.key, p.decision)
            if decision is not None and p.decision is not None:
                self.metrics.enrich_decisions.labels(decision.action).inc()
            asked = 3 if p.asked_decision else 2
            outcome = (
                "enriched"
                if not p.failures
                else "failed"
                if len(p.failures) >= asked
                else "partial"
            )
            self.metrics.enrichments.labels(outcome).inc()
            if outcome != "failed":
                self.metrics.enrichment_lag_seconds.observe(
                    max(0.0, (now_ms - p.req.indexed_at_ms) / 1000)
                )
            acks.append(
                enriched_record(p.req, outcome, decision, p.facts, p.importance, p.failures, now_ms)
            )
            if p.failures:
                reason = next(iter(p.failures.values())).split(":", 1)[0]
                detail = "; ".join(f"{k}: {v}" for k, v in sorted(p.failures.items()))
                dead.append(self._dead_pair(p.incoming, reason, detail, p.req))
        await self._publish(dead, acks)
        return BatchReport(len(batch), len(pending), len(batch) - len(pending), len(dead))

    async def _publish(
        self, dead: list[tuple[str, OutRecord, OutRecord]], outcomes: list[OutRecord]
    ) -> None:
        """The dead letters first: an outcome of "failed" or "partial" vouches that its
        dead letter is already on the broker (requeue-enrich finds it there)."""
        if dead:
            await self._send_dead(dead)
        if outcomes:
            topic = self.config.enriched_topic
            await self._retry("enriched_append", lambda: self.sink.send_all(topic, outcomes))

    def _ack(self, req: EnrichRequest, outcome: str) -> OutRecord:
        self.metrics.enrichments.labels(outcome).inc()
        now_ms = int(self.now().timestamp() * 1000)
        return enriched_record(req, outcome, None, None, None, {}, now_ms)

    async def _load(
        self, requests: list[tuple[Incoming[H], EnrichRequest]], acks: list[OutRecord]
    ) -> list[Pending]:
        """The requests whose memory is still at the requested version (others are stale)."""
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for _, req in requests:
            by_tenant[req.tenant].append(object_uuid(req.tenant, req.memory_id))
        tenants = list(by_tenant)
        fetched = await self._retry(
            "enrich_fetch",
            lambda: gather_bounded(
                self.config.weaviate_concurrency,
                [self.store.fetch(t, by_tenant[t]) for t in tenants],
            ),
        )
        stored = {t: f for t, f in zip(tenants, fetched, strict=True)}
        pending = []
        for incoming, req in requests:
            memory = stored[req.tenant].get(object_uuid(req.tenant, req.memory_id))
            if memory is None or memory.version != req.version:
                acks.append(self._ack(req, "stale"))
            else:
                pending.append(Pending(incoming, req, memory))
        return pending

    async def _neighbours(self, pending: list[Pending]) -> None:
        deciding = [p for p in pending if p.req.decide]
        found = await self._retry(
            "enrich_neighbours",
            lambda: gather_bounded(
                self.config.weaviate_concurrency,
                [
                    self.store.neighbours(
                        p.req.tenant, p.stored, self.config.candidates, self.config.max_distance
                    )
                    for p in deciding
                ],
            ),
        )
        for p, candidates in zip(deciding, found, strict=True):
            p.candidates = candidates
            p.decision = local_decision(p.req.content, candidates)

    async def _ask(self, pending: list[Pending]) -> None:
        """The three processors, concurrently; each packs its items into few prompts."""
        ids = {str(i): p for i, p in enumerate(pending)}
        text_items = {i: {"memory": p.req.content} for i, p in ids.items()}
        decide_items = {
            i: decision_item(p.req.content, p.candidates)
            for i, p in ids.items()
            if p.req.decide and p.decision is None
        }
        facts, importance, decisions = await asyncio.gather(
            self.processors[PromptKind.FACTS].run(text_items),
            self.processors[PromptKind.IMPORTANCE].run(text_items),
            self.processors[PromptKind.DECISION].run(decide_items),
        )
        for i, p in ids.items():
            p.asked_decision = i in decide_items
            got = facts.get(i)
            if isinstance(got, dict):
                p.facts = [str(f) for f in got.get("facts", [])]
            else:
                p.failures["facts"] = _reason(got)
            got = importance.get(i)
            if isinstance(got, dict):
                p.importance = float(got["importance"])
            else:
                p.failures["importance"] = _reason(got)
            if i in decide_items:
                got = decisions.get(i)
                if isinstance(got, dict):
                    p.decision = decision_from_answer(got, p.candidates)
                else:
                    p.failures["decision"] = _reason(got)

    async def _write(self, pending: list[Pending], superseded: set[str]) -> None:
        """Facts and importance onto the objects still at the enriched version."""
        by_tenant: dict[str, dict[str, tuple[int, dict[str, Any]]]] = defaultdict(dict)
        owners: dict[str, Pending] = {}
        for p in pending:
            if p.key in superseded:
                continue
            props: dict[str, Any] = {}
            if p.facts is not None:
                props["facts"] = p.facts
            if p.importance is not None:
                props["importance"] = p.importance
            if props:
                by_tenant[p.req.tenant][p.stored.uuid] = (p.req.version, props)
                owners[p.stored.uuid] = p
        if not by_tenant:
            return
        tenants = list(by_tenant)
        # Under the lock the index stage takes for its writes: the version check and the
        # write are one step as far as the index stage can tell. Tenants go in parallel
        # so that the lock (and with it the fast path) is held as briefly as possible.
        async with self.write_lock:
            written = await self._retry(
                "enrich_write",
                lambda: gather_bounded(
                    self.config.weaviate_concurrency,
                    [self.store.write_enrichment(t, by_tenant[t]) for t in tenants],
                ),
            )
        for _, errors in written:
            for uid, error in errors.items():
                owners[uid].failures["write"] = f"weaviate_rejected: {error[:200]}"


def _reason(result: Result | None) -> str:
    if isinstance(result, Failure):
        return f"{result.reason}: {result.detail[:200]}"
    return "missing: no result"


def _parse_request(raw: bytes | None) -> EnrichRequest | None:
    """The request, or None for anything unreadable (never raises)."""
    try:
        return EnrichRequest.model_validate_json(raw or b"")
    except Exception:  # noqa: BLE001  # any failure to read it means the same: invalid
        return None


def _request_problem(raw: bytes | None) -> str:
    try:
        EnrichRequest.model_validate_json(raw or b"")
    except ValidationError as exc:
        errors = exc.errors()
        return str(errors[0]["msg"])[:300] if errors else str(exc)[:300]
    except Exception as exc:  # noqa: BLE001
        return error_detail(exc)
    return "unreadable request"
