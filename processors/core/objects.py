"""What a memory is as a stored object, whatever the vector store. Pure.

The deterministic object id of a memory, the properties stored for a live one, the
items a stage asks the store to upsert or delete, the error the store reports for
one object it refused, and a memory as the enrich stage reads it back. Both the
stages (which build and judge them) and the Weaviate adapter (which sends and
reads them) use these; neither owns them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.core.state import MemoryState

__all__ = [
    "OBJECT_NAMESPACE",
    "DeleteItem",
    "ObjectError",
    "StoredMemory",
    "UpsertItem",
    "metadata_terms",
    "object_properties",
    "object_uuid",
]

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
    updated_at: datetime,
) -> dict[str, Any]:
    """The stored properties of a live memory; ``updated_at`` is the caller's clock."""
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
        "updated_at": updated_at,
        "occurred_at": occurred_at,
    }


@dataclass(frozen=True)
class UpsertItem:
    """One object to insert or replace, with its vector."""

    tenant: str
    uuid: str
    properties: dict[str, Any]
    vector: list[float]


@dataclass(frozen=True)
class DeleteItem:
    """One object to remove."""

    tenant: str
    uuid: str


@dataclass(frozen=True)
class ObjectError:
    """The store refused one object; ``transient`` when waiting may help (a read-only
    shard, a tenant being activated), otherwise the object itself is at fault."""

    message: str
    transient: bool


@dataclass(frozen=True)
class StoredMemory:
    """A memory's object as read back from the store, with its vector."""

    uuid: str
    memory_id: str
    version: int
    vector: list[float]
    properties: dict[str, Any]

    @property
    def content(self) -> str:
        return str(self.properties.get("content") or "")

    @property
    def occurred_at(self) -> datetime | None:
        value = self.properties.get("occurred_at")
        return value if isinstance(value, datetime) else None

    @property
    def created_at(self) -> datetime | None:
        value = self.properties.get("created_at")
        return value if isinstance(value, datetime) else None
