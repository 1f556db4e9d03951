"""Integration fixtures: the real local stack, started once per session or reused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import weaviate
from aiokafka.admin import NewTopic

from streams import clients
from streams.client.topics import ensure_topics
from streams.settings import Settings
from streams.stack import supervisor
from tests.integration.harness import PipelineTopics, isolated_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The local stack, healthy. Stopped at the end only if this session started it."""
    outcome = supervisor.up(settings)
    yield settings
    if all(state == "started" for state in outcome.values()):
        supervisor.down(settings)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"test.{prefix}.{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
async def topic_factory(stack: Settings) -> AsyncIterator[Callable[..., object]]:
    """Creates uuid-named topics and deletes them after the test."""
    admin = clients.kafka_admin(stack)
    await admin.start()
    created: list[str] = []

    async def make(partitions: int = 1, **configs: str) -> str:
        name = f"test.{uuid.uuid4().hex}"
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs)]
        )
        created.append(name)
        return name

    yield make
    if created:
        await admin.delete_topics(created)
    await admin.close()


@pytest.fixture
def weaviate_client(stack: Settings) -> Iterator[weaviate.WeaviateClient]:
    client = clients.weaviate_sync(stack)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def topics_for(stack: Settings) -> AsyncIterator[list[PipelineTopics]]:
    """Topic readers a test opens (append them); closed after the test."""
    opened: list[PipelineTopics] = []
    yield opened
    for t in opened:
        await t.close()


#: ``await new_pipeline(**overrides)``: private settings on the shared stack (see
#: ``isolated_settings``), their topics created, and readers of history, dead letters
#: and acks (closed after the test).
NewPipeline = Callable[..., Awaitable[tuple[Settings, PipelineTopics]]]


@pytest.fixture
def new_pipeline(stack: Settings, tmp_path: Path, topics_for: list[PipelineTopics]) -> NewPipeline:
    async def make(**overrides: Any) -> tuple[Settings, PipelineTopics]:
        settings = isolated_settings(stack, tmp_path / "state", **overrides)
        await ensure_topics(settings)
        topics = PipelineTopics.open(settings)
        topics_for.append(topics)
        return settings, topics

    return make
