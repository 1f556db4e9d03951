"""The read side in Weaviate: hybrid search and get, always inside one tenant.

Used by the HTTP API and the SDK (not by the stages). Adapter (network I/O).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import weaviate
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.collections.classes.filters import _Filters
from weaviate.exceptions import WeaviateQueryError

from processors.core.objects import metadata_terms, object_uuid
from processors.core.search import (
    DEFAULT_ALPHA,
    DEFAULT_FUSION,
    Fusion,
    check_options,
    keyword_query,
)

FUSION_TYPES: dict[str, HybridFusion] = {
    "relative_score": HybridFusion.RELATIVE_SCORE,
    "ranked": HybridFusion.RANKED,
}

RETURN_PROPERTIES = [
    "content",
    "memory_id",
    "agent_id",
    "run_id",
    "metadata_json",
    "facts",
    "importance",
    "version",
    "created_at",
    "updated_at",
]


@dataclass(frozen=True)
class Memory:
    memory_id: str
    content: str
    score: float | None
    agent_id: str | None
    run_id: str | None
    metadata: dict[str, Any]
    version: int
    facts: list[str]
    importance: float | None


def _memory(props: dict[str, Any], score: float | None) -> Memory:
    return Memory(
        memory_id=str(props["memory_id"]),
        content=str(props["content"]),
        score=score,
        agent_id=props.get("agent_id"),
        run_id=props.get("run_id"),
        metadata=json.loads(props.get("metadata_json") or "{}"),
        version=int(props.get("version") or 0),
        facts=list(props.get("facts") or []),
        importance=props.get("importance"),
    )


def search_filter(
    agent_id: str | None, run_id: str | None, metadata: dict[str, Any] | None
) -> _Filters | None:
    parts: list[_Filters] = []
    if agent_id is not None:
        parts.append(Filter.by_property("agent_id").equal(agent_id))
    if run_id is not None:
        parts.append(Filter.by_property("run_id").equal(run_id))
    if metadata:
        parts.append(Filter.by_property("metadata_terms").contains_all(metadata_terms(metadata)))
    if not parts:
        return None
    return Filter.all_of(parts) if len(parts) > 1 else parts[0]


def _tenant_missing(exc: Exception) -> bool:
    message = str(exc).lower()
    return "tenant" in message and "not found" in message


class MemoryReader:
    def __init__(self, client: weaviate.WeaviateAsyncClient, collection: str) -> None:
        self.client = client
        self.name = collection

    async def search(
        self,
        tenant: str,
        query: str,
        vector: list[float],
        *,
        limit: int = 10,
        alpha: float = DEFAULT_ALPHA,
        fusion: Fusion = DEFAULT_FUSION,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[Memory]:
        """Hybrid search: ``alpha`` 1 is pure vector, 0 pure keyword (BM25); ``fusion``
        how the two lists are joined. The keyword half searches the query less its
        asking words (:func:`processors.core.search.keyword_query`); ``vector`` is the
        embedding of the query as asked."""
        fusion_type = FUSION_TYPES[check_options(alpha, fusion)]
        coll = self.client.collections.use(self.name).with_tenant(tenant)
        try:
            result = await coll.query.hybrid(
                query=keyword_query(query),
                vector=vector,
                alpha=alpha,
                limit=limit,
                fusion_type=fusion_type,
                filters=search_filter(agent_id, run_id, metadata),
                return_properties=RETURN_PROPERTIES,
                return_metadata=MetadataQuery(score=True),
            )
        except WeaviateQueryError as exc:
            if _tenant_missing(exc):
                return []
            raise
        return [_memory(dict(o.properties), o.metadata.score) for o in result.objects]

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        coll = self.client.collections.use(self.name).with_tenant(tenant)
        try:
            obj = await coll.query.fetch_object_by_id(
                object_uuid(tenant, memory_id), return_properties=RETURN_PROPERTIES
            )
        except WeaviateQueryError as exc:
            if _tenant_missing(exc):
                return None
            raise
        return None if obj is None else _memory(dict(obj.properties), None)
