"""Re-published events told apart before any heavy work. Pure.

An event published again (an at-least-once producer's retry) arrives at a new offset,
so the replay skip (``applied_through``) does not catch it; the plan does, by the event
id its memory remembers (:meth:`processors.core.state.MemoryState.seen`), and judges it
``noop:duplicate_event`` before looking at anything else of it. That decision needs the
event's identity only: event id, tenant, type and memory. :func:`peek` reads those from
the raw value without building the rest (the content, the metadata and a vector of
hundreds of floats are skipped, not parsed into objects), and :func:`screen` splits a
batch into the duplicates it can ack at once and the events that take the full path
(validation, plan, embedding, writes).

A value whose identity cannot be read cleanly here (not JSON, a field of the wrong
type, a bad tenant, memory id or schema, a record key that is not the tenant, a tenant
erasure) takes the full path, which decides it exactly as before. A value that names an
event its memory has judged already is a duplicate whatever its body holds: the plan
never looked at a duplicate's body either, and the body was validated when the event
was first judged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from processors.core.events import (
    MEMORY_ID_NAMESPACE,
    MEMORY_ID_PATTERN,
    SCHEMA_V1,
    TENANT_PATTERN,
    EventType,
    parse_rfc3339,
)
from processors.core.state import MemoryState, memory_key

__all__ = ["Identity", "Screened", "peek", "screen"]

_SCREENED_TYPES = frozenset(t.value for t in EventType if t != EventType.ERASE_TENANT)


class _Envelope(msgspec.Struct):
    """The fields :func:`peek` reads; every other field is skipped unread."""

    event_id: str | None = None
    tenant: str | None = None
    type: str | None = None
    memory_id: str | None = None
    occurred_at: str | None = None
    schema: str = SCHEMA_V1


_DECODER = msgspec.json.Decoder(_Envelope)


@dataclass(frozen=True)
class Identity:
    """What a duplicate is decided by, and what its ack says."""

    event_id: str
    tenant: str
    type: str
    memory_id: str  # resolved: an add without one gets its id from its event id
    occurred_at: datetime | None

    @property
    def key(self) -> str:
        return memory_key(self.tenant, self.memory_id)


def peek(raw: bytes | None, key: bytes | None) -> Identity | None:
    """The identity of a well-formed value whose record key is its tenant, read without
    parsing the rest; None when anything about it needs the full path to be judged."""
    if not raw:
        return None
    try:
        env = _DECODER.decode(raw)
    except (msgspec.MsgspecError, RecursionError, ValueError):
        # not JSON, a field of another type, nesting past msgspec's depth (it raises
        # RecursionError): the full path judges it and names the reason
        return None
    event_id, tenant, type_ = env.event_id, env.tenant, env.type
    if (
        env.schema != SCHEMA_V1
        or event_id is None
        or not 1 <= len(event_id) <= 128
        or tenant is None
        or type_ not in _SCREENED_TYPES
        or key is None
        or key != tenant.encode()
        or not TENANT_PATTERN.fullmatch(tenant)
    ):
        return None
    memory_id = env.memory_id
    if memory_id is None:
        if type_ != EventType.ADD:
            return None
        memory_id = str(uuid.uuid5(MEMORY_ID_NAMESPACE, f"{tenant}/{event_id}"))
    elif not MEMORY_ID_PATTERN.fullmatch(memory_id):
        return None
    occurred_at = None
    if env.occurred_at is not None:
        try:
            occurred_at = parse_rfc3339(env.occurred_at)
        except ValueError:
            return None
    return Identity(event_id, tenant, type_, memory_id, occurred_at)


@dataclass(frozen=True)
class Screened:
    """A batch split by :func:`screen`: ``duplicates`` as (batch index, identity), in
    batch order; ``rest``: the batch indexes that take the full path, in order."""

    duplicates: list[tuple[int, Identity]]
    rest: list[int]


def screen(
    identities: Sequence[Identity | None],
    lookup: Callable[[int, str], MemoryState | None],
    positions: Sequence[int],
) -> Screened:
    """Which events of a batch (``identities`` by batch index, from :func:`peek`) are
    duplicates of events their memory has judged (``lookup(index, key)``: the memory's
    committed state, read for the event at ``index``; ``positions``: each event's log
    offset). An event after one of the full path that may reach the same memory (one of
    its tenant, or one whose identity :func:`peek` could not read) takes the full path
    too: the plan judges it against what the earlier one leaves."""
    duplicates: list[tuple[int, Identity]] = []
    rest: list[int] = []
    busy: set[str] = set()  # tenants with an event on the full path so far
    for index, identity in enumerate(identities):
        if identity is None:
            rest += range(index, len(identities))
            break
        if identity.tenant not in busy:
            state = lookup(index, identity.key)
            if state is not None and state.seen(identity.event_id, positions[index]):
                duplicates.append((index, identity))
                continue
        rest.append(index)
        busy.add(identity.tenant)
    return Screened(duplicates, rest)
