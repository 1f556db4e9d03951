"""The Weaviate side: the memory collection, tenants, batched upserts and deletes."""

from __future__ import annotations

import asyncio
import json
import logging
import re
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
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateClosedClientError,
    WeaviateDeleteManyError,
    WeaviateInsertInvalidPropertyError,
    WeaviateInsertManyAllFailedError,
    WeaviateInvalidInputError,
)

from processors.core.errors import PermanentError, TransientError
from processors.core.reasons import Reason
from processors.core.state import MemoryState

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
    memory_id: str,
    state: MemoryState,
    event_id: str,
    occurred_at: datetime | None,
    updated_at: datetime | None = None,
) -> dict[str, Any]:
    """The stored properties of a live memory (``updated_at``: the stage's clock)."""
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
        "updated_at": updated_at or datetime.now(UTC),
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


@dataclass(frozen=True)
class ObjectError:
    """Weaviate refused one object; ``transient`` when waiting may help (a read-only
    shard, a tenant being activated), otherwise the object itself is at fault."""

    message: str
    transient: bool


# Refusals that say "not now" rather than "never" (a shard set READONLY by an
# operator or by Weaviate's disk-use guard, a tenant that is activating, overload).
_TRANSIENT_REFUSAL = re.compile(
    r"read-only|read only|readonly|not active|activat|is being|unavailable|deadline|"
    r"timeout|timed out|too many requests|connection|try again|shutting down",
    re.IGNORECASE,
)


def transient_refusal(message: str) -> bool:
    """True for a per-object refusal that a later attempt may get past. Pure."""
    return bool(_TRANSIENT_REFUSAL.search(message))


def refused(message: str) -> ObjectError:
    return ObjectError(message[:500], transient_refusal(message))


def tenant_batch_errors(
    uuids: Sequence[str], reported: dict[str, ObjectError]
) -> dict[str, ObjectError]:
    """The errors of one tenant's batch, as far as they can be trusted. Pure.

    A shard-level refusal (a read-only shard, a tenant being activated) stops the
    tenant's batch at its first object: Weaviate 1.35 reports that object as failed and
    the others as written, although they were not. So one transient refusal fails every
    object of the batch (writing an object that was written is harmless: same uuid)."""
    shard_level = next((e for e in reported.values() if e.transient), None)
    if shard_level is None:
        return reported
    return {u: reported.get(u, shard_level) for u in uuids}


class _DropBatchErrorDumps(logging.Filter):
    """The client logs each failed batch as a dict holding every object, vectors
    included (kilobytes per object); the store reports failures itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, dict) and "errors" in record.msg)


_client_log = logging.getLogger("weaviate-client")
if not any(isinstance(f, _DropBatchErrorDumps) for f in _client_log.filters):
    _client_log.addFilter(_DropBatchErrorDumps())


def whole_call_error(exc: Exception) -> Exception:
    """A failed Weaviate call as :class:`TransientError` (Weaviate away, overloaded,
    restarting) or :class:`PermanentError` (the request itself is wrong). Unknown
    Weaviate errors count as transient: an outage must never be mistaken for bad data,
    and the caller's retry is what holds the partition until Weaviate is back."""
    if isinstance(exc, UnexpectedStatusCodeError):
        code = exc.status_code
        if 400 <= code < 500 and code not in (408, 429):
            return PermanentError(Reason.WEAVIATE_REJECTED, f"HTTP {code}: {exc.message[:300]}")
    if isinstance(
        exc,
        WeaviateInvalidInputError | WeaviateInsertInvalidPropertyError,
    ):
        return PermanentError(Reason.WEAVIATE_REJECTED, str(exc)[:300])
    if isinstance(exc, WeaviateBaseError):
        return TransientError(f"{type(exc).__name__}: {str(exc)[:300]}")
    return exc


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

    async def _reconnect_if_closed(self, exc: Exception) -> None:
        if isinstance(exc, WeaviateClosedClientError):
            log.warning("Weaviate client was closed; reconnecting")
            await self.client.connect()

    async def upsert(self, items: Sequence[UpsertItem]) -> dict[str, ObjectError]:
        """Insert or replace objects, all tenants at once; returns uuid -> error for the
        objects Weaviate refused. Raises TransientError / PermanentError for a call
        that failed as a whole."""
        by_tenant: dict[str, list[UpsertItem]] = defaultdict(list)
        for item in items:
            by_tenant[item.tenant].append(item)
        coll = self.client.collections.use(self.name)

        async def one_tenant(tenant: str, group: list[UpsertItem]) -> dict[str, ObjectError]:
            objects = [
                DataObject(properties=i.properties, uuid=i.uuid, vector=i.vector) for i in group
            ]
            try:
                result = await coll.with_tenant(tenant).data.insert_many(objects)
            except WeaviateInsertManyAllFailedError as exc:
                return {i.uuid: refused(str(exc)) for i in group}
            reported = {group[idx].uuid: refused(err.message) for idx, err in result.errors.items()}
            return tenant_batch_errors([i.uuid for i in group], reported)

        try:
            results = await asyncio.gather(*(one_tenant(t, g) for t, g in by_tenant.items()))
        except Exception as exc:
            await self._reconnect_if_closed(exc)
            raise whole_call_error(exc) from exc
        return {k: v for r in results for k, v in r.items()}

    async def delete(self, items: Sequence[DeleteItem]) -> dict[str, ObjectError]:
        """Delete objects; returns uuid -> error for those not known to be gone. A
        tenant that does not exist holds nothing, so its deletes succeed."""
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for item in items:
            by_tenant[item.tenant].append(item.uuid)
        coll = self.client.collections.use(self.name)

        async def one_tenant(tenant: str, ids: list[str]) -> dict[str, ObjectError]:
            try:
                result = await coll.with_tenant(tenant).data.delete_many(
                    where=Filter.by_id().contains_any(ids), verbose=True
                )
            except WeaviateDeleteManyError as exc:
                if "tenant not found" in str(exc):
                    return {}
                # A refused delete never says the event is wrong (a READONLY shard
                # answers with an unrelated parse error): retried as transient.
                return {u: ObjectError(str(exc)[:500], transient=True) for u in ids}
            errors = {
                str(obj.uuid): ObjectError(str(obj.error)[:500], transient=True)
                for obj in result.objects or []
                if not obj.successful
            }
            if result.failed and not errors:
                # failed without per-object detail: none of them is known to be gone
                return {u: ObjectError(f"{result.failed} deletes failed", True) for u in ids}
            return errors

        try:
            results = await asyncio.gather(*(one_tenant(t, ids) for t, ids in by_tenant.items()))
        except Exception as exc:
            await self._reconnect_if_closed(exc)
            raise whole_call_error(exc) from exc
        return {k: v for r in results for k, v in r.items()}
