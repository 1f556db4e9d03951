"""Reading a run's acks and dead letters from Kafka."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import TopicPartition

from loadgen.report.records import Ack, Window
from streams import clients
from streams.client.topics import partitions_of


async def read_topic(
    bootstrap: clients.KafkaTarget, topic: str, since_ms: float | None = None
) -> list[bytes | None]:
    """The values on a topic now (from ``since_ms`` by record timestamp, if given)."""
    partitions = await partitions_of(bootstrap, topic)
    if not partitions:
        return []
    consumer = clients.kafka_consumer(
        bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        # explicit offsets: seek_to_beginning right after assign() can lose a race with
        # the consumer's own initial position reset
        starts = await consumer.beginning_offsets(tps)
        if since_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, int(since_ms)))
            starts = {tp: ends[tp] if at is None else at.offset for tp, at in found.items()}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        values: list[bytes | None] = []
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, messages in batch.items():
                values += [m.value for m in messages if m.offset < ends[tp]]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return values
    finally:
        await consumer.stop()


def load_run(
    bootstrap: clients.KafkaTarget, indexed_topic: str, deadletter_topic: str, window: Window
) -> tuple[list[Ack], list[dict[str, Any]]]:
    """The acks and dead letters of the window, read from the topics."""

    async def both() -> tuple[list[bytes | None], list[bytes | None]]:
        return await asyncio.gather(
            read_topic(bootstrap, indexed_topic, window.since_ms),
            read_topic(bootstrap, deadletter_topic, window.since_ms),
        )

    ack_values, dead_values = asyncio.run(both())
    acks = []
    for value in ack_values:
        ack = Ack.from_doc(_json(value))
        if ack is not None and window.has_ack(ack):
            acks.append(ack)
    dead = []
    for value in dead_values:
        doc = _json(value)
        if isinstance(doc, dict) and window.has_dead_letter(doc):
            dead.append(doc)
    return acks, dead


def _json(value: bytes | None) -> object:
    try:
        return json.loads(value or b"null")
    except ValueError:
        return None
