"""`agentmem requeue --stage index|enrich`: send dead-lettered work back to be done again.

Work that failed for a reason a later try can fix sits in memory.deadletter with its
original key and bytes: an event the index stage could not apply (stage ``index``:
``internal_error``, Weaviate refusing or away) goes back to memory.events; an
enrichment that failed (stage ``enrich``: LLM down, circuit open, retries spent) goes
back to memory.enrich. Invalid events (stage ``validate``) and refusals (stage
``apply``) are not sent: a second try cannot change them. A dead letter stored
truncated (its original was too large to keep) cannot be sent either; it is counted.
Requeueing twice is harmless: an event already applied is a no-op, an enrichment of a
memory that changed since is stale, and answers already cached cost nothing.

:func:`requeueable` is pure; :func:`requeue` reads and writes Kafka.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import ConsumerRecord

from processors.adapters.kafka_sink import KafkaRecordSink
from processors.core.records import OutRecord
from streams import clients
from streams.client.topic_follower import TopicFollower
from streams.client.topics import Topics
from streams.settings import Settings

Stage = Literal["index", "enrich"]

# Reasons that a second try cannot change (the request itself is unreadable).
PERMANENT: dict[str, frozenset[str]] = {
    "index": frozenset(),
    "enrich": frozenset({"invalid_request"}),
}


@dataclass(frozen=True)
class Selection:
    records: list[tuple[bytes, bytes]]
    truncated: int  # dead letters that would qualify but hold only a prefix


def _raw(text: object, encoding: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None
    return text.encode("utf-8", "surrogatepass") if encoding == "utf-8" else None


def requeueable(
    dead_letters: Iterable[dict[str, Any]], stage: Stage = "enrich", since: datetime | None = None
) -> Selection:
    """(key, value) of the dead letters of ``stage`` to send again, each once. Pure."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    chosen: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
    truncated = 0
    for doc in dead_letters:
        if doc.get("stage") != stage or doc.get("reason") in PERMANENT[stage]:
            continue
        if since is not None and datetime.fromisoformat(doc["failed_at"]) < since:
            continue
        value = _raw(doc.get("value"), doc.get("value_encoding"))
        if not value:
            continue
        if doc.get("truncated"):
            truncated += 1
            continue
        key = _raw(doc.get("key"), doc.get("key_encoding", "utf-8")) or b""
        source = doc.get("source") or {}
        where = (source.get("topic"), source.get("partition"), source.get("offset"))
        chosen[where] = (key, value)
    return Selection(list(chosen.values()), truncated)


class _DeadLetters(TopicFollower):
    from_beginning = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, Topics.from_settings(settings).deadletter)
        # by key (unkeyed: by arrival), with the arrival number to keep the read order
        self._docs: dict[bytes | int, tuple[int, dict[str, Any]]] = {}
        self._arrived = 0

    @property
    def docs(self) -> list[dict[str, Any]]:
        """The dead letters still there, in the order read: a tombstone (an erase)
        takes its key's away."""
        return [doc for _, doc in sorted(self._docs.values(), key=lambda d: d[0])]

    def on_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self._arrived += 1
        key: bytes | int = record.key if record.key is not None else -self._arrived
        if record.value:
            self._docs[key] = (self._arrived, json.loads(record.value))
        else:
            self._docs.pop(key, None)


async def requeue(settings: Settings, stage: Stage, since: datetime | None = None) -> Selection:
    """Re-publish the failed work of ``stage``; what was sent and what could not be."""
    reader = _DeadLetters(settings)
    await reader.start()
    try:
        await reader.catch_up(timeout_s=120)
    finally:
        await reader.stop()
    chosen = requeueable(reader.docs, stage, since)
    if not chosen.records:
        return chosen
    topics = Topics.from_settings(settings)
    producer = clients.resilient_producer(settings)
    await producer.start()
    try:
        await KafkaRecordSink(producer).send_all(
            topics.events if stage == "index" else topics.enrich,
            [OutRecord(key, value) for key, value in chosen.records],
        )
    finally:
        await producer.stop()
    return chosen
