"""The Python SDK: publish memory events, wait until they are searchable, read back.

    async with AgentMem(Settings()) as mem:
        event_id = await mem.add("user-42", "Prefers aisle seats")
        await mem.wait_indexed([event_id])
        hits = await mem.search("user-42", "seat preference")

`AgentMemSync` wraps it for code without an event loop.

:class:`AgentMem` holds no client code of its own: its collaborators (a publisher, the
ack watcher, the history view, the Weaviate reader and the embedder; protocols in
:mod:`streams.client.ports`) are given to it, or built from its settings through
:mod:`streams.clients`. It starts and stops all of them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from processors.adapters.weaviate.reader import Memory
from processors.core.events import EventType, MemoryEvent, Mode, new_event
from processors.core.search import DEFAULT_ALPHA, DEFAULT_FUSION, check_options
from streams import clients
from streams.client.acks import AckWatcher
from streams.client.history import HistoryView
from streams.client.ports import Acks, History, Publisher, Reader, TextEmbedder
from streams.client.publisher import EventPublisher
from streams.client.reader import WeaviateReader
from streams.client.topics import Topics
from streams.kafka_connection import check_credentials
from streams.settings import Settings

T = TypeVar("T")


class AgentMem:
    """The asynchronous SDK. Collaborators not given are built from ``settings``; the
    embedder is loaded on the first search (it takes seconds)."""

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        acks: Acks | None = None,
        history: History | None = None,
        reader: Reader | None = None,
        embedder: TextEmbedder | None = None,
    ) -> None:
        self.settings = settings
        topics = Topics.from_settings(settings)
        self.publisher: Publisher = publisher or EventPublisher(settings)
        self.acks: Acks = acks or AckWatcher(settings, topics.indexed)
        self.history_view: History = history or HistoryView(settings, topics.history)
        self.reader: Reader = reader or WeaviateReader(settings)
        self._embedder = embedder

    async def start(self) -> None:
        # wrong credentials stop here, named, instead of being retried as an outage
        await check_credentials(clients.kafka_connection(self.settings))
        await self.acks.start()  # before publishing: no ack is missed
        await self.history_view.start()
        await self.publisher.start()
        await self.reader.start()

    async def stop(self) -> None:
        await self.publisher.stop()
        await self.acks.stop()
        await self.history_view.stop()
        await self.reader.stop()

    async def __aenter__(self) -> AgentMem:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- write -------------------------------------------------------------------

    async def publish(self, events: Sequence[MemoryEvent]) -> list[str]:
        """Publish events (one batch, acks=all); returns their event ids in order."""
        return await self.publisher.publish_many(events)

    async def add(
        self,
        tenant: str,
        content: str,
        *,
        memory_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        mode: Mode | str = Mode.FAST,
        vector: list[float] | None = None,
    ) -> str:
        event = new_event(
            EventType.ADD,
            tenant,
            content=content,
            memory_id=memory_id,
            agent_id=agent_id,
            run_id=run_id,
            metadata=metadata,
            mode=mode,
            vector=vector,
        )
        return await self.publisher.publish(event)

    async def update(
        self,
        tenant: str,
        memory_id: str,
        content: str,
        *,
        metadata: dict[str, Any] | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> str:
        event = new_event(
            EventType.UPDATE,
            tenant,
            content=content,
            memory_id=memory_id,
            metadata=metadata,
            agent_id=agent_id,
            run_id=run_id,
        )
        return await self.publisher.publish(event)

    async def delete(self, tenant: str, memory_id: str) -> str:
        return await self.publisher.publish(
            new_event(EventType.DELETE, tenant, memory_id=memory_id)
        )

    async def erase(self, tenant: str, memory_id: str) -> str:
        return await self.publisher.publish(new_event(EventType.ERASE, tenant, memory_id=memory_id))

    async def erase_tenant(self, tenant: str) -> str:
        """Every memory of ``tenant`` erased and the tenant gone from the store (its ack
        says how many memories it ``erased``); returns the event id."""
        return await self.publisher.publish(new_event(EventType.ERASE_TENANT, tenant))

    async def wait_indexed(
        self, event_ids: Sequence[str], timeout_s: float = 30.0
    ) -> dict[str, dict[str, Any]]:
        """Wait for the acks of these events on memory.indexed (applied or no-op)."""
        return await self.acks.wait(event_ids, timeout_s)

    # -- read --------------------------------------------------------------------

    async def weaviate_ready(self) -> bool:
        return await self.reader.ready()

    async def kafka_ready(self, timeout_s: float = 5.0) -> bool:
        """Whether memory.indexed can be read to its end within ``timeout_s``."""
        try:
            await self.acks.catch_up(timeout_s=timeout_s)
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False
        return True

    def _embedder_now(self) -> TextEmbedder:
        if self._embedder is None:
            self._embedder = clients.embedder(self.settings)
        return self._embedder

    async def embed_query(self, text: str) -> list[float]:
        embedder = self._embedder_now()
        vectors = await asyncio.to_thread(embedder.embed, [text])
        return vectors[0]

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
    ) -> list[Memory]:
        """Hybrid search inside ``tenant``: ``alpha`` 0 is keyword (BM25) alone, 1 the
        vector alone; ``fusion`` ``relative_score`` or ``ranked``
        (:mod:`processors.core.search`). A bad value raises ``ValueError``."""
        checked = check_options(alpha, fusion)
        vector = await self.embed_query(query)
        return await self.reader.search(
            tenant,
            query,
            vector,
            limit=limit,
            alpha=alpha,
            fusion=checked,
            agent_id=agent_id,
            run_id=run_id,
            metadata=filters,
        )

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        return await self.reader.get(tenant, memory_id)

    async def history(self, tenant: str, memory_id: str) -> list[dict[str, Any]]:
        return await self.history_view.history(tenant, memory_id)


class AgentMemSync:
    """The SDK for synchronous code: an event loop of its own in a background thread.

    Takes the same collaborators as :class:`AgentMem`, or a ready ``client``."""

    def __init__(
        self, settings: Settings, *, client: AgentMem | None = None, **collaborators: Any
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client = client or AgentMem(settings, **collaborators)
        self._call(self.client.start())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def __enter__(self) -> AgentMemSync:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add(self, tenant: str, content: str, **kwargs: Any) -> str:
        return self._call(self.client.add(tenant, content, **kwargs))

    def update(self, tenant: str, memory_id: str, content: str, **kwargs: Any) -> str:
        return self._call(self.client.update(tenant, memory_id, content, **kwargs))

    def delete(self, tenant: str, memory_id: str) -> str:
        return self._call(self.client.delete(tenant, memory_id))

    def erase(self, tenant: str, memory_id: str) -> str:
        return self._call(self.client.erase(tenant, memory_id))

    def erase_tenant(self, tenant: str) -> str:
        return self._call(self.client.erase_tenant(tenant))

    def publish(self, events: Sequence[MemoryEvent]) -> list[str]:
        return self._call(self.client.publish(events))

    def wait_indexed(self, event_ids: Sequence[str], timeout_s: float = 30.0) -> dict[str, Any]:
        return self._call(self.client.wait_indexed(event_ids, timeout_s))

    def search(self, tenant: str, query: str, **kwargs: Any) -> list[Memory]:
        return self._call(self.client.search(tenant, query, **kwargs))

    def get(self, tenant: str, memory_id: str) -> Memory | None:
        return self._call(self.client.get(tenant, memory_id))

    def history(self, tenant: str, memory_id: str) -> list[dict[str, Any]]:
        return self._call(self.client.history(tenant, memory_id))

    def close(self) -> None:
        self._call(self.client.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
