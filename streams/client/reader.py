"""The SDK's read side on Weaviate: an async client of its own and a
:class:`processors.adapters.weaviate.reader.MemoryReader` on it. Not pure (network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from processors.adapters.weaviate.reader import Memory, MemoryReader
from processors.core.search import DEFAULT_ALPHA, DEFAULT_FUSION, Fusion
from streams import clients
from streams.settings import Settings

if TYPE_CHECKING:
    import weaviate


class WeaviateReader:
    """Connects on start(), closes on stop(); search and get before start() raise."""

    def __init__(
        self,
        settings: Settings,
        client_factory: Callable[[Settings], weaviate.WeaviateAsyncClient] = (
            clients.weaviate_async
        ),
    ) -> None:
        self.settings = settings
        self._client_factory = client_factory
        self._client: weaviate.WeaviateAsyncClient | None = None
        self._reader: MemoryReader | None = None

    async def start(self) -> None:
        client = self._client_factory(self.settings)
        await client.connect()
        self._client = client
        self._reader = MemoryReader(client, self.settings.weaviate_collection)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def reader(self) -> MemoryReader:
        if self._reader is None:
            raise RuntimeError("AgentMem.start() has not been called")
        return self._reader

    async def ready(self) -> bool:
        return self._client is not None and await self._client.is_ready()

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
    ) -> list[Memory]:
        return await self.reader.search(
            tenant,
            query,
            vector,
            limit=limit,
            alpha=alpha,
            fusion=fusion,
            agent_id=agent_id,
            run_id=run_id,
            metadata=metadata,
        )

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        return await self.reader.get(tenant, memory_id)
