"""Request and response bodies of the HTTP API (pydantic models). Pure."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from processors.core.search import DEFAULT_ALPHA, DEFAULT_FUSION, Fusion

Tenant = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["user-42"])]
ShortId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:@-]{1,128}$")]
Scalar = str | int | float | bool


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemoryIn(Strict):
    tenant: Tenant
    content: Annotated[str, Field(min_length=1, max_length=32 * 1024)]
    agent_id: ShortId | None = None
    run_id: ShortId | None = None
    metadata: dict[str, Scalar] = Field(default_factory=dict, max_length=64)
    memory_id: ShortId | None = None
    mode: Annotated[str, Field(pattern=r"^(fast|intelligent)$")] = "fast"


class MemoryUpdate(Strict):
    tenant: Tenant
    content: Annotated[str, Field(min_length=1, max_length=32 * 1024)]
    metadata: dict[str, Scalar] | None = Field(default=None, max_length=64)


class Accepted(BaseModel):
    event_id: str
    memory_id: str | None  # None for a tenant erasure
    indexed: bool = False
    version: int | None = None
    outcome: str | None = None
    erased: int | None = None  # a tenant erasure, indexed: how many memories it erased


class SearchIn(Strict):
    tenant: Tenant
    query: Annotated[str, Field(min_length=1, max_length=4096)]
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    agent_id: ShortId | None = None
    run_id: ShortId | None = None
    filters: dict[str, Scalar] | None = Field(default=None, max_length=32)
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = DEFAULT_ALPHA
    fusion: Fusion = DEFAULT_FUSION


class MemoryOut(BaseModel):
    memory_id: str
    content: str
    score: float | None = None
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int
    facts: list[str] = Field(default_factory=list)
    importance: float | None = None


class SearchOut(BaseModel):
    results: list[MemoryOut]


class HistoryOut(BaseModel):
    memory_id: str
    changes: list[dict[str, Any]]


class ErrorOut(BaseModel):
    error: str
    message: str
