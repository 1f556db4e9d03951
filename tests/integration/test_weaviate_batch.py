"""The index stage's Weaviate writes against the real server: a batch of many tenants
is one Weaviate call, each object lands in its own tenant, and a refusal fails only
what it should (processors/adapters/weaviate/store.py, .batch_objects).

Calls are counted at the client's boundary with the server: every gRPC method of the
connection's stub and every HTTP request of its REST client."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import weaviate

from processors.adapters.weaviate.schema import ensure_collection
from processors.adapters.weaviate.store import WeaviateStore
from processors.core.errors import TransientError
from processors.core.objects import DeleteItem, UpsertItem, object_uuid
from streams import clients
from streams.settings import Settings
from tests.integration.harness import isolated_settings, weaviate_objects

DIM = 384


class CountingStub:
    """The connection's gRPC stub, counting each method called through it."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.stub, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return call


class Calls:
    """Every request the async client sends to Weaviate from now on, by gRPC method
    and REST path (private parts of the client: a client upgrade that moves them
    fails these tests at ``install``, not silently)."""

    def __init__(self, client: weaviate.WeaviateAsyncClient) -> None:
        connection = client._connection
        self.grpc = CountingStub(connection._grpc_stub)
        connection._grpc_stub = self.grpc
        self.rest: Counter[str] = Counter()
        rest_client: httpx.AsyncClient = connection._client

        async def count(request: httpx.Request) -> None:
            self.rest[f"{request.method} {request.url.path}"] += 1

        rest_client.event_hooks["request"].append(count)

    def all(self) -> Counter[str]:
        return self.grpc.calls + self.rest

    def reset(self) -> None:
        self.grpc.calls.clear()
        self.rest.clear()


@pytest.fixture
async def store(stack: Settings, tmp_path: Path) -> AsyncIterator[tuple[Settings, WeaviateStore]]:
    """A store on a fresh collection (no alias: the shard API names it directly)."""
    settings = isolated_settings(stack, tmp_path / "state")
    client = clients.weaviate_async(settings)
    await client.connect()
    name = settings.weaviate_collection
    try:
        await ensure_collection(client, name)
        yield settings, WeaviateStore(client, name)
    finally:
        await client.collections.delete(name)
        await client.close()


def vector(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def item(tenant: str, memory_id: str, content: str, rng: random.Random, **props: Any) -> UpsertItem:
    properties = {"memory_id": memory_id, "content": content, "version": 1, **props}
    return UpsertItem(tenant, object_uuid(tenant, memory_id), properties, vector(rng))


def set_tenant_status(
    client: weaviate.WeaviateClient, collection: str, tenant: str, status: str
) -> None:
    client.collections.use(collection).config.update_shards(status=status, shard_names=tenant)


def stored(settings: Settings, tenants: list[str]) -> dict[str, dict[str, tuple[str, int]]]:
    return weaviate_objects(settings, tenants)


async def test_a_batch_of_many_tenants_is_one_weaviate_call(
    store: tuple[Settings, WeaviateStore],
) -> None:
    settings, writer = store
    rng = random.Random(1)
    tenants = [f"user-{n:03d}" for n in range(60)]
    items = [item(tenants[n % 60], f"m-{n}", f"memory {n}", rng) for n in range(256)]
    calls = Calls(writer.client)

    assert await writer.upsert(items) == {}
    assert calls.all() == Counter({"BatchObjects": 1})  # 60 new tenants, one request

    landed = stored(settings, tenants)
    expected: dict[str, dict[str, tuple[str, int]]] = {t: {} for t in tenants}
    for n in range(256):
        expected[tenants[n % 60]][f"m-{n}"] = (f"memory {n}", 1)
    assert landed == expected

    # deletes still go per tenant: the gRPC batch delete takes one tenant
    calls.reset()
    gone = [DeleteItem(i.tenant, i.uuid) for i in items if i.tenant in tenants[:2]]
    assert await writer.delete(gone) == {}
    assert calls.all() == Counter({"BatchDelete": 2})


async def test_a_refused_tenant_fails_only_its_own_objects(
    store: tuple[Settings, WeaviateStore],
    weaviate_client: weaviate.WeaviateClient,
) -> None:
    settings, writer = store
    rng = random.Random(2)
    locked, checked, free = "ro-tenant", "typed-tenant", "free-tenant"
    first = [
        item(t, f"m-{n}", f"{t} first {n}", rng) for t in (locked, checked, free) for n in range(5)
    ]
    assert await writer.upsert(first) == {}
    set_tenant_status(weaviate_client, writer.name, locked, "READONLY")

    # one request: the read-only tenant's objects (changes and adds), one object with a
    # property of the wrong type among another tenant's, and a tenant with nothing wrong
    batch = [
        *(item(locked, f"m-{n}", f"{locked} second {n}", rng) for n in range(3, 8)),
        *(item(checked, f"m-{n}", f"{checked} second {n}", rng) for n in range(3, 8)),
        item(checked, "m-bad", "a wrong type", rng, importance="very"),
        *(item(free, f"m-{n}", f"{free} second {n}", rng) for n in range(3, 8)),
    ]
    interleaved = batch[::2] + batch[1::2]  # tenants mixed in the request
    calls = Calls(writer.client)
    errors = await writer.upsert(interleaved)
    assert calls.all() == Counter({"BatchObjects": 1})

    bad = object_uuid(checked, "m-bad")
    locked_uuids = {i.uuid for i in batch if i.tenant == locked}
    assert set(errors) == locked_uuids | {bad}
    assert all(errors[u].transient for u in locked_uuids), errors
    assert not errors[bad].transient, errors[bad]
    assert "importance" in errors[bad].message

    set_tenant_status(weaviate_client, writer.name, locked, "READY")
    landed = stored(settings, [locked, checked, free])
    # the read-only tenant kept what it had; the others took every valid object
    assert landed[locked] == {f"m-{n}": (f"{locked} first {n}", 1) for n in range(5)}
    for tenant in (checked, free):
        expected = {f"m-{n}": (f"{tenant} first {n}", 1) for n in range(3)}
        expected |= {f"m-{n}": (f"{tenant} second {n}", 1) for n in range(3, 8)}
        assert landed[tenant] == expected

    # once writable, the refused objects go through (the retry the stage makes)
    retry = [i for i in batch if i.uuid in locked_uuids]
    assert await writer.upsert(retry) == {}
    after = stored(settings, [locked])[locked]
    assert after == {
        **{f"m-{n}": (f"{locked} first {n}", 1) for n in range(3)},
        **{f"m-{n}": (f"{locked} second {n}", 1) for n in range(3, 8)},
    }


async def test_a_closed_client_is_a_transient_failure_and_reconnects(
    store: tuple[Settings, WeaviateStore],
) -> None:
    settings, writer = store
    rng = random.Random(3)
    items = [item(f"t-{n % 3}", f"m-{n}", f"memory {n}", rng) for n in range(9)]
    await writer.client.close()
    with pytest.raises(TransientError, match="WeaviateClosedClientError"):
        await writer.upsert(items)
    assert writer.client.is_connected()
    assert await writer.upsert(items) == {}
    assert sum(len(v) for v in stored(settings, ["t-0", "t-1", "t-2"]).values()) == 9
