"""The Weaviate side: the memory collection, tenants, batched upserts and deletes."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter
from weaviate.exceptions import WeaviateDeleteManyError, WeaviateInsertManyAllFailedError

from processors.state import MemoryState

log = logging.getLogger(__name__)

OBJECT_NAMESPACE = uuid.UUID("0f6d8a52-3c1e-4d7b-9a2f-6b8e1c4d2a90")


def object_uuid(tenant: str, memory_id: str) -> str:
    """Deterministic object id: the same memory always lands on the same object."""
    return str(uuid.uuid5(OBJECT_NAMESPACE, f"{tenant}/{memory_id}"))


def metadata_terms(metadata: dict[str, Any]) -> list[str]:
    """``key=value`` strings of the scalar metadata entries, for equality filters."""
    terms = []
    for key, value in sorted(metadata.items()):
        if isinstance(value, bool):
            terms.append(f"{key}={str(value).lower()}")
        elif isinstance(value, str | int | float):
            terms.append(f"{key}={value}")
    return terms


def _date(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def object_properties(
    memory_id: str, state: MemoryState, event_id: str, occurred_at: datetime | None
) -> dict[str, Any]:
    """The stored properties of a live memory."""
    return {
        "content": state.content,
        "memory_id": memory_id,
        "agent_id": state.agent_id,
        "run_id": state.run_id,
        "metadata_json": json.dumps(state.metadata, sort_keys=True),
        "metadata_terms": metadata_terms(state.metadata),
        "version": state.version,
        "event_id": event_id,
        "created_at": _date(state.created_at),
        "updated_at": datetime.now(UTC),
        "occurred_at": occurred_at,
    }


COLLECTION_PROPERTIES = [
    Property(name="content", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
    Property(name="memory_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
    Property(name="agent_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
    Property(name="run_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
    Property(name="metadata_json", data_type=DataType.TEXT, index_searchable=False),
    Property(name="metadata_terms", data_type=DataType.TEXT_ARRAY, tokenization=Tokenization.FIELD),
    Property(name="facts", data_type=DataType.TEXT_ARRAY),
    Property(name="importance", data_type=DataType.NUMBER),
    Property(name="version", data_type=DataType.INT),
    Property(name="event_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
    Property(name="created_at", data_type=DataType.DATE),
    Property(name="updated_at", data_type=DataType.DATE),
    Property(name="occurred_at", data_type=DataType.DATE),
]


@dataclass(frozen=True)
class UpsertItem:
    tenant: str
    uuid: str
    properties: dict[str, Any]
    vector: list[float]


@dataclass(frozen=True)
class DeleteItem:
    tenant: str
    uuid: str


class WeaviateStore:
    """Writes of the index stage. Raises on whole-call failures (the caller retries);
    returns per-object errors so that they can be retried and then dead-lettered.

    Tenants are created on first use by Weaviate itself (auto tenant creation and
    activation are on for the collection), so a batch never waits on a schema call.
    """

    def __init__(self, client: weaviate.WeaviateAsyncClient, collection: str) -> None:
        self.client = client
        self.name = collection

    async def ensure_collection(self) -> None:
        if await self.client.collections.exists(self.name):
            return
        await self.client.collections.create(
            self.name,
            properties=COLLECTION_PROPERTIES,
            vector_config=Configure.Vectors.self_provided(),
            multi_tenancy_config=Configure.multi_tenancy(
                enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
            ),
        )
        log.info("created Weaviate collection %s", self.name)

    async def upsert(self, items: Sequence[UpsertItem]) -> dict[str, str]:
        """Insert or replace objects; returns uuid -> error for objects Weaviate refused."""
        by_tenant: dict[str, list[UpsertItem]] = defaultdict(list)
        for item in items:
            by_tenant[item.tenant].append(item)
        coll = self.client.collections.use(self.name)

        async def one_tenant(tenant: str, group: list[UpsertItem]) -> dict[str, str]:
            objects = [
                DataObject(properties=i.properties, uuid=i.uuid, vector=i.vector) for i in group
            ]
            try:
                result = await coll.with_tenant(tenant).data.insert_many(objects)
            except WeaviateInsertManyAllFailedError as exc:
                return {i.uuid: str(exc)[:500] for i in group}
            return {group[idx].uuid: err.message for idx, err in result.errors.items()}

        results = await asyncio.gather(*(one_tenant(t, g) for t, g in by_tenant.items()))
        return {k: v for r in results for k, v in r.items()}

    async def delete(self, items: Sequence[DeleteItem]) -> None:
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for item in items:
            by_tenant[item.tenant].append(item.uuid)
        coll = self.client.collections.use(self.name)

        async def one_tenant(tenant: str, ids: list[str]) -> None:
            try:
                await coll.with_tenant(tenant).data.delete_many(
                    where=Filter.by_id().contains_any(ids)
                )
            except WeaviateDeleteManyError as exc:
                # A tenant that was never created holds nothing to delete.
                if "tenant not found" not in str(exc):
                    raise

        await asyncio.gather(*(one_tenant(t, ids) for t, ids in by_tenant.items()))
