"""Workers that start at once on a new collection: each makes sure the alias and its
first generation exist, and none may fail because another made them first (CI saw a
second worker exit with 'class already exists')."""

from __future__ import annotations

import asyncio
import uuid

from processors.adapters.weaviate.generations import ensure_alias, generation_name
from streams import clients
from streams.settings import Settings
from tests.integration.harness import weaviate_client

STARTERS = 6


async def test_workers_starting_at_once_all_find_one_collection(stack: Settings) -> None:
    alias = f"Race{uuid.uuid4().hex[:10]}"

    async def start() -> str:
        async with clients.weaviate_async(stack) as client:
            return await ensure_alias(client, alias)

    try:
        served = await asyncio.gather(*(start() for _ in range(STARTERS)))
        assert set(served) == {generation_name(alias, 1)}
    finally:
        with weaviate_client(stack) as client:
            if client.alias.get(alias_name=alias) is not None:
                client.alias.delete(alias_name=alias)
            client.collections.delete(generation_name(alias, 1))
