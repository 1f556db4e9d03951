"""The HTTP API's dependencies: the backend it serves from (the SDK, or a fake), the
caller's tenants from the API key, and the tenant check. Pure apart from reading
``app.state``, where :func:`streams.http.app.create_api` puts the backend and keys."""

# No `from __future__ import annotations`: FastAPI reads these annotations at
# definition time.

from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from fastapi import Depends, Header, HTTPException, Query, Request

from processors.adapters.weaviate.reader import Memory
from processors.core.events import MemoryEvent
from processors.core.search import DEFAULT_ALPHA, DEFAULT_FUSION
from streams.http.auth import KeyRing


class Backend(Protocol):
    """What the API uses of :class:`streams.client.sdk.AgentMem`."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, events: Sequence[MemoryEvent]) -> list[str]: ...

    async def wait_indexed(
        self, event_ids: Sequence[str], timeout_s: float = 30.0
    ) -> dict[str, dict[str, Any]]: ...

    async def get(self, tenant: str, memory_id: str) -> Memory | None: ...

    async def history(self, tenant: str, memory_id: str) -> list[dict[str, Any]]: ...

    async def search(
        self,
        tenant: str,
        query: str,
        *,
        limit: int = 10,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: dict[str, Any] | None = None,
        alpha: float = DEFAULT_ALPHA,
        fusion: str = DEFAULT_FUSION,
    ) -> list[Memory]: ...

    async def weaviate_ready(self) -> bool: ...

    async def kafka_ready(self, timeout_s: float = 5.0) -> bool: ...


def backend(request: Request) -> Backend:
    sdk: Backend = request.app.state.sdk
    return sdk


def caller(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> frozenset[str]:
    """The tenants the presented API key may touch; 401 without a known key."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise HTTPException(401, "send an API key as 'Authorization: Bearer <key>'")
    keyring: KeyRing = request.app.state.keyring
    tenants = keyring.tenants_for(key.strip())
    if tenants is None:
        raise HTTPException(401, "unknown API key")
    return tenants


def allow(tenants: frozenset[str], tenant: str) -> None:
    """403 unless the caller's key may touch ``tenant``."""
    if not KeyRing.allows(tenants, tenant):
        raise HTTPException(403, f"this API key may not access tenant {tenant!r}")


Sdk = Annotated[Backend, Depends(backend)]
Caller = Annotated[frozenset[str], Depends(caller)]
Wait = Annotated[bool, Query(description="answer 201 once the change is searchable")]
