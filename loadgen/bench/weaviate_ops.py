"""What the growth benchmarks do in Weaviate themselves, beside the worker: find the
collection an alias serves, count its tenants (one shard each), bulk-load objects
into it, and time searches as the service's reader issues them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import weaviate
from weaviate.classes.init import AdditionalConfig, Timeout

from loadgen.bench.harness import weaviate_client
from loadgen.bench.imports import add_all
from processors.adapters.weaviate.generations import generation_number
from processors.adapters.weaviate.reader import MemoryReader
from processors.core.objects import UpsertItem
from streams import clients
from streams.settings import Settings

__all__ = [
    "Query",
    "bulk_load",
    "drop_collection",
    "object_count",
    "search_latencies_ms",
    "served_collection",
    "tenant_count",
]


@dataclass(frozen=True)
class Query:
    """One search of the benchmark: a tenant, the text asked and its vector."""

    tenant: str
    text: str
    vector: list[float]


def served_collection(settings: Settings) -> str:
    """The collection the worker's alias points at (the name itself without an alias)."""
    alias = settings.weaviate_collection
    with weaviate_client(settings) as client:
        found = client.alias.get(alias_name=alias)
    return found.collection if found is not None else alias


def tenant_count(settings: Settings) -> int:
    """Tenants (shards) of the worker's served collection."""
    name = served_collection(settings)
    with weaviate_client(settings) as client:
        return len(client.collections.use(name).tenants.get())


def object_count(settings: Settings, tenants: Sequence[str]) -> int:
    """Objects stored in ``tenants`` of the served collection."""
    coll_name = served_collection(settings)
    with weaviate_client(settings) as client:
        coll = client.collections.use(coll_name)
        return sum(
            coll.with_tenant(t).aggregate.over_all(total_count=True).total_count or 0
            for t in tenants
        )


def bulk_load(settings: Settings, objects: Sequence[UpsertItem], batch_size: int) -> float:
    """Import ``objects`` into the served collection with the client's batching; the
    seconds it took. Raises if Weaviate refused any."""
    name = served_collection(settings)
    with weaviate_client(settings) as client:
        started = time.perf_counter()
        with client.batch.fixed_size(batch_size=batch_size, concurrent_requests=2) as batch:
            add_all(batch, name, objects)
        seconds = time.perf_counter() - started
        failed = client.batch.failed_objects
    if failed:
        raise RuntimeError(f"bulk load: {len(failed)} of {len(objects)} refused: {failed[0]}")
    return seconds


async def _latencies(settings: Settings, queries: Sequence[Query]) -> list[float]:
    async with clients.weaviate_async(settings) as client:
        reader = MemoryReader(client, settings.weaviate_collection)
        out = []
        for q in queries:
            started = time.perf_counter()
            await reader.search(q.tenant, q.text, q.vector)
            out.append((time.perf_counter() - started) * 1000)
        return out


def search_latencies_ms(settings: Settings, queries: Sequence[Query]) -> list[float]:
    """Each query's time in milliseconds, one after the other, through
    :class:`MemoryReader` on the alias with the service's defaults (hybrid, limit 10)."""
    return asyncio.run(_latencies(settings, queries))


def drop_collection(settings: Settings, timeout_s: float = 600.0) -> list[str]:
    """Delete the worker's alias and every generation behind it that is still there,
    waiting up to ``timeout_s`` for each: a collection of many tenants takes longer
    than the client's default timeout (and holds thousands of Weaviate's open files
    while it stays). The names deleted."""
    alias = settings.weaviate_collection
    config = AdditionalConfig(timeout=Timeout(init=30, query=timeout_s, insert=timeout_s))
    with weaviate.connect_to_local(
        host=settings.weaviate_host,
        port=settings.weaviate_http_port,
        grpc_port=settings.weaviate_grpc_port,
        auth_credentials=clients.weaviate_auth(settings),
        additional_config=config,
    ) as client:
        if client.alias.get(alias_name=alias) is not None:
            client.alias.delete(alias_name=alias)
        names = [n for n in client.collections.list_all(simple=True)
                 if n == alias or generation_number(alias, n) is not None]  # fmt: skip
        for name in names:
            client.collections.delete(name)
    return names
