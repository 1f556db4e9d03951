"""`agentmem api`: the HTTP API (FastAPI). Writes publish events; reads go to Weaviate
and the history projection; API keys decide which tenants a caller may touch."""

# No `from __future__ import annotations`: FastAPI resolves the locally defined
# dependency aliases (Caller, Wait) from the annotations at definition time.

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from processors.adapters.weaviate.reader import Memory
from processors.core.errors import PermanentError, is_retriable
from processors.core.events import EventType, MemoryEvent, new_event
from processors.core.reasons import Reason
from processors.metrics import Metrics, build_metrics
from streams.client.sdk import AgentMem
from streams.http.auth import KeyRing
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
from streams.settings import Settings

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no or unknown API key"},
    403: {"model": ErrorOut, "description": "the key may not touch this tenant"},
    422: {"model": ErrorOut, "description": "invalid request"},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"model": Accepted, "description": "indexed (with wait=true)"},
    409: {"model": ErrorOut, "description": "rejected: no such live memory (with wait=true)"},
    413: {"model": ErrorOut, "description": "the event is larger than the broker accepts"},
    503: {"model": ErrorOut, "description": "Kafka unreachable; retry after Retry-After seconds"},
    504: {"model": ErrorOut, "description": "accepted but not indexed in time (wait=true)"},
    **ERRORS,
}
PUBLISH_RETRY_AFTER_S = 5
_STATUS_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid_request",
    503: "unavailable",
    504: "timeout",
}


def _out(memory: Memory) -> MemoryOut:
    return MemoryOut(**memory.__dict__)


def create_api(settings: Settings, registry: CollectorRegistry | None = None) -> FastAPI:
    keyring = KeyRing.parse(settings.api_keys.get_secret_value())
    registry = registry or CollectorRegistry()
    metrics: Metrics = build_metrics(registry)
    holder: dict[str, AgentMem] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sdk = AgentMem(settings)
        await sdk.start()
        holder["sdk"] = sdk
        try:
            yield
        finally:
            await sdk.stop()

    app = FastAPI(
        title="AgentMem Stream",
        version="0.1.0",
        description="Memory for AI agents: publish memories, search them, read their history.",
        lifespan=lifespan,
    )

    def sdk() -> AgentMem:
        return holder["sdk"]

    def caller(
        authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
    ) -> frozenset[str]:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise HTTPException(401, "send an API key as 'Authorization: Bearer <key>'")
        tenants = keyring.tenants_for(key.strip())
        if tenants is None:
            raise HTTPException(401, "unknown API key")
        return tenants

    Caller = Annotated[frozenset[str], Depends(caller)]

    def allow(tenants: frozenset[str], tenant: str) -> None:
        if not KeyRing.allows(tenants, tenant):
            raise HTTPException(403, f"this API key may not access tenant {tenant!r}")

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.api_requests.labels(path, request.method, str(response.status_code)).inc()
        metrics.api_seconds.labels(path, request.method).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(StarletteHTTPException)  # also routing's own 404 and 405
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = _STATUS_NAMES.get(exc.status_code, "error")
        return JSONResponse(
            {"error": name, "message": str(exc.detail)}, exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return JSONResponse({"error": "invalid_request", "message": problems}, 422)

    async def accept(event: MemoryEvent, wait: bool) -> JSONResponse:
        try:
            event_id = await sdk().publisher.publish(event)
        except PermanentError as exc:
            status = 413 if exc.reason == Reason.RECORD_TOO_LARGE else 422
            raise HTTPException(status, f"Kafka refused the event: {exc}") from exc
        except Exception as exc:
            if not is_retriable(exc):
                raise
            # Not accepted: the client may send it again (same event_id, no duplicate).
            raise HTTPException(
                503,
                f"Kafka is unreachable ({type(exc).__name__}); the event was not accepted",
                headers={"Retry-After": str(PUBLISH_RETRY_AFTER_S)},
            ) from exc
        body = Accepted(event_id=event_id, memory_id=event.resolved_memory_id)
        if not wait:
            return JSONResponse(body.model_dump(), 202)
        try:
            ack = (await sdk().wait_indexed([event_id], settings.api_wait_timeout_s))[event_id]
        except TimeoutError as exc:
            raise HTTPException(504, f"event {event_id} accepted but not indexed yet") from exc
        outcome = str(ack.get("outcome"))
        if outcome.startswith("rejected:"):
            reason = outcome.removeprefix("rejected:")
            status = 409 if reason == "memory_not_found" else 422
            raise HTTPException(status, f"event {event_id} was rejected: {reason}")
        body = body.model_copy(
            update={"indexed": True, "version": ack.get("version"), "outcome": outcome}
        )
        return JSONResponse(body.model_dump(), 201)

    Wait = Annotated[bool, Query(description="answer 201 once the change is searchable")]

    @app.post(
        "/v1/memories",
        status_code=202,
        response_model=Accepted,
        responses=WRITE_RESPONSES,
    )
    async def add_memory(body: MemoryIn, tenants: Caller, wait: Wait = False) -> JSONResponse:
        allow(tenants, body.tenant)
        event = new_event(
            EventType.ADD,
            body.tenant,
            content=body.content,
            memory_id=body.memory_id,
            agent_id=body.agent_id,
            run_id=body.run_id,
            metadata=dict(body.metadata),
            mode=body.mode,
        )
        return await accept(event, wait)

    @app.put(
        "/v1/memories/{memory_id}",
        status_code=202,
        response_model=Accepted,
        responses=WRITE_RESPONSES,
    )
    async def update_memory(
        memory_id: ShortId, body: MemoryUpdate, tenants: Caller, wait: Wait = False
    ) -> JSONResponse:
        allow(tenants, body.tenant)
        event = new_event(
            EventType.UPDATE,
            body.tenant,
            content=body.content,
            memory_id=memory_id,
            metadata=dict(body.metadata or {}),
        )
        return await accept(event, wait)

    @app.delete(
        "/v1/memories/{memory_id}",
        status_code=202,
        response_model=Accepted,
        responses=WRITE_RESPONSES,
    )
    async def delete_memory(
        memory_id: ShortId, tenant: Annotated[Tenant, Query()], tenants: Caller, wait: Wait = False
    ) -> JSONResponse:
        allow(tenants, tenant)
        return await accept(new_event(EventType.DELETE, tenant, memory_id=memory_id), wait)

    @app.post(
        "/v1/memories/{memory_id}/erase",
        status_code=202,
        response_model=Accepted,
        responses=WRITE_RESPONSES,
    )
    async def erase_memory(
        memory_id: ShortId, tenant: Annotated[Tenant, Query()], tenants: Caller, wait: Wait = False
    ) -> JSONResponse:
        allow(tenants, tenant)
        return await accept(new_event(EventType.ERASE, tenant, memory_id=memory_id), wait)

    @app.get(
        "/v1/memories/{memory_id}",
        response_model=MemoryOut,
        responses={404: {"model": ErrorOut}, **ERRORS},
    )
    async def get_memory(
        memory_id: ShortId, tenant: Annotated[Tenant, Query()], tenants: Caller
    ) -> MemoryOut:
        allow(tenants, tenant)
        memory = await sdk().get(tenant, memory_id)
        if memory is None:
            raise HTTPException(404, f"no memory {memory_id!r} in tenant {tenant!r}")
        return _out(memory)

    @app.get(
        "/v1/memories/{memory_id}/history",
        response_model=HistoryOut,
        responses={504: {"model": ErrorOut}, **ERRORS},
    )
    async def memory_history(
        memory_id: ShortId, tenant: Annotated[Tenant, Query()], tenants: Caller
    ) -> HistoryOut:
        allow(tenants, tenant)
        try:
            changes = await sdk().history(tenant, memory_id)
        except TimeoutError as exc:
            raise HTTPException(504, "history is still catching up") from exc
        return HistoryOut(memory_id=memory_id, changes=changes)

    @app.post("/v1/search", response_model=SearchOut, responses=ERRORS)
    async def search(body: SearchIn, tenants: Caller) -> SearchOut:
        allow(tenants, body.tenant)
        found = await sdk().search(
            body.tenant,
            body.query,
            limit=body.limit,
            agent_id=body.agent_id,
            run_id=body.run_id,
            filters=dict(body.filters or {}),
            alpha=body.alpha,
        )
        return SearchOut(results=[_out(m) for m in found])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorOut}})
    async def readyz() -> dict[str, str]:
        weaviate_ok = await sdk().weaviate_ready()
        try:
            await sdk().acks.catch_up(timeout_s=5)
            kafka_ok = True
        except Exception:  # noqa: BLE001 - any failure means not ready
            kafka_ok = False
        if not (weaviate_ok and kafka_ok):
            raise HTTPException(503, f"kafka ready: {kafka_ok}, weaviate ready: {weaviate_ok}")
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def run_api(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    import uvicorn

    uvicorn.run(
        create_api(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
    )
    return 0
