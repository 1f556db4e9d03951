"""What an erase does beyond the memory's own object, history and state (the index
stage's writes do those): the store's tenant dropped after a tenant erasure, the
tenant's cached enrichment answers forgotten, and the erased memories' dead letters
tombstoned. Run by the index stage once its writes are done (so that nothing
forgotten here can be read back from the store afterwards).

Not pure (awaits I/O), through the ports only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from processors.core.cache_scope import cache_scope
from processors.core.plan import Applied, BatchPlan, Kind, TenantErasure
from processors.core.records import dead_letter_prefix
from processors.ports import DeadLetterEraser, Forgetting, Incoming, VectorStore
from processors.stages.object_writes import Failed
from processors.stages.stage_retry import StageRetry

__all__ = ["ErasureEffects"]


class ErasureEffects:
    """``cache`` and ``deadletters`` are optional (a rebuild has neither to reach)."""

    def __init__(
        self,
        store: VectorStore,
        retry: StageRetry,
        cache: Forgetting | None = None,
        deadletters: DeadLetterEraser | None = None,
    ) -> None:
        self.store, self.retry = store, retry
        self.cache, self.deadletters = cache, deadletters

    async def carry_out(
        self,
        batch: Sequence[Incoming[Any]],
        plan: BatchPlan,
        failed: dict[str, Failed],
        applied: list[Applied],
    ) -> None:
        await self._drop_tenants(plan, failed)
        self._forget(batch, applied, plan.tenant_erasures)
        await self._erase_dead_letters(batch, applied, plan.tenant_erasures)

    async def _drop_tenants(self, plan: BatchPlan, failed: dict[str, Failed]) -> None:
        """The store's tenant of each tenant erasure that took effect whole, when the
        batch leaves the tenant no live memory (a later add in the batch keeps it)."""
        tenants = []
        for erasure in plan.tenant_erasures:
            prefix = f"{erasure.event.tenant}/"
            keys = [k for k in plan.states if k.startswith(prefix)]
            if any(k in failed for k in keys):
                continue  # dead-lettered: the erasure did not take effect whole
            if not any(plan.states[k][1].live for k in keys):
                tenants.append(erasure.event.tenant)
        if tenants:
            drop = sorted(set(tenants))
            await self.retry("weaviate_drop_tenant", lambda: self.store.drop_tenants(drop))

    async def _erase_dead_letters(
        self,
        batch: Sequence[Incoming[Any]],
        applied: list[Applied],
        plan_erasures: list[TenantErasure],
    ) -> None:
        """The dead letters of each erased memory (and of each erased tenant, those of
        no known memory included) tombstoned, in the partition they were written to."""
        if self.deadletters is None:
            return
        prefixes: dict[int, set[bytes]] = {}
        for a in applied:
            if a.kind == Kind.ERASE:
                prefix = dead_letter_prefix(a.event.tenant, a.event.resolved_memory_id)
                prefixes.setdefault(batch[a.index].source.partition, set()).add(prefix)
        for e in plan_erasures:
            prefix = dead_letter_prefix(e.event.tenant)
            prefixes.setdefault(batch[e.index].source.partition, set()).add(prefix)
        eraser = self.deadletters
        for partition, wanted in sorted(prefixes.items()):
            await self.retry("deadletter_erase", _erasing(eraser, partition, sorted(wanted)))

    def _forget(
        self,
        batch: Sequence[Incoming[Any]],
        applied: list[Applied],
        plan_erasures: list[TenantErasure],
    ) -> None:
        """The cached enrichment answers of every tenant with an erased memory, forgotten
        once the memory is gone from the store (an enrichment that read it before is
        kept from caching by the cache's epoch). All the tenant's answers, not only this
        memory's: an answer may fold its text into another memory's, and older versions
        had other texts."""
        if self.cache is None:
            return
        scopes = {
            cache_scope(batch[a.index].source.partition, a.event.tenant)
            for a in applied
            if a.kind == Kind.ERASE
        }
        # a tenant erasure of a tenant with no memory left to erase still forgets
        scopes |= {
            cache_scope(batch[e.index].source.partition, e.event.tenant) for e in plan_erasures
        }
        for scope in sorted(scopes):
            self.cache.forget(scope)


def _erasing(
    eraser: DeadLetterEraser, partition: int, prefixes: list[bytes]
) -> Callable[[], Awaitable[int]]:
    return lambda: eraser.erase(partition, prefixes)
