"""The ports: what the stages need from the world, as protocols. Pure (no I/O here).

The stages (``processors.stages``) depend on these and on ``processors.core`` only;
the adapters (the ``adapters`` subpackage) implement them against Kafka, Weaviate,
fastembed and an OpenAI-compatible endpoint, and the unit tests against in-memory
fakes (``tests/fakes.py``). The data the ports carry (records, objects, states,
answers) is defined in ``processors.core``.

Time and randomness are ports too: a stage takes ``now: Clock`` for the wall clock,
``sleep: Sleep`` for waiting and ``rng: random.Random | None`` for jitter, all as
keyword arguments of its constructor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from processors.core.enrichment import Candidate
from processors.core.llm_prompts import Result
from processors.core.objects import DeleteItem, ObjectError, StoredMemory, UpsertItem
from processors.core.records import OutRecord, SourceRef
from processors.core.retry import Sleep
from processors.core.state import MemoryState

__all__ = [
    "Cache",
    "Clock",
    "Completer",
    "EnrichStore",
    "Incoming",
    "ItemProcessor",
    "RecordSink",
    "Sleep",
    "StateStore",
    "StateWrite",
    "TextEmbedder",
    "VectorStore",
    "utc_now",
]

H = TypeVar("H")

#: The wall clock (timezone-aware). ``Sleep`` (``async (seconds) -> None``) is defined
#: next to the backoff it serves, in ``processors.core.retry``, and re-exported here.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default :data:`Clock`: now, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Incoming(Generic[H]):
    """One consumed message and an opaque handle (for state writes, or None)."""

    key: bytes | None
    value: bytes | None
    source: SourceRef
    handle: H


@dataclass(frozen=True)
class StateWrite:
    """One memory's state after a batch, in the log partition its events come from."""

    partition: int
    key: str
    state: MemoryState


class StateStore(Protocol):
    """Per-memory state of the log partitions this worker owns, and how far each
    partition has been applied.

    ``ready`` is awaited for a batch's partitions before anything is read: the store
    then holds each partition's complete, current state (restored if it was not
    already). ``commit`` makes a batch's states and applied positions durable, so that
    whoever owns the partition next decides with them; reads see only committed state.
    """

    async def ready(self, partitions: Collection[int]) -> None: ...

    def applied_through(self, partition: int) -> int:
        """The highest log offset of ``partition`` whose batch was committed (-1: none)."""
        ...

    def get(self, partition: int, key: str) -> MemoryState | None: ...

    def tenant_keys(self, partition: int, tenant: str) -> list[str]:
        """The key of every memory state ``partition`` holds for ``tenant``."""
        ...

    async def commit(self, writes: Sequence[StateWrite], applied: Mapping[int, int]) -> None:
        """``writes``, and each partition's applied offset raised to ``applied[p]``."""
        ...


class DeadLetterEraser(Protocol):
    """What an erase needs of the dead-letter topic."""

    async def erase(self, partition: int, prefixes: Sequence[bytes]) -> int:
        """Tombstone every dead letter of ``partition`` whose key starts with one of
        ``prefixes`` (see :func:`processors.core.records.dead_letter_prefix`); returns
        how many."""
        ...


class RecordSink(Protocol):
    """Sends records to a topic; returns once the broker has them all."""

    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None: ...


class TextEmbedder(Protocol):
    """Texts to vectors; called from a worker thread."""

    def embed(self, texts: Sequence[str], batch_size: int = ...) -> list[list[float]]: ...


class VectorStore(Protocol):
    """The index stage's writes. Raises on a call that fails as a whole; returns
    uuid -> error for the objects it refused one by one."""

    async def upsert(self, items: Sequence[UpsertItem]) -> dict[str, ObjectError]: ...

    async def delete(self, items: Sequence[DeleteItem]) -> dict[str, ObjectError]: ...

    async def drop_tenants(self, tenants: Sequence[str]) -> None:
        """Remove each tenant (its shard, whatever it still holds) from every
        generation of the collection; a tenant that is not there is no error."""
        ...

    async def erase_kept(self, items: Sequence[DeleteItem]) -> dict[str, ObjectError]:
        """Remove erased memories from the collection's other generations too (kept
        after a rebuild, or being rebuilt); raises while they cannot be reached."""
        ...


class EnrichStore(Protocol):
    """The enrich stage's reads and writes of stored memories, inside one tenant."""

    async def fetch(self, tenant: str, uuids: Sequence[str]) -> dict[str, StoredMemory]: ...

    async def neighbours(
        self, tenant: str, memory: StoredMemory, limit: int, max_distance: float
    ) -> list[Candidate]: ...

    async def write_enrichment(
        self, tenant: str, updates: dict[str, tuple[int, dict[str, Any]]]
    ) -> tuple[list[str], dict[str, str]]: ...


class ItemProcessor(Protocol):
    """One enrichment (facts, importance or decision) over many items; never raises
    for an item: its result is the answer or a Failure.

    ``scopes`` (item id -> scope, see :mod:`processors.core.cache_scope`): a prompt packs
    items of one scope only, and an answer is cached under its item's scope; ``keep``:
    answers are cached only while it says True."""

    async def run(
        self,
        items: dict[str, dict[str, Any]],
        scopes: Mapping[str, str] | None = None,
        keep: Callable[[], bool] | None = None,
    ) -> dict[str, Result]: ...


class Cache(Protocol):
    """Answers already paid for, by cache key."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...


class Forgetting(Protocol):
    """The part of ``llm_cache`` an erase needs: forget every answer under a key
    prefix, and an epoch that moves at each forgetting (so that answers asked for
    before it are not cached after it)."""

    def epoch(self) -> int: ...

    def forget(self, prefix: str) -> None: ...


class Completer(Protocol):
    """One chat completion; raises :class:`processors.core.errors.LlmError`."""

    async def complete(
        self, kind: str, messages: list[dict[str, str]], response_format: dict[str, Any]
    ) -> str: ...
