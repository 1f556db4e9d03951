"""``agentmem rebuild``: a new generation of the memory collection, filled from
``memory.events`` while the live workers keep indexing, then served. Not pure.

1. The next generation (``Memory_g<N+1>``) is created with the schema of this code.
2. Every partition of memory.events is read from offset 0 and applied by the index
   stage itself (same rules, same object ids and versions; events that carry their
   vectors keep them, the rest are embedded with the configured model and batch size)
   against a state of its own, into the new generation; history, acks, enrich
   requests and dead letters are not written again (the live pipeline wrote them).
   States and positions commit together to a local RocksDB, so a killed rebuild
   resumes where it stopped.
3. Once within one batch of the log's end, the alias every reader and writer uses
   moves to the new generation (atomically, in Weaviate). The live workers then write
   there; the rebuild goes on until, for every partition, the log holds nothing it has
   not applied after its last write, so that nothing the live workers applied to the
   old generation before the switch is missing from the new one. (Its writes and the
   workers' may interleave on a memory meanwhile; both end with the memory's latest
   event, so the last write is the right one either way.)
4. The old generation is kept (erase reaches it too) or dropped (``drop_old``).

Progress (rate, ETA) goes to a callback; the lag is the gauge
``agentmem_rebuild_lag_events``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.adapters.weaviate.generations import (
    ensure_alias,
    generation_name,
    generation_number,
    generations,
    switch_alias,
)
from processors.adapters.weaviate.schema import ensure_collection
from processors.adapters.weaviate.store import WeaviateStore
from processors.core.health import Health
from processors.core.records import OutRecord, SourceRef
from processors.metrics import Metrics
from processors.ports import Incoming
from processors.stages.index import IndexConfig, IndexStage
from processors.stages.object_writes import WritePolicy
from streams import clients
from streams.client.topics import Topics, partitions_of
from streams.service.lifecycle import limits_of
from streams.service.state import LocalState
from streams.settings import Settings

if TYPE_CHECKING:
    import weaviate

__all__ = ["Progress", "RebuildRefused", "Rebuilt", "rebuild"]

log = logging.getLogger(__name__)


class RebuildRefused(RuntimeError):
    """The rebuild cannot start (the message says why and what to do)."""


@dataclass(frozen=True)
class Progress:
    generation: str
    applied: int  # events applied (or skipped as applied) so far
    total: int  # the log's length, as last measured
    rate: float  # events per second, this run
    switched: bool

    @property
    def lag(self) -> int:
        return max(0, self.total - self.applied)

    @property
    def eta_s(self) -> float | None:
        return self.lag / self.rate if self.rate > 0 else None


@dataclass(frozen=True)
class Rebuilt:
    generation: str
    previous: str
    events: int
    seconds: float
    dropped: bool


class DiscardSink:
    """The rebuild's record sink: history, acks and dead letters exist already."""

    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None:
        return None


def work_dir(settings: Settings, generation: str) -> Path:
    """Where the rebuild of ``generation`` keeps its state and positions."""
    return settings.stack_dir / "rebuild" / generation


async def _target(
    settings: Settings, client: weaviate.WeaviateAsyncClient
) -> tuple[str, str, bool]:
    """(generation to fill, generation served now, resumed?)."""
    alias = settings.weaviate_collection
    served = await ensure_alias(client, alias)
    if generation_number(alias, served) is None:
        raise RebuildRefused(
            f"{alias} is a collection made before generations, not an alias; rebuild "
            f"into a new AGENTMEM_WEAVIATE_COLLECTION instead, or move {alias} to "
            f"{generation_name(alias, 1)} and make {alias} an alias of it"
        )
    existing = await generations(client, alias)
    for number in sorted(existing, reverse=True):
        name = existing[number]
        if name != served and work_dir(settings, name).is_dir():
            return name, served, True  # a rebuild that was stopped: go on with it
    name = generation_name(alias, max(existing) + 1)
    await ensure_collection(client, name)
    return name, served, False


async def rebuild(
    settings: Settings,
    metrics: Metrics,
    *,
    batch_size: int,
    drop_old: bool,
    progress: Callable[[Progress], None] = lambda p: None,
) -> Rebuilt:
    """Fill the next generation from the log, switch the alias to it, and return."""
    started = time.monotonic()
    client = clients.weaviate_async(settings)
    await client.connect()
    consumer: AIOKafkaConsumer | None = None
    try:
        target, previous, resumed = await _target(settings, client)
        log.warning("rebuilding %s (%s) from the log", target, "resumed" if resumed else "new")
        folder = work_dir(settings, target)
        state = LocalState(folder / "memory_state")
        topics = Topics.from_settings(settings)
        stage: IndexStage[None] = IndexStage(
            IndexConfig(
                history_topic=topics.history,
                deadletter_topic=topics.deadletter,
                indexed_topic=topics.indexed,
                limits=limits_of(settings),
                embed_batch=batch_size,
                enrich_topic=None,
                writes=WritePolicy(transient_budget_s=settings.weaviate_transient_budget_s),
            ),
            state,
            clients.embedder(settings),
            WeaviateStore(client, target),
            DiscardSink(),
            metrics,
            health=Health(),
        )
        partitions = await partitions_of(settings, topics.events)
        tps = [TopicPartition(topics.events, p) for p in partitions]
        consumer = clients.follower_consumer(settings, from_beginning=True)
        await consumer.start()
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, state.applied_through(tp.partition) + 1)
        lag = metrics.rebuild_lag.labels(target)
        applied_at_start = sum(state.applied_through(tp.partition) + 1 for tp in tps)
        switched, done = False, set[TopicPartition]()
        while len(done) < len(tps):
            ends = await consumer.end_offsets([tp for tp in tps if tp not in done])
            behind = {
                tp: end - (state.applied_through(tp.partition) + 1) for tp, end in ends.items()
            }
            if switched:
                # nothing in the log this rebuild has not applied: the live workers
                # apply whatever comes next, to the new generation
                done |= {tp for tp, n in behind.items() if n <= 0}
                consumer.pause(*done)
            total_lag = sum(max(0, n) for n in behind.values())
            lag.set(total_lag)
            applied = sum(state.applied_through(tp.partition) + 1 for tp in tps)
            elapsed = max(1e-6, time.monotonic() - started)
            progress(
                Progress(target, applied, applied + total_lag,
                         (applied - applied_at_start) / elapsed, switched)
            )  # fmt: skip
            if not switched and total_lag <= batch_size:
                await switch_alias(client, settings.weaviate_collection, target)
                switched = True
                continue
            if len(done) == len(tps):
                break
            fetched = await consumer.getmany(timeout_ms=200, max_records=batch_size)
            batch = [
                Incoming(
                    m.key, m.value, SourceRef(m.topic, m.partition, m.offset, m.timestamp), None
                )
                for messages in fetched.values()
                for m in messages
            ]
            if batch:
                await stage.process_safely(batch)
        lag.set(0)
        state.close()
        shutil.rmtree(folder, ignore_errors=True)
        if drop_old:
            await client.collections.delete(previous)
            log.warning("dropped the previous generation %s", previous)
        events = sum((await consumer.end_offsets(tps)).values())
        return Rebuilt(target, previous, events, time.monotonic() - started, drop_old)
    finally:
        if consumer is not None:
            await consumer.stop()
        await client.close()
