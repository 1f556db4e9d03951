"""`agentmem requeue-enrich`: send dead-lettered enrichments back to memory.enrich.

An enrichment that failed for good (LLM down, circuit open, retries spent) is in
memory.deadletter with stage ``enrich`` and the original request bytes. Once the
endpoint is healthy again, this re-publishes those requests; the enrich agent
treats them like new ones (a memory that changed since is skipped as stale, and
answers already cached cost nothing), so requeueing twice is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from processors.kafka_sink import KafkaRecordSink
from processors.records import OutRecord
from streams.publisher import durable_producer
from streams.settings import Settings
from streams.topic_follower import TopicFollower
from streams.topics import Topics

# Reasons that a second try cannot change (the request itself is unreadable).
PERMANENT = frozenset({"invalid_request"})


def requeueable(
    dead_letters: Iterable[dict[str, Any]], since: datetime | None = None
) -> list[tuple[bytes, bytes]]:
    """(key, value) of the enrichment requests to send again, each once. Pure."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    chosen: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
    for doc in dead_letters:
        if doc.get("stage") != "enrich" or doc.get("reason") in PERMANENT:
            continue
        if doc.get("value_encoding") != "utf-8" or not doc.get("value"):
            continue
        if since is not None and datetime.fromisoformat(doc["failed_at"]) < since:
            continue
        source = doc.get("source") or {}
        where = (source.get("topic"), source.get("partition"), source.get("offset"))
        chosen[where] = (str(doc.get("key") or "").encode(), str(doc["value"]).encode())
    return list(chosen.values())


class _DeadLetters(TopicFollower):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings.kafka_bootstrap_servers,
            Topics.from_settings(settings).deadletter,
            from_beginning=True,
        )
        self.docs: list[dict[str, Any]] = []

    def on_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value:
            self.docs.append(json.loads(record.value))


async def requeue_enrichments(settings: Settings, since: datetime | None = None) -> int:
    """Re-publish the failed enrichments; the number sent."""
    reader = _DeadLetters(settings)
    await reader.start()
    try:
        await reader.catch_up(timeout_s=120)
    finally:
        await reader.stop()
    records = [OutRecord(key, value) for key, value in requeueable(reader.docs, since)]
    if not records:
        return 0
    producer = durable_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await KafkaRecordSink(producer).send_all(Topics.from_settings(settings).enrich, records)
    finally:
        await producer.stop()
    return len(records)
