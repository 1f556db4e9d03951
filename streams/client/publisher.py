"""Publishing memory events to ``memory.events`` (the write half of the SDK).

:class:`EventPublisher` sends through a :class:`processors.adapters.kafka_sink.ResilientProducer`,
so it keeps publishing after a broker restart (built by :mod:`streams.clients`, or
injected). Not pure (Kafka).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol

from processors.core.events import MemoryEvent
from streams import clients
from streams.client.topics import Topics
from streams.settings import Settings

__all__ = ["EventPublisher", "RecordProducer"]


class RecordProducer(Protocol):
    """What the publisher uses of a :class:`ResilientProducer` (a fake in unit tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_all(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
    ) -> int | None: ...


class EventPublisher:
    """An idempotent producer (acks=all) keyed by tenant, so a tenant's events keep order.

    A publish returns once the broker acknowledged every event. While the broker is away
    it waits, at most ``delivery_timeout_s``, then raises a retriable error
    (``KafkaTimeoutError``, or aiokafka's connection errors when no producer can be
    made; ``processors.core.errors.is_retriable`` is true for all of them); an event the broker
    refuses for good raises ``processors.core.errors.PermanentError``. An event whose publish
    timed out may still be written later: publish it again (same ``event_id``) to be sure,
    the worker ignores the repeat.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        delivery_timeout_s: float = 15.0,
        on_recreate: Callable[[BaseException], None] | None = None,
        producer: RecordProducer | None = None,
    ) -> None:
        self.topic = Topics.from_settings(settings).events
        self.producer: RecordProducer = (
            producer
            if producer is not None
            else clients.resilient_producer(
                settings,
                delivery_timeout_s=delivery_timeout_s,
                stop_timeout_s=delivery_timeout_s,
                request_timeout_ms=max(1000, int(delivery_timeout_s * 1000)),
                on_recreate=on_recreate,
            )
        )

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

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
        await self.producer.send_all(self.topic, records)

    async def publish_raw(self, key: bytes | None, value: bytes | None) -> None:
        """Bytes as they are (tests and replay use it to send malformed events too)."""
        await self.producer.send_all(self.topic, [(key, value)])
