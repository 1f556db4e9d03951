"""The index stage's writes to Weaviate: upserts of every tenant of a batch in one
request, deletes per tenant.

Implements :class:`processors.ports.VectorStore`. Also how Weaviate's answers are
judged: which per-object refusals are transient (message parsing), how far a
tenant's batch result can be trusted, and whole-call failures as
:class:`~processors.core.errors.TransientError` / ``PermanentError``. The objects
themselves (uuids, properties, items, errors) are defined in
:mod:`processors.core.objects`, the collection in :mod:`.schema`. Adapter (network I/O).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from collections.abc import Sequence

import weaviate
from weaviate.classes.query import Filter
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateClosedClientError,
    WeaviateDeleteManyError,
    WeaviateInsertInvalidPropertyError,
    WeaviateInvalidInputError,
)

from processors.adapters.weaviate.batch_objects import insert_objects
from processors.adapters.weaviate.generations import ensure_alias, generations, served_by
from processors.core.errors import PermanentError, TransientError
from processors.core.objects import (
    DeleteItem,
    ObjectError,
    UpsertItem,
)
from processors.core.reasons import Reason

__all__ = [
    "ALL_FAILED",
    "WeaviateStore",
    "batch_errors",
    "refused",
    "tenant_batch_errors",
    "transient_refusal",
    "whole_call_error",
]

log = logging.getLogger(__name__)

# Refusals that say "not now" rather than "never" (a shard set READONLY by an
# operator or by Weaviate's disk-use guard, a tenant that is activating, overload).
_TRANSIENT_REFUSAL = re.compile(
    r"read-only|read only|readonly|not active|activat|is being|unavailable|deadline|"
    r"timeout|timed out|too many requests|connection|try again|shutting down",
    re.IGNORECASE,
)


#: how a refusal of every object of a tenant begins (the client's words for it)
ALL_FAILED = "Every object failed during insertion. Here is the set of all errors: "


def transient_refusal(message: str) -> bool:
    """True for a per-object refusal that a later attempt may get past. Pure."""
    return bool(_TRANSIENT_REFUSAL.search(message))


def refused(message: str) -> ObjectError:
    """A per-object refusal as an :class:`ObjectError`, judged by its message."""
    return ObjectError(message[:500], transient_refusal(message))


def tenant_batch_errors(
    uuids: Sequence[str], reported: dict[str, ObjectError]
) -> dict[str, ObjectError]:
    """The errors of one tenant's batch, as far as they can be trusted. Pure.

    A shard-level refusal (a read-only shard, a tenant being activated) stops the
    tenant's batch at its first object: Weaviate (1.35, 1.39) reports that object as failed and
    the others as written, although they were not. So one transient refusal fails every
    object of the batch (writing an object that was written is harmless: same uuid)."""
    shard_level = next((e for e in reported.values() if e.transient), None)
    if shard_level is None:
        return reported
    return {u: reported.get(u, shard_level) for u in uuids}


def batch_errors(
    objects: Sequence[tuple[str, str]], failed: dict[int, str]
) -> dict[str, ObjectError]:
    """The errors of one batch request of many tenants, judged tenant by tenant. Pure.

    ``objects`` are the request's (tenant, uuid) in order, ``failed`` its refusals by
    index. A tenant whose every object was refused gets one error for all of them, the
    set of its messages (as the client's ``WeaviateInsertManyAllFailedError`` of a
    one-tenant request says it); otherwise :func:`tenant_batch_errors` applies to each
    tenant's objects."""
    by_tenant: dict[str, list[int]] = defaultdict(list)
    for index, (tenant, _) in enumerate(objects):
        by_tenant[tenant].append(index)
    errors: dict[str, ObjectError] = {}
    for indexes in by_tenant.values():
        uuids = [objects[i][1] for i in indexes]
        refusals = {i: failed[i] for i in indexes if i in failed}
        if len(refusals) == len(indexes):
            every = refused(ALL_FAILED + "\n".join(sorted(set(refusals.values()))))
            errors |= dict.fromkeys(uuids, every)
        elif refusals:
            reported = {objects[i][1]: refused(m) for i, m in refusals.items()}
            errors |= tenant_batch_errors(uuids, reported)
    return errors


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
        """Make the collection exist: the alias and its first generation
        (:mod:`.generations`), unless the alias or a collection of that name exists."""
        await ensure_alias(self.client, self.name)

    async def erase_kept(self, items: Sequence[DeleteItem]) -> dict[str, ObjectError]:
        """Delete ``items`` from every generation the alias does not serve (kept after a
        rebuild, or being rebuilt); raises TransientError while one cannot be reached."""
        try:
            served = await served_by(self.client, self.name)
            others = [c for c in (await generations(self.client, self.name)).values()
                      if c != served]  # fmt: skip
            for collection in others:
                failed = await WeaviateStore(self.client, collection).delete(items)
                if failed:
                    first = next(iter(failed.values()))
                    raise TransientError(
                        f"erase in kept generation {collection}: {len(failed)} not gone "
                        f"({first.message})"
                    )
        except (TransientError, PermanentError):
            raise
        except Exception as exc:
            raise whole_call_error(exc) from exc
        return {}

    async def drop_tenants(self, tenants: Sequence[str]) -> None:
        """Remove ``tenants`` from every generation (the one served and those kept or
        being rebuilt); raises TransientError while one cannot be reached."""
        try:
            names = set((await generations(self.client, self.name)).values())
            served = await served_by(self.client, self.name)
            for collection in sorted(names | ({served} if served else {self.name})):
                tenants_api = self.client.collections.use(collection).tenants
                present = await tenants_api.get_by_names(list(tenants))
                if present:
                    await tenants_api.remove(list(present))
        except (TransientError, PermanentError):
            raise
        except Exception as exc:
            raise whole_call_error(exc) from exc

    async def _reconnect_if_closed(self, exc: Exception) -> None:
        if isinstance(exc, WeaviateClosedClientError):
            log.warning("Weaviate client was closed; reconnecting")
            await self.client.connect()

    async def upsert(self, items: Sequence[UpsertItem]) -> dict[str, ObjectError]:
        """Insert or replace objects of any tenants in one Weaviate request (each object
        carries its tenant: :mod:`.batch_objects`); returns uuid -> error for the
        objects Weaviate refused. Raises TransientError / PermanentError for a call that
        failed as a whole."""
        try:
            failed = await insert_objects(self.client, self.name, items)
        except Exception as exc:
            await self._reconnect_if_closed(exc)
            raise whole_call_error(exc) from exc
        return batch_errors([(i.tenant, i.uuid) for i in items], failed)

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
