"""The routes of the HTTP API: writes publish events, reads go to the backend (the SDK:
Weaviate and the history projection), probes. Every route checks the caller's key
(:mod:`streams.http.deps`); errors are answered by :mod:`streams.http.errors`.
Pure apart from the backend calls."""

# No `from __future__ import annotations`: FastAPI reads the route annotations at
# definition time.

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from processors.adapters.weaviate.reader import Memory
from processors.core.events import EventType, MemoryEvent, new_event
from streams.http.deps import Backend, Caller, Sdk, Wait, allow, backend
from streams.http.errors import ERRORS, WRITE_RESPONSES, publish_refused, rejected
from streams.http.models import (
    Accepted,
    ErrorOut,
    HistoryOut,
    MemoryIn,
    MemoryOut,
    MemoryUpdate,
    SearchIn,
    SearchOut,
    ShortId,
    Tenant,
)

router = APIRouter()


def _out(memory: Memory) -> MemoryOut:
    return MemoryOut(**memory.__dict__)


class Writes:
    """Publishes one event; with ``wait``, waits for its ack and answers by the outcome."""

    def __init__(self, sdk: Backend, wait_timeout_s: float) -> None:
        self.sdk, self.wait_timeout_s = sdk, wait_timeout_s

    async def _publish(self, event: MemoryEvent) -> str:
        try:
            return (await self.sdk.publish([event]))[0]
        except Exception as exc:
            refused = publish_refused(exc)
            if refused is None:
                raise
            raise refused from exc

    async def accept(self, event: MemoryEvent, wait: bool) -> JSONResponse:
        event_id = await self._publish(event)
        whole_tenant = event.type == EventType.ERASE_TENANT
        body = Accepted(
            event_id=event_id, memory_id=None if whole_tenant else event.resolved_memory_id
        )
        if not wait:
            return JSONResponse(body.model_dump(), 202)
        try:
            ack = (await self.sdk.wait_indexed([event_id], self.wait_timeout_s))[event_id]
        except TimeoutError as exc:
            raise HTTPException(504, f"event {event_id} accepted but not indexed yet") from exc
        outcome = str(ack.get("outcome"))
        refusal = rejected(event_id, outcome)
        if refusal is not None:
            raise refusal
        body = body.model_copy(
            update={
                "indexed": True,
                "version": ack.get("version"),
                "outcome": outcome,
                "erased": ack.get("erased"),
            }
        )
        return JSONResponse(body.model_dump(), 201)


def writes(request: Request, sdk: Annotated[Backend, Depends(backend)]) -> Writes:
    return Writes(sdk, request.app.state.settings.api_wait_timeout_s)


Writer = Annotated[Writes, Depends(writes)]
TenantQuery = Annotated[Tenant, Query()]
# Event ids of adds sent with an Idempotency-Key: uuid5 of tenant/key in this namespace.
IDEMPOTENCY_NAMESPACE = uuid.UUID("0f5b7a52-2c1d-4e8a-9d3b-6a7c1e2f4b90")


@router.post("/v1/memories", status_code=202, response_model=Accepted, responses=WRITE_RESPONSES)
async def add_memory(
    body: MemoryIn,
    tenants: Caller,
    writer: Writer,
    wait: Wait = False,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=256)
    ] = None,
) -> JSONResponse:
    """With an ``Idempotency-Key``, the event id comes from the tenant and the key: an
    add sent again with the same key is the same event (and memory), applied once."""
    allow(tenants, body.tenant)
    event_id = None
    if idempotency_key is not None:
        event_id = str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{body.tenant}/{idempotency_key}"))
    event = new_event(
        EventType.ADD,
        body.tenant,
        content=body.content,
        memory_id=body.memory_id,
        agent_id=body.agent_id,
        run_id=body.run_id,
        metadata=dict(body.metadata),
        mode=body.mode,
        event_id=event_id,
    )
    return await writer.accept(event, wait)


@router.put(
    "/v1/memories/{memory_id}", status_code=202, response_model=Accepted, responses=WRITE_RESPONSES
)
async def update_memory(
    memory_id: ShortId, body: MemoryUpdate, tenants: Caller, writer: Writer, wait: Wait = False
) -> JSONResponse:
    allow(tenants, body.tenant)
    event = new_event(
        EventType.UPDATE,
        body.tenant,
        content=body.content,
        memory_id=memory_id,
        metadata=dict(body.metadata or {}),
    )
    return await writer.accept(event, wait)


@router.delete(
    "/v1/memories/{memory_id}", status_code=202, response_model=Accepted, responses=WRITE_RESPONSES
)
async def delete_memory(
    memory_id: ShortId, tenant: TenantQuery, tenants: Caller, writer: Writer, wait: Wait = False
) -> JSONResponse:
    allow(tenants, tenant)
    return await writer.accept(new_event(EventType.DELETE, tenant, memory_id=memory_id), wait)


@router.post(
    "/v1/memories/{memory_id}/erase",
    status_code=202,
    response_model=Accepted,
    responses=WRITE_RESPONSES,
)
async def erase_memory(
    memory_id: ShortId, tenant: TenantQuery, tenants: Caller, writer: Writer, wait: Wait = False
) -> JSONResponse:
    allow(tenants, tenant)
    return await writer.accept(new_event(EventType.ERASE, tenant, memory_id=memory_id), wait)


@router.delete(
    "/v1/tenants/{tenant}",
    status_code=202,
    response_model=Accepted,
    responses=WRITE_RESPONSES,
)
async def erase_tenant(
    tenant: Annotated[Tenant, Path()], tenants: Caller, writer: Writer, wait: Wait = False
) -> JSONResponse:
    """Every memory of the tenant erased (history tombstoned, cached enrichments
    forgotten) and the tenant gone from the store. With ``wait``: 201 once done, with
    how many memories it ``erased``."""
    allow(tenants, tenant)
    return await writer.accept(new_event(EventType.ERASE_TENANT, tenant), wait)


@router.get(
    "/v1/memories/{memory_id}",
    response_model=MemoryOut,
    responses={404: {"model": ErrorOut}, **ERRORS},
)
async def get_memory(
    memory_id: ShortId, tenant: TenantQuery, tenants: Caller, sdk: Sdk
) -> MemoryOut:
    allow(tenants, tenant)
    memory = await sdk.get(tenant, memory_id)
    if memory is None:
        raise HTTPException(404, f"no memory {memory_id!r} in tenant {tenant!r}")
    return _out(memory)


@router.get(
    "/v1/memories/{memory_id}/history",
    response_model=HistoryOut,
    responses={504: {"model": ErrorOut}, **ERRORS},
)
async def memory_history(
    memory_id: ShortId, tenant: TenantQuery, tenants: Caller, sdk: Sdk
) -> HistoryOut:
    allow(tenants, tenant)
    try:
        changes = await sdk.history(tenant, memory_id)
    except TimeoutError as exc:
        raise HTTPException(504, "history is still catching up") from exc
    return HistoryOut(memory_id=memory_id, changes=changes)


@router.post("/v1/search", response_model=SearchOut, responses=ERRORS)
async def search(body: SearchIn, tenants: Caller, sdk: Sdk) -> SearchOut:
    allow(tenants, body.tenant)
    found = await sdk.search(
        body.tenant,
        body.query,
        limit=body.limit,
        agent_id=body.agent_id,
        run_id=body.run_id,
        filters=dict(body.filters or {}),
        alpha=body.alpha,
        fusion=body.fusion,
    )
    return SearchOut(results=[_out(m) for m in found])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorOut}})
async def readyz(sdk: Sdk) -> dict[str, str]:
    weaviate_ok = await sdk.weaviate_ready()
    kafka_ok = await sdk.kafka_ready(timeout_s=5)
    if not (weaviate_ok and kafka_ok):
        raise HTTPException(503, f"kafka ready: {kafka_ok}, weaviate ready: {weaviate_ok}")
    return {"status": "ready"}
