"""Durable writes to our own topics (history, acks, dead letters) through aiokafka."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from processors.records import OutRecord


class KafkaRecordSink:
    """Sends records and waits until the broker has them all (acks=all, idempotent)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None:
        if not records:
            return
        futures = [await self.producer.send(topic, value=r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)
