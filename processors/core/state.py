"""Per-memory state kept in the ``memory_state`` table, and its JSON form. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# How many applied event ids a memory remembers to recognise a re-published event.
EVENT_ID_WINDOW = 64


def memory_key(tenant: str, memory_id: str) -> str:
    return f"{tenant}/{memory_id}"


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class MemoryState:
    """What the worker knows of one memory after its last applied change."""

    version: int
    content: str | None  # None once deleted or erased
    content_hash: str | None
    deleted: bool = False
    erased: bool = False
    created_at: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    event_ids: tuple[str, ...] = ()
    # The log position (offset in its memory.events partition) of the last event judged
    # against this memory, whatever it did (applied, no-op, refused): an event at or
    # before it was judged already, so a replay of the log changes nothing. -1: none.
    position: int = -1
    # Memories an UPDATE decision folded this memory's text into: an erase of this
    # memory erases them too (its text lives on in them).
    folded_into: tuple[str, ...] = ()

    @property
    def live(self) -> bool:
        return not self.deleted and not self.erased

    def seen(self, event_id: str, position: int | None = None) -> bool:
        """Whether the event was judged already: by its log position (a replay), or by
        its id among the last :data:`EVENT_ID_WINDOW` (the same event published again)."""
        return (position is not None and position <= self.position) or event_id in self.event_ids

    def remember(self, event_id: str) -> tuple[str, ...]:
        return (*self.event_ids, event_id)[-EVENT_ID_WINDOW:]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["event_ids"] = list(self.event_ids)
        data["folded_into"] = list(self.folded_into)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryState:
        return cls(
            **{
                **data,
                "event_ids": tuple(data.get("event_ids", ())),
                "folded_into": tuple(data.get("folded_into", ())),
            }
        )

    def purged(self, event_id: str) -> MemoryState:
        """The state after an erase: version and event ids stay, content goes."""
        return replace(
            self,
            version=self.version + 1,
            content=None,
            content_hash=None,
            deleted=True,
            erased=True,
            metadata={},
            event_ids=self.remember(event_id),
        )
