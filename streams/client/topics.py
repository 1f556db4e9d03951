"""Our topics, their configs, and creating them when missing.

:class:`Topics` and :func:`topic_specs` are pure; :func:`ensure_topics` and
:func:`partitions_of` talk to Kafka (an admin client from :mod:`streams.clients`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import NewTopic

from streams import clients
from streams.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Topics:
    events: str
    history: str
    deadletter: str
    indexed: str
    enrich: str
    enriched: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(
            events=settings.topic("memory.events"),
            history=settings.topic("memory.history"),
            deadletter=settings.topic("memory.deadletter"),
            indexed=settings.topic("memory.indexed"),
            enrich=settings.topic("memory.enrich"),
            enriched=settings.topic("memory.enriched"),
        )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = Topics.from_settings(settings)
    n = settings.events_partitions
    return [
        # The source of truth: kept forever; replaying it rebuilds the read side.
        TopicSpec(
            t.events, n, {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
        ),
        # One record per change, key tenant/memory/version; erase writes tombstones.
        TopicSpec(
            t.history,
            settings.history_partitions,
            {
                "cleanup.policy": "compact",
                "min.cleanable.dirty.ratio": "0.1",
                "delete.retention.ms": str(DAY_MS),
                "segment.ms": str(DAY_MS),
            },
        ),
        TopicSpec(t.deadletter, n, {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)}),
        TopicSpec(t.indexed, n, {"cleanup.policy": "delete", "retention.ms": str(DAY_MS)}),
        # Intelligent mode: requests to enrich a searchable memory (key tenant, so a
        # tenant's memories are decided in order), and how each enrichment ended.
        TopicSpec(t.enrich, n, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}),
        TopicSpec(t.enriched, n, {"cleanup.policy": "delete", "retention.ms": str(DAY_MS)}),
    ]


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics with their configs; return the names created."""
    admin = clients.kafka_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in topic_specs(settings) if s.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=s.config,
                    )
                    for s in missing
                ]
            )
            log.info("created topics %s", ", ".join(s.name for s in missing))
        return [s.name for s in missing]
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The topic's partition numbers (empty if it does not exist)."""
    admin = clients.kafka_admin(bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"] for d in described if not d.get("error_code") for p in d["partitions"]
    )
