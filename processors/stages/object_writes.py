"""Make Weaviate hold a batch's final changes, object by object, whatever it refuses.

A call that fails as a whole (Weaviate away) is retried by the caller's ``retry``
for as long as it takes: that is the backpressure that holds the partition. Objects
refused one by one are retried here: a transient refusal (a READONLY shard, a tenant
being activated) for up to ``transient_budget_s``, a permanent one (the object
itself is wrong) ``permanent_attempts`` times. What is still refused after that is
returned as key -> (reason, detail) so that the stage dead-letters exactly those
events and nothing else. A delete counts as done only once Weaviate says the object
is gone. Depends only on the store's port; clock, sleep and jitter are injected.

Not pure (awaits I/O), through the ports only.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from processors.core.objects import DeleteItem, ObjectError, UpsertItem
from processors.core.reasons import Reason
from processors.core.retry import Backoff
from processors.ports import Sleep, VectorStore

__all__ = ["Failed", "ObjectWriter", "Retry", "WritePolicy"]

T = TypeVar("T")
Retry = Callable[[str, Callable[[], Awaitable[T]]], Awaitable[T]]


@dataclass(frozen=True)
class WritePolicy:
    """How long refused objects are tried again before their events are dead-lettered."""

    permanent_attempts: int = 5
    transient_budget_s: float = 300.0
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.2, cap_s=5.0))


@dataclass(frozen=True)
class Failed:
    """Why the store still refuses an object: a dead-letter reason and its detail."""

    reason: str
    detail: str


class ObjectWriter:
    """Writes one batch's objects until each is stored or refused for good."""

    def __init__(
        self,
        store: VectorStore,
        policy: WritePolicy,
        retry: Retry[dict[str, ObjectError]],
        on_object_retry: Callable[[int, bool], None],
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.policy, self.retry, self.sleep = store, policy, retry, sleep
        self.on_object_retry = on_object_retry  # (objects, transient) per round
        self.clock = clock
        self.rng = rng or random.Random()

    async def write(
        self,
        upserts: dict[str, tuple[str, UpsertItem]],
        deletes: dict[str, tuple[str, DeleteItem]],
    ) -> dict[str, Failed]:
        """uuid -> (key, item) in; key -> why it failed out (empty: all written)."""
        started = self.clock()
        keys = {u: key for u, (key, _) in (upserts | deletes).items()}
        pending_u = {u: item for u, (_, item) in upserts.items()}
        pending_d = {u: item for u, (_, item) in deletes.items()}
        refusals: dict[str, int] = {}
        failed: dict[str, Failed] = {}
        round_ = 0
        while pending_u or pending_d:
            errors = await self._round(list(pending_u.values()), list(pending_d.values()))
            pending_u = {u: i for u, i in pending_u.items() if u in errors}
            pending_d = {u: i for u, i in pending_d.items() if u in errors}
            out_of_time = self.clock() - started >= self.policy.transient_budget_s
            for uid, err in errors.items():
                refusals[uid] = refusals.get(uid, 0) + (0 if err.transient else 1)
                if err.transient and out_of_time:
                    failed[keys[uid]] = Failed(Reason.WEAVIATE_UNAVAILABLE, err.message)
                elif refusals[uid] >= self.policy.permanent_attempts:
                    failed[keys[uid]] = Failed(Reason.WEAVIATE_REJECTED, err.message)
                else:
                    continue
                pending_u.pop(uid, None)
                pending_d.pop(uid, None)
            if pending_u or pending_d:
                transient = any(errors[u].transient for u in (*pending_u, *pending_d))
                self.on_object_retry(len(pending_u) + len(pending_d), transient)
                await self.sleep(self.policy.backoff.delay(round_, self.rng))
                round_ += 1
        return failed

    async def _round(
        self, upserts: list[UpsertItem], deletes: list[DeleteItem]
    ) -> dict[str, ObjectError]:
        errors: dict[str, ObjectError] = {}
        if upserts:
            errors |= await self.retry("weaviate_write", lambda: self.store.upsert(upserts))
        if deletes:
            errors |= await self.retry("weaviate_delete", lambda: self.store.delete(deletes))
        return errors
