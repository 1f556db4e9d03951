"""The Weaviate side of enrichment: read memories with their vectors, find older
similar memories of a tenant, and write facts and importance back.

Implements :class:`processors.ports.EnrichStore`. Adapter (network I/O).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import weaviate
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.exceptions import WeaviateQueryError

from processors.adapters.weaviate.store import WeaviateStore
from processors.core.enrichment import Candidate
from processors.core.objects import StoredMemory, UpsertItem

__all__ = ["EnrichmentStore", "tenant_missing"]


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _vector(raw: Any) -> list[float]:
    if isinstance(raw, dict):
        raw = raw.get("default") or next(iter(raw.values()), [])
    return [float(v) for v in raw or []]


class EnrichmentStore:
    """Reads and writes of the enrich stage, inside one tenant at a time."""

    def __init__(self, client: weaviate.WeaviateAsyncClient, collection: str) -> None:
        self.client = client
        self.name = collection
        self.writer = WeaviateStore(client, collection)

    async def fetch(self, tenant: str, uuids: Sequence[str]) -> dict[str, StoredMemory]:
        """The objects that exist, by uuid, with their vectors."""
        coll = self.client.collections.use(self.name).with_tenant(tenant)
        try:
            result = await coll.query.fetch_objects(
                filters=Filter.by_id().contains_any(list(uuids)),
                limit=len(uuids),
                include_vector=True,
            )
        except WeaviateQueryError as exc:
            if tenant_missing(exc):
                return {}  # an erased or never-written tenant holds none of them
            raise
        found = {}
        for obj in result.objects:
            props = dict(obj.properties)
            found[str(obj.uuid)] = StoredMemory(
                uuid=str(obj.uuid),
                memory_id=str(props.get("memory_id")),
                version=_int(props.get("version")),
                vector=_vector(obj.vector),
                properties=props,
            )
        return found

    async def neighbours(
        self, tenant: str, memory: StoredMemory, limit: int, max_distance: float
    ) -> list[Candidate]:
        """Up to ``limit`` memories of the tenant older than ``memory`` and within
        ``max_distance`` of it, nearest first."""
        if memory.occurred_at is not None:
            older = Filter.by_property("occurred_at").less_than(memory.occurred_at)
        elif memory.created_at is not None:
            older = Filter.by_property("created_at").less_than(memory.created_at)
        else:
            return []
        coll = self.client.collections.use(self.name).with_tenant(tenant)
        try:
            result = await coll.query.near_vector(
                near_vector=memory.vector,
                limit=limit + 1,
                distance=max_distance,
                filters=older,
                return_properties=["content", "memory_id"],
                return_metadata=MetadataQuery(distance=True),
            )
        except WeaviateQueryError as exc:
            if tenant_missing(exc):
                return []
            raise
        found = [
            Candidate(
                memory_id=str(obj.properties["memory_id"]),
                content=str(obj.properties["content"]),
                distance=float(obj.metadata.distance or 0.0),
            )
            for obj in result.objects
            if str(obj.uuid) != memory.uuid
        ]
        return found[:limit]

    async def write_enrichment(
        self, tenant: str, updates: dict[str, tuple[int, dict[str, Any]]]
    ) -> tuple[list[str], dict[str, str]]:
        """Set properties on objects still at the expected version, by uuid.

        Returns the uuids written and the errors of the ones Weaviate refused; an
        object gone or at another version is skipped (its newer version gets its own
        enrichment). The caller holds the write lock shared with the index stage.
        """
        current = await self.fetch(tenant, list(updates))
        items = []
        for uid, (version, props) in updates.items():
            stored = current.get(uid)
            if stored is None or stored.version != version:
                continue
            merged = {k: v for k, v in {**stored.properties, **props}.items() if v is not None}
            items.append(UpsertItem(tenant, uid, merged, stored.vector))
        refusals = await self.writer.upsert(items) if items else {}
        errors = {uid: err.message for uid, err in refusals.items()}
        return [i.uuid for i in items if i.uuid not in errors], errors


def tenant_missing(exc: Exception) -> bool:
    """Weaviate's answer for a tenant that does not exist: permanent, never retried."""
    return "tenant not found" in str(exc)
