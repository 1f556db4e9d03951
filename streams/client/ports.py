"""What the SDK needs of its collaborators, as protocols. Pure (types only).

:class:`streams.client.sdk.AgentMem` is given one of each (or builds the real one from
its settings): the real ones are :class:`~streams.client.publisher.EventPublisher`,
:class:`~streams.client.acks.AckWatcher`, :class:`~streams.client.history.HistoryView`,
:class:`~streams.client.reader.WeaviateReader` and
:class:`processors.adapters.embedding.Embedder`; unit tests give fakes
(``tests/unit/streams/fakes.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from processors.adapters.weaviate.reader import Memory
from processors.core.events import MemoryEvent
from processors.core.search import DEFAULT_ALPHA, DEFAULT_FUSION, Fusion


class Lifecycle(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Publisher(Lifecycle, Protocol):
    """Sends events to memory.events; returns once the broker acknowledged them."""

    async def publish(self, event: MemoryEvent) -> str: ...

    async def publish_many(self, events: Sequence[MemoryEvent]) -> list[str]: ...


class Acks(Lifecycle, Protocol):
    """The acks on memory.indexed, seen since start()."""

    async def wait(
        self, event_ids: Sequence[str], timeout_s: float
    ) -> dict[str, dict[str, Any]]: ...

    async def catch_up(self, timeout_s: float = 10.0) -> None: ...


class History(Lifecycle, Protocol):
    """The changes of each memory, from memory.history."""

    async def history(self, tenant: str, memory_id: str) -> list[dict[str, Any]]: ...


class Reader(Lifecycle, Protocol):
    """The read side (Weaviate): hybrid search and lookups inside one tenant."""

    async def search(
        self,
        tenant: str,
        query: str,
        vector: list[float],
        *,
        limit: int = 10,
        alpha: float = DEFAULT_ALPHA,
        fusion: Fusion = DEFAULT_FUSION,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[Memory]: ...

    async def get(self, tenant: str, memory_id: str) -> Memory | None: ...

    async def ready(self) -> bool: ...


class TextEmbedder(Protocol):
    """Texts to vectors (blocking: the SDK calls it from a worker thread)."""

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> list[list[float]]: ...
