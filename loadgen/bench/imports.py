"""Plain imports of the same objects into Weaviate, each into a fresh collection of
the project's schema: the candidates of the "plain Weaviate import" baseline, of
which the benchmark takes the best (a ratio against the slowest would flatter us).

- ``client_batch``: the python client's own batching (``client.batch.fixed_size``,
  two requests in flight; its requests mix tenants);
- ``per_tenant``: per batch, one ``insert_many`` per tenant, all at once (what the
  index stage did before its batches became one request);
- ``one_request``: per batch, one gRPC ``BatchObjects`` request holding every tenant
  (:mod:`processors.adapters.weaviate.batch_objects`, as the index stage does now);
- ``server_side``: the client's server-side batching (``client.batch.stream()``, a
  gRPC stream with backpressure; Weaviate >= 1.36). Not in the benchmark's default
  set: it only returns results when the stream ends, which the index stage cannot
  wait for, and it is measured by ``python -m loadgen.bench.tenant_requests``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from weaviate.classes.data import DataObject

from loadgen.bench.harness import delete_collection, weaviate_client
from processors.adapters.weaviate.batch_objects import insert_objects
from processors.adapters.weaviate.schema import ensure_collection_sync
from processors.core.objects import UpsertItem
from streams import clients
from streams.settings import Settings

__all__ = ["BASELINE_WAYS", "WAYS", "import_seconds"]

#: the candidates of the benchmark's baseline
BASELINE_WAYS = ("client_batch", "per_tenant", "one_request")
WAYS = (*BASELINE_WAYS, "server_side")


def _batches(objects: Sequence[UpsertItem], size: int) -> list[Sequence[UpsertItem]]:
    return [objects[i : i + size] for i in range(0, len(objects), size)]


class _Batch(Protocol):
    """What the client's batching contexts (``fixed_size``, ``stream``) take."""

    def add_object(
        self, *, collection: str, properties: Any, uuid: Any, vector: Any, tenant: Any
    ) -> Any: ...


def add_all(batch: _Batch, name: str, objects: Sequence[UpsertItem]) -> None:
    """Hand every object, with its tenant, to one of the client's batching contexts."""
    for o in objects:
        batch.add_object(
            collection=name, properties=o.properties, uuid=o.uuid, vector=o.vector, tenant=o.tenant
        )


def _client_batch(base: Settings, name: str, objects: Sequence[UpsertItem], size: int) -> int:
    with weaviate_client(base) as client:
        with client.batch.fixed_size(batch_size=size, concurrent_requests=2) as batch:
            add_all(batch, name, objects)
        return len(client.batch.failed_objects)


def _server_side(base: Settings, name: str, objects: Sequence[UpsertItem], size: int) -> int:
    with weaviate_client(base) as client:
        with client.batch.stream() as batch:
            add_all(batch, name, objects)
        return len(client.batch.failed_objects)


async def _per_tenant(base: Settings, name: str, objects: Sequence[UpsertItem], size: int) -> int:
    async with clients.weaviate_async(base) as client:
        coll = client.collections.use(name)
        failed = 0
        for batch in _batches(objects, size):
            by_tenant: dict[str, list[UpsertItem]] = defaultdict(list)
            for o in batch:
                by_tenant[o.tenant].append(o)
            results = await asyncio.gather(
                *(
                    coll.with_tenant(t).data.insert_many(
                        [
                            DataObject(properties=o.properties, uuid=o.uuid, vector=o.vector)
                            for o in group
                        ]
                    )
                    for t, group in by_tenant.items()
                )
            )
            failed += sum(len(r.errors) for r in results)
        return failed


async def _one_request(base: Settings, name: str, objects: Sequence[UpsertItem], size: int) -> int:
    async with clients.weaviate_async(base) as client:
        failed = 0
        for batch in _batches(objects, size):
            failed += len(await insert_objects(client, name, batch))
        return failed


def _run(way: str) -> Callable[[Settings, str, Sequence[UpsertItem], int], int]:
    if way == "client_batch":
        return _client_batch
    if way == "server_side":
        return _server_side
    if way == "per_tenant":
        return lambda *args: asyncio.run(_per_tenant(*args))
    if way == "one_request":
        return lambda *args: asyncio.run(_one_request(*args))
    raise ValueError(f"unknown import {way!r}; one of {', '.join(WAYS)}")


def import_seconds(
    base: Settings,
    objects: Sequence[UpsertItem],
    batch_size: int,
    way: str,
    *,
    tenants_first: bool = False,
) -> float:
    """Seconds to import ``objects`` in one of :data:`WAYS` into a fresh collection
    (deleted afterwards); raises if Weaviate refused any of them. ``tenants_first``:
    the tenants are created before the clock starts (else Weaviate creates them on
    first write, inside the measured time, as it does for the worker)."""
    run = _run(way)
    name = f"BenchImport{uuid.uuid4().hex[:8]}"
    try:
        with weaviate_client(base) as client:
            ensure_collection_sync(client, name)
            if tenants_first:
                tenants = sorted({o.tenant for o in objects})
                client.collections.use(name).tenants.create(tenants)
        started = time.perf_counter()
        failed = run(base, name, objects, batch_size)
        seconds = time.perf_counter() - started
    finally:
        delete_collection(base, name)
    if failed:
        raise RuntimeError(f"the {way} import lost {failed} of {len(objects)} objects")
    return seconds
