"""Publishing memory events to ``memory.events`` (the write half of the SDK)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType

from aiokafka import AIOKafkaProducer

from processors.events import MemoryEvent
from streams.settings import Settings
from streams.topics import Topics


def durable_producer(bootstrap: str) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas (acks=all)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
    )


class EventPublisher:
    """An idempotent producer (acks=all) keyed by tenant, so a tenant's events keep order."""

    def __init__(self, settings: Settings) -> None:
        self.topic = Topics.from_settings(settings).events
        self._producer = durable_producer(settings.kafka_bootstrap_servers)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> EventPublisher:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def publish(self, event: MemoryEvent) -> str:
        await self.publish_raw(event.tenant.encode(), event.to_json())
        return event.event_id

    async def publish_many(self, events: Sequence[MemoryEvent]) -> list[str]:
        await self.publish_many_raw([(e.tenant.encode(), e.to_json()) for e in events])
        return [e.event_id for e in events]

    async def publish_many_raw(self, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
        """Send all, then wait until the broker acknowledged every one."""
        futures = [await self._producer.send(self.topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)

    async def publish_raw(self, key: bytes | None, value: bytes | None) -> None:
        """Bytes as they are (tests and replay use it to send malformed events too)."""
        await (await self._producer.send(self.topic, value, key=key))
