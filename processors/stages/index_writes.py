"""The index stage's writes to the vector store: vectors, then objects.

A plan's final changes become objects (upserts with their vectors, deletes) and are
written through :class:`~processors.stages.object_writes.ObjectWriter` under the write
lock shared with the enrich stage. Supplied vectors are used as they are; the rest
are embedded in one call on a worker thread, off the event loop. Depends on ports
and core only; the clock, sleep and jitter are injected.

Not pure (awaits I/O), through the ports only.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from datetime import datetime

from processors.core.health import Health
from processors.core.objects import (
    DeleteItem,
    ObjectError,
    UpsertItem,
    object_properties,
    object_uuid,
)
from processors.core.plan import Applied, BatchPlan, Kind
from processors.metrics import Metrics
from processors.ports import Clock, Sleep, TextEmbedder, VectorStore
from processors.stages.object_writes import Failed, ObjectWriter, Retry, WritePolicy

__all__ = ["IndexWrites", "object_items"]


def object_items(
    upserts: Sequence[Applied],
    vectors: Sequence[list[float]],
    deletes: Sequence[Applied],
    at: datetime,
) -> tuple[dict[str, tuple[str, UpsertItem]], dict[str, tuple[str, DeleteItem]]]:
    """uuid -> (memory key, item) of the upserts and the deletes; ``at`` is the
    objects' ``updated_at``. Pure."""
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
    return items, gone


class IndexWrites:
    """Makes the vector store hold each memory's final state of a batch."""

    def __init__(
        self,
        embedder: TextEmbedder,
        store: VectorStore,
        policy: WritePolicy,
        retry: Retry[dict[str, ObjectError]],
        metrics: Metrics,
        health: Health,
        *,
        embed_batch: int,
        write_lock: asyncio.Lock,
        now: Clock,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.embedder, self.metrics, self.health = embedder, metrics, health
        self.embed_batch, self.write_lock, self.now = embed_batch, write_lock, now
        self.store, self.retry = store, retry
        self.writer = ObjectWriter(
            store, policy, retry, self._count_object_retries, sleep=sleep, rng=rng
        )

    def _count_object_retries(self, objects: int, transient: bool) -> None:
        self.metrics.retries.labels("weaviate_object").inc(objects)
        if transient:
            self.health.set_waiting("weaviate_object", f"{objects} objects refused for now")

    async def write(self, plan: BatchPlan) -> dict[str, Failed]:
        """Make the store hold each memory's final state; key -> why, for what it refused."""
        finals = plan.final_changes()
        upserts = [a for a in finals if a.kind == Kind.UPSERT]
        # Deletes go out even for memories the state never saw live: after a crash between
        # a Weaviate write and the state write, Weaviate can hold what the state does not.
        deletes = [a for a in finals if a.kind != Kind.UPSERT]
        erase_keys = {a.key for a in deletes if a.kind == Kind.ERASE}
        vectors = await self._vectors(upserts)
        items, gone = object_items(upserts, vectors, deletes, self.now())
        async with self.write_lock:
            started = time.perf_counter()
            failed = await self.writer.write(items, gone)
        self.metrics.stage_seconds.labels("weaviate_write").observe(time.perf_counter() - started)
        self.health.set_waiting("weaviate_object", None)
        # An erase reaches every generation of the collection, not only the one served.
        erased = [item for key, item in gone.values() if key not in failed and key in erase_keys]
        if erased:
            await self.retry("weaviate_erase_kept", lambda: self.store.erase_kept(erased))
        return failed

    async def _vectors(self, upserts: Sequence[Applied]) -> list[list[float]]:
        """Supplied vectors as they are; the rest embedded in one call, off the event loop."""
        to_embed = [a for a in upserts if a.event.vector is None]
        if not to_embed:
            return [a.event.vector for a in upserts if a.event.vector is not None]
        started = time.perf_counter()
        embedded = await asyncio.to_thread(
            self.embedder.embed, [a.after.content or "" for a in to_embed], self.embed_batch
        )
        self.metrics.stage_seconds.labels("embed").observe(time.perf_counter() - started)
        by_key = dict(zip((a.key for a in to_embed), embedded, strict=True))
        return [a.event.vector if a.event.vector is not None else by_key[a.key] for a in upserts]
