"""One gRPC ``BatchObjects`` request for the objects of many tenants.

The weaviate client's public ``insert_many`` takes one tenant per call, although
the gRPC request under it carries a tenant per object (Weaviate groups a request's
objects by shard itself). This module is the one place that reaches into the
client's private batch machinery: ``_BatchGRPC`` turns properties and vectors into
protobuf exactly as ``insert_many`` does, and the async connection sends the request
with the client's retries. A client upgrade that moves any of it fails here, in
tests/unit/processors/test_weaviate_batch_objects.py and in
tests/integration/test_weaviate_batch.py, loudly.

The request is split only if it would exceed the gRPC message size of the
connection (about 100 MB: a batch of 10,000 objects of 384 dimensions is ~20 MB).
Adapter (network I/O in :func:`insert_objects`; the rest is pure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import weaviate
from weaviate.collections.batch.grpc_batch import _BatchGRPC
from weaviate.collections.classes.batch import _BatchObject
from weaviate.connect.v4 import ConnectionAsync
from weaviate.proto.v1 import batch_pb2
from weaviate.util import _ServerVersion

from processors.core.objects import UpsertItem

__all__ = ["build_requests", "insert_objects", "size_chunks"]

#: what an object adds to a request besides its own size: field tag and length prefix
PER_OBJECT_OVERHEAD = 8
#: retries of the connection on UNAVAILABLE and the like, as ``insert_many`` asks
MAX_RETRIES = 2


def size_chunks(sizes: Sequence[int], limit: int) -> list[range]:
    """Consecutive index ranges whose encoded sizes (each plus
    :data:`PER_OBJECT_OVERHEAD`) add up to at most ``limit``. An object over the limit
    by itself gets a range of its own (Weaviate refuses it; the others still go). Pure."""
    chunks: list[range] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        size += PER_OBJECT_OVERHEAD
        if i > start and total + size > limit:
            chunks.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        chunks.append(range(start, len(sizes)))
    return chunks


def build_requests(
    collection: str,
    items: Sequence[UpsertItem],
    version: _ServerVersion,
    max_bytes: int | None = None,
) -> list[tuple[range, batch_pb2.BatchObjectsRequest]]:
    """The ``BatchObjects`` requests of ``items`` (each object with its own tenant), with
    the range of ``items`` each holds: one request unless they exceed ``max_bytes``
    (default: the client's gRPC message limit). No I/O."""
    grpc = _BatchGRPC(version, None, max_bytes)
    objects = grpc.grpc_objects(
        [
            _BatchObject(
                collection=collection,
                vector=item.vector,
                uuid=item.uuid,
                properties=item.properties,
                tenant=item.tenant,
                references=None,
                index=n,
            )
            for n, item in enumerate(items)
        ]
    )
    chunks = size_chunks([o.ByteSize() for o in objects], grpc.grpc_max_msg_size)
    return [
        (chunk, batch_pb2.BatchObjectsRequest(objects=objects[chunk.start : chunk.stop]))
        for chunk in chunks
    ]


async def insert_objects(
    client: weaviate.WeaviateAsyncClient, collection: str, items: Sequence[UpsertItem]
) -> dict[int, str]:
    """Insert or replace ``items`` of any tenants in one ``BatchObjects`` call (more only
    past the message size limit); returns the refusals as index in ``items`` ->
    Weaviate's message. Raises the client's errors for a call that failed as a whole
    (``WeaviateClosedClientError`` when the client was closed, ``WeaviateBatchError``,
    ``WeaviateInsertInvalidPropertyError`` for a reserved property name)."""
    if not items:
        return {}
    connection: ConnectionAsync = client._connection
    requests = build_requests(
        collection, items, connection._weaviate_version, connection._grpc_max_msg_size
    )
    timeout = connection.timeout_config.insert
    replies = await asyncio.gather(
        *(
            connection.grpc_batch_objects(request, timeout=timeout, max_retries=MAX_RETRIES)
            for _, request in requests
        )
    )
    return {
        chunk.start + index: message
        for (chunk, _), errors in zip(requests, replies, strict=True)
        for index, message in errors.items()
    }
