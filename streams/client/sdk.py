"""The Python SDK: publish memory events, wait until they are searchable, read back.

    async with AgentMem(Settings()) as mem:
        event_id = await mem.add("user-42", "Prefers aisle seats")
        await mem.wait_indexed([event_id])
        hits = await mem.search("user-42", "seat preference")

`AgentMemSync` wraps it for code without an event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import weaviate

from processors.adapters.embedding import Embedder
from processors.adapters.weaviate.reader import Memory, MemoryReader
from processors.core.events import EventType, MemoryEvent, Mode, new_event
from streams.client.acks import AckWatcher
from streams.client.history import HistoryView
from streams.client.publisher import EventPublisher
from streams.client.topics import Topics
from streams.settings import Settings
from streams.stack.modelpack import pack_dir

T = TypeVar("T")


class AgentMem:
    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        self.settings = settings
        topics = Topics.from_settings(settings)
        self.publisher = EventPublisher(settings)
        self.acks = AckWatcher(settings.kafka_bootstrap_servers, topics.indexed)
        self.history_view = HistoryView(settings.kafka_bootstrap_servers, topics.history)
        self._embedder = embedder
        self._client: weaviate.WeaviateAsyncClient | None = None
        self._reader: MemoryReader | None = None

    async def start(self) -> None:
        await self.acks.start()  # before publishing: no ack is missed
        await self.history_view.start()
        await self.publisher.start()
        self._client = weaviate.use_async_with_local(
            host=self.settings.weaviate_host,
            port=self.settings.weaviate_http_port,
            grpc_port=self.settings.weaviate_grpc_port,
        )
        await self._client.connect()
        self._reader = MemoryReader(self._client, self.settings.weaviate_collection)

    async def stop(self) -> None:
        await self.publisher.stop()
        await self.acks.stop()
        await self.history_view.stop()
        if self._client is not None:
            await self._client.close()

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

    async def wait_indexed(
        self, event_ids: Sequence[str], timeout_s: float = 30.0
    ) -> dict[str, dict[str, Any]]:
        """Wait for the acks of these events on memory.indexed (applied or no-op)."""
        return await self.acks.wait(event_ids, timeout_s)

    # -- read --------------------------------------------------------------------

    @property
    def reader(self) -> MemoryReader:
        if self._reader is None:
            raise RuntimeError("AgentMem.start() has not been called")
        return self._reader

    async def weaviate_ready(self) -> bool:
        return self._client is not None and await self._client.is_ready()

    def _embedder_now(self) -> Embedder:
        if self._embedder is None:
            s = self.settings
            self._embedder = Embedder(s.embedding_model, pack_dir(s.cache_dir), s.embedding_threads)
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
        alpha: float = 0.5,
    ) -> list[Memory]:
        vector = await self.embed_query(query)
        return await self.reader.search(
            tenant,
            query,
            vector,
            limit=limit,
            alpha=alpha,
            agent_id=agent_id,
            run_id=run_id,
            metadata=filters,
        )

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        return await self.reader.get(tenant, memory_id)

    async def history(self, tenant: str, memory_id: str) -> list[dict[str, Any]]:
        return await self.history_view.history(tenant, memory_id)


class AgentMemSync:
    """The SDK for synchronous code: an event loop of its own in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client = AgentMem(settings)
        self._call(self.client.start())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def add(self, tenant: str, content: str, **kwargs: Any) -> str:
        return self._call(self.client.add(tenant, content, **kwargs))

    def update(self, tenant: str, memory_id: str, content: str, **kwargs: Any) -> str:
        return self._call(self.client.update(tenant, memory_id, content, **kwargs))

    def delete(self, tenant: str, memory_id: str) -> str:
        return self._call(self.client.delete(tenant, memory_id))

    def erase(self, tenant: str, memory_id: str) -> str:
        return self._call(self.client.erase(tenant, memory_id))

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
