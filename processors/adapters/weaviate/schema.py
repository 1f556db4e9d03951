"""The memory collection's definition in Weaviate: one place for everyone who creates it.

Properties (with their tokenization and which are searchable), the vector config
(vectors are supplied by the worker, never made by Weaviate), multi-tenancy (a
tenant per agentmem tenant, created and activated on first write) and the inverted
index settings. :func:`collection_config` gives them as keyword arguments of
``client.collections.create``; :func:`ensure_collection` (async client) and
:func:`ensure_collection_sync` (sync client, for tools and benchmarks) create the
collection unless it exists. Adapter code (the Weaviate client), no I/O at import.
"""

from __future__ import annotations

import logging
from typing import Any

import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.exceptions import UnexpectedStatusCodeError

__all__ = [
    "COLLECTION_PROPERTIES",
    "collection_config",
    "ensure_collection",
    "ensure_collection_sync",
]

log = logging.getLogger(__name__)

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


def collection_config() -> dict[str, Any]:
    """Keyword arguments of ``client.collections.create(name, **collection_config())``.

    The inverted index keeps Weaviate's defaults (BM25 over ``content``; the other
    text properties are filter-only by their FIELD tokenization, ``metadata_json`` is
    not searchable at all): settings for it belong here, next to the properties."""
    return {
        "properties": list(COLLECTION_PROPERTIES),
        "vector_config": Configure.Vectors.self_provided(),
        "multi_tenancy_config": Configure.multi_tenancy(
            enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
        ),
    }


async def ensure_collection(client: weaviate.WeaviateAsyncClient, name: str) -> bool:
    """Create the collection unless it exists; True when it was created. Safe when
    several workers start at once: a create refused because another process made the
    collection meanwhile ("class already exists") counts as existing."""
    if await client.collections.exists(name):
        return False
    try:
        await client.collections.create(name, **collection_config())
    except UnexpectedStatusCodeError:
        if await client.collections.exists(name):
            log.info("Weaviate collection %s was created by another process", name)
            return False
        raise
    log.info("created Weaviate collection %s", name)
    return True


def ensure_collection_sync(client: weaviate.WeaviateClient, name: str) -> bool:
    """:func:`ensure_collection` for the sync client (tools, benchmarks)."""
    if client.collections.exists(name):
        return False
    try:
        client.collections.create(name, **collection_config())
    except UnexpectedStatusCodeError:
        if client.collections.exists(name):
            return False
        raise
    log.info("created Weaviate collection %s", name)
    return True
