"""The enrich stage: one micro-batch of ``memory.enrich`` requests to enriched memories.

dispatch: parse, keep the latest version per memory, read the memories (with vectors)
and their older neighbours -> the facts, importance and decision processors run
concurrently, each packing many memories per prompt -> merge: decisions become
derived events on ``memory.events``, facts and importance are written to the
objects still at the enriched version, ``memory.enriched`` says how each ended,
and failures go to the dead-letter topic with stage ``enrich``. The memory itself
was searchable before any of this began, and stays whatever happens here.

Not pure (awaits I/O), through the ports only; clock, sleep and jitter are injected.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from processors.core.cache_scope import cache_scope
from processors.core.enrichment import (
    Candidate,
    Decision,
    DecisionPlan,
    EnrichRequest,
    decision_from_answer,
    decision_item,
    enriched_record,
    local_decision,
    plan_decisions,
)
from processors.core.health import Health
from processors.core.llm_prompts import Failure, PromptKind, Result
from processors.core.objects import StoredMemory, object_uuid
from processors.core.reasons import Reason
from processors.core.records import OutRecord
from processors.core.retry import Backoff
from processors.metrics import Metrics
from processors.ports import (
    Clock,
    EnrichStore,
    Forgetting,
    Incoming,
    ItemProcessor,
    RecordSink,
    Sleep,
    utc_now,
)
from processors.stages.batch_guard import BatchReport, error_detail
from processors.stages.skeleton import DeadLetter, StageSkeleton

__all__ = ["EnrichConfig", "EnrichStage", "gather_bounded"]

log = logging.getLogger(__name__)

H = TypeVar("H")
T = TypeVar("T")


async def gather_bounded(limit: int, calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await coroutines with at most ``limit`` running at once, results in order."""
    slots = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with slots:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


@dataclass(frozen=True)
class EnrichConfig:
    """Topics, neighbour search and retry policy of the enrich stage."""

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

    incoming: Incoming[Any]
    req: EnrichRequest
    stored: StoredMemory
    candidates: list[Candidate] = field(default_factory=list)
    decision: Decision | None = None
    facts: list[str] | None = None
    importance: float | None = None
    failures: dict[str, str] = field(default_factory=dict)
    # the model's raw answers behind the failures that had one, by kind
    answers: dict[str, str] = field(default_factory=dict)
    asked_decision: bool = False  # the decision needed the model (no rule settled it)

    @property
    def key(self) -> str:
        return f"{self.req.tenant}/{self.req.memory_id}"

    def fail(self, kind: str, result: Result | None) -> None:
        """``kind`` got no usable result: its reason, and the raw answer if there was one."""
        self.failures[kind] = _reason(result)
        if isinstance(result, Failure) and result.raw is not None:
            self.answers[kind] = result.raw


class EnrichStage(StageSkeleton[H]):
    """Enrich requests in; derived events, enriched objects, outcomes and dead letters out."""

    ack_operation = "enriched_append"

    def __init__(
        self,
        config: EnrichConfig,
        store: EnrichStore,
        processors: Mapping[PromptKind, ItemProcessor],
        sink: RecordSink,
        metrics: Metrics,
        write_lock: asyncio.Lock,
        *,
        now: Clock = utc_now,
        health: Health | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        cache: Forgetting | None = None,
    ) -> None:
        """``cache``: the processors' ``llm_cache``; its epoch keeps the answers of a
        batch an erase overtook from being cached."""
        super().__init__(
            "enrich", config, sink, metrics, health=health, now=now, sleep=sleep, rng=rng
        )
        self.ack_topic = config.enriched_topic
        self.config, self.store, self.processors = config, store, processors
        self.write_lock = write_lock
        self.cache = cache

    # -- the skeleton's hooks ----------------------------------------------------------

    def identify(self, incoming: Incoming[H]) -> tuple[str | None, str | None, str | None]:
        req = _parse_request(incoming.value)
        return (req.event_id, req.tenant, req.memory_id) if req is not None else (None, None, None)

    def quarantine_acks(self, incoming: Incoming[H], dead: DeadLetter) -> list[OutRecord]:
        """A ``failed`` outcome (the memory stays searchable, unenriched)."""
        self.metrics.enrichments.labels("failed").inc()
        req = _parse_request(incoming.value)
        if req is None:
            return []
        failures = {"enrich": f"{dead.reason}: {dead.detail}"}
        return [enriched_record(req, "failed", None, None, None, failures, self._now_ms())]

    # -- the batch ---------------------------------------------------------------------

    async def process(self, batch: Sequence[Incoming[H]]) -> BatchReport:
        if not batch:
            return BatchReport()
        dead: list[DeadLetter] = []
        acks: list[OutRecord] = []
        latest = self._dispatch(batch, dead, acks)
        # Taken before the memories are read: an erase after this point (which forgets
        # the tenant's cached answers once the memory is gone) keeps this batch's
        # answers out of the cache.
        keep = self._unchanged_cache()

        started = time.perf_counter()
        pending = await self._load(latest, acks)
        await self._neighbours(pending)
        self.metrics.stage_seconds.labels("enrich_read").observe(time.perf_counter() - started)

        started = time.perf_counter()
        await self._ask(pending, keep)
        self.metrics.stage_seconds.labels("enrich_llm").observe(time.perf_counter() - started)

        started = time.perf_counter()
        plan = plan_decisions([(p.req, p.decision) for p in pending if p.decision is not None])
        occurred = {p.req.event_id: p.req.occurred_at for p in pending}
        # beside the tenant's events, whatever partitioner their producer used
        partition = {p.req.event_id: p.incoming.source.partition for p in pending}
        derived = [
            OutRecord(
                c.tenant.encode(),
                c.event(occurred.get(c.caused_by)).to_json(),
                partition.get(c.caused_by),
            )
            for c in plan.changes
        ]
        await self.send("derived_append", self.config.events_topic, derived)
        await self._write(pending, plan.superseded)
        self.metrics.stage_seconds.labels("enrich_write").observe(time.perf_counter() - started)

        self._settle(pending, plan, dead, acks, keep)
        await self.publish(dead, acks)
        return BatchReport(len(batch), len(pending), len(batch) - len(pending), len(dead))

    def _dispatch(
        self, batch: Sequence[Incoming[H]], dead: list[DeadLetter], acks: list[OutRecord]
    ) -> list[tuple[Incoming[H], EnrichRequest]]:
        """The latest version requested per memory; older ones acked ``stale``,
        unreadable ones dead-lettered."""
        latest: dict[str, tuple[Incoming[H], EnrichRequest]] = {}
        for incoming in batch:
            req = _parse_request(incoming.value)
            if req is None:
                detail = _request_problem(incoming.value)
                dead.append(self.dead(incoming, Reason.INVALID_REQUEST, detail, None, None))
                continue
            key = f"{req.tenant}/{req.memory_id}"
            older = latest.get(key)
            if older is not None and older[1].version <= req.version:
                acks.append(self._ack(older[1], "stale"))
            if older is None or older[1].version <= req.version:
                latest[key] = (incoming, req)
            else:
                acks.append(self._ack(req, "stale"))
        return list(latest.values())

    def _settle(
        self,
        pending: list[Pending],
        plan: DecisionPlan,
        dead: list[DeadLetter],
        acks: list[OutRecord],
        keep: Callable[[], bool],
    ) -> None:
        """How each request ended (enriched, partial or failed), and dead letters for
        what failed: an outcome of "failed" or "partial" vouches for its dead letter."""
        now_ms = self._now_ms()
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
                dead.append(
                    self.dead(
                        p.incoming,
                        reason,
                        detail,
                        p.req.event_id,
                        p.req.tenant,
                        # the model's answers may quote the memory: none once an erase
                        # has run since the batch began (it may be this memory's)
                        context={f"{k}_answer": v for k, v in p.answers.items()}
                        if keep()
                        else None,
                        memory_id=p.req.memory_id,
                    )
                )

    def _now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    def _ack(self, req: EnrichRequest, outcome: str) -> OutRecord:
        self.metrics.enrichments.labels(outcome).inc()
        return enriched_record(req, outcome, None, None, None, {}, self._now_ms())

    async def _load(
        self, requests: list[tuple[Incoming[H], EnrichRequest]], acks: list[OutRecord]
    ) -> list[Pending]:
        """The requests whose memory is still at the requested version (others are stale)."""
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for _, req in requests:
            by_tenant[req.tenant].append(object_uuid(req.tenant, req.memory_id))
        tenants = list(by_tenant)
        fetched = await self.retry(
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
        found = await self.retry(
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
            p.decision = local_decision(p.stored.content, candidates)

    def _unchanged_cache(self) -> Callable[[], bool]:
        cache = self.cache
        if cache is None:
            return lambda: True
        epoch = cache.epoch()
        return lambda: cache.epoch() == epoch

    async def _ask(self, pending: list[Pending], keep: Callable[[], bool]) -> None:
        """The three processors, concurrently; each packs its items into few prompts,
        each prompt about one tenant's memories only."""
        ids = {str(i): p for i, p in enumerate(pending)}
        scopes = {i: cache_scope(p.incoming.source.partition, p.req.tenant) for i, p in ids.items()}
        text_items = {i: {"memory": p.stored.content} for i, p in ids.items()}
        decide_items = {
            i: decision_item(p.stored.content, p.candidates)
            for i, p in ids.items()
            if p.req.decide and p.decision is None
        }
        facts, importance, decisions = await asyncio.gather(
            self.processors[PromptKind.FACTS].run(text_items, scopes, keep),
            self.processors[PromptKind.IMPORTANCE].run(text_items, scopes, keep),
            self.processors[PromptKind.DECISION].run(decide_items, scopes, keep),
        )
        for i, p in ids.items():
            p.asked_decision = i in decide_items
            got = facts.get(i)
            if isinstance(got, dict):
                p.facts = [str(f) for f in got.get("facts", [])]
            else:
                p.fail("facts", got)
            got = importance.get(i)
            if isinstance(got, dict):
                p.importance = float(got["importance"])
            else:
                p.fail("importance", got)
            if i in decide_items:
                got = decisions.get(i)
                if isinstance(got, dict):
                    p.decision = decision_from_answer(got, p.candidates)
                else:
                    p.fail("decision", got)

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
            written = await self.retry(
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
