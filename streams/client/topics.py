"""Our topics, their configs, and creating them when missing.

:class:`Topics`, :func:`topic_specs` and :func:`topic_problems` are pure;
:func:`ensure_topics`, :func:`check_topics` and :func:`partitions_of` talk to Kafka (an
admin client from :mod:`streams.clients`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams import clients
from streams.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
DEADLETTER_POLICY = "compact,delete"


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
    state: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(
            events=settings.topic("memory.events"),
            history=settings.topic("memory.history"),
            deadletter=settings.topic("memory.deadletter"),
            indexed=settings.topic("memory.indexed"),
            enrich=settings.topic("memory.enrich"),
            enriched=settings.topic("memory.enriched"),
            state=settings.topic("memory.state"),
        )


def compaction_bound(settings: Settings) -> dict[str, str]:
    """What bounds how long a superseded or tombstoned record stays readable in a
    compacted topic: the active segment rolls (on the next append) and the rolled
    records are compacted within ``AGENTMEM_COMPACTION_BOUND_MS``."""
    bound = str(settings.compaction_bound_ms)
    return {"segment.ms": bound, "max.compaction.lag.ms": bound}


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
                **compaction_bound(settings),
            },
        ),
        # Kept 14 days, and compacted: each dead letter is keyed by its tenant, memory
        # and source position, so that an erase tombstones the memory's (and the bound
        # holds for them as for history).
        TopicSpec(
            t.deadletter,
            n,
            {
                "cleanup.policy": DEADLETTER_POLICY,
                "retention.ms": str(14 * DAY_MS),
                **compaction_bound(settings),
            },
        ),
        TopicSpec(t.indexed, n, {"cleanup.policy": "delete", "retention.ms": str(DAY_MS)}),
        # Intelligent mode: requests to enrich a searchable memory (key tenant, so a
        # tenant's memories are decided in order), and how each enrichment ended.
        TopicSpec(t.enrich, n, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}),
        TopicSpec(t.enriched, n, {"cleanup.policy": "delete", "retention.ms": str(DAY_MS)}),
        # The worker's memory_state changelog: partition p holds the state of the
        # memories of events partition p (the latest per memory, compacted), restored by
        # whichever worker owns p next (streams/service/state.py).
        TopicSpec(
            t.state,
            n,
            {
                "cleanup.policy": "compact",
                "min.cleanable.dirty.ratio": "0.1",
                **compaction_bound(settings),
            },
        ),
    ]


def replica_configs(settings: Settings) -> dict[str, str]:
    """What every topic we create gets for its replicas: ``min.insync.replicas`` once
    the replication factor is 3 or more (2 of 3, so that with one broker down an
    ``acks=all`` write still lands on two), else nothing (the broker's default, 1)."""
    if settings.min_insync_replicas <= 1:
        return {}
    return {"min.insync.replicas": str(settings.min_insync_replicas)}


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
                        topic_configs={**s.config, **replica_configs(settings)},
                    )
                    for s in missing
                ]
            )
            log.info("created topics %s", ", ".join(s.name for s in missing))
        await _compact_old_deadletters(settings, admin, existing)
        return [s.name for s in missing]
    finally:
        await admin.close()


async def _compact_old_deadletters(
    settings: Settings, admin: AIOKafkaAdminClient, existing: set[str]
) -> None:
    """A dead-letter topic created before dead letters were keyed for erasure (policy
    ``delete``) gets our configs; a no-op once it has them."""
    name = Topics.from_settings(settings).deadletter
    spec = next(s for s in topic_specs(settings) if s.name == name)
    if spec.name not in existing:
        return
    found = await describe_existing(settings, [spec.name])
    if found.get(spec.name, ExistingTopic(0, {})).config.get("cleanup.policy") != "delete":
        return
    configs = {**spec.config, **replica_configs(settings)}
    await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, configs)])
    log.warning("topic %s: now %s (dead letters are erasable)", spec.name, DEADLETTER_POLICY)


@dataclass(frozen=True)
class ExistingTopic:
    """What the broker says of a topic: its partition count and its configs."""

    partitions: int
    config: dict[str, str]


class TopicsMisconfigured(RuntimeError):
    """Existing topics that would make the pipeline wrong; the message names each
    topic, what is wrong and how to fix it."""


# Configs whose value must be what we create the topic with: the events log is kept
# forever (replay rebuilds the read side), history is compacted (one record per change).
_MUST_MATCH = ("cleanup.policy",)
_MUST_MATCH_EVENTS = ("cleanup.policy", "retention.ms", "retention.bytes")


def topic_problems(settings: Settings, existing: dict[str, ExistingTopic]) -> list[str]:
    """What is wrong with the topics that exist already, one line each. Pure.

    ``memory.events`` must have ``AGENTMEM_EVENTS_PARTITIONS`` partitions and keep every
    record; ``memory.enrich`` and ``memory.state`` must have as many partitions as
    ``memory.events`` (the index and enrich agents of one memory are co-partitioned,
    and state partition p belongs to events partition p); every topic's cleanup
    policy must be ours. Other partition counts and configs are the operator's choice."""
    t = Topics.from_settings(settings)
    events = existing.get(t.events)
    problems: list[str] = []
    for spec in topic_specs(settings):
        found = existing.get(spec.name)
        if found is None:
            continue
        wanted = spec.partitions
        copartitioned = (t.enrich, t.state, t.deadletter)
        if spec.name in copartitioned and events is not None:
            wanted = events.partitions  # co-partitioned with the events as they are
        if spec.name in (t.events, *copartitioned) and found.partitions != wanted:
            problems.append(
                f"topic {spec.name} has {found.partitions} partition(s), {wanted} expected "
                f"(AGENTMEM_EVENTS_PARTITIONS={settings.events_partitions}); it was probably "
                "created by a producer that ran before the first worker. Fix: if it holds "
                "nothing to keep, delete it (kafka-topics.sh --delete --topic "
                f"{spec.name}) and start the worker again; otherwise set "
                f"AGENTMEM_EVENTS_PARTITIONS={found.partitions}"
            )
        keys = _MUST_MATCH_EVENTS if spec.name == t.events else _MUST_MATCH
        if spec.name == t.deadletter and found.config.get("cleanup.policy") == "delete":
            continue  # made compacted by ensure_topics (a dead-letter topic of before)
        problems.extend(_config_problems(spec, found, keys))
    return problems


def topic_warnings(settings: Settings, existing: dict[str, ExistingTopic]) -> list[str]:
    """Existing compacted topics whose compaction bound is not the configured one
    (created before the setting, or with another value): an erased text may stay
    readable there longer than ``AGENTMEM_COMPACTION_BOUND_MS``. Logged, not refused:
    the pipeline is right either way. Pure."""
    warnings = []
    for spec in topic_specs(settings):
        found = existing.get(spec.name)
        if found is not None and spec.config.get("cleanup.policy") == "compact":
            warnings += _config_problems(spec, found, tuple(compaction_bound(settings)))
    return warnings


def _config_problems(spec: TopicSpec, found: ExistingTopic, keys: tuple[str, ...]) -> list[str]:
    return [
        f"topic {spec.name} has {key}={found.config.get(key)}, {spec.config[key]} expected. "
        f"Fix: kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
        f"--add-config {key}={spec.config[key]}"
        for key in keys
        if key in spec.config and found.config.get(key) != spec.config[key]
    ]


async def describe_existing(settings: Settings, names: list[str]) -> dict[str, ExistingTopic]:
    """Partition counts and configs of those of ``names`` that exist."""
    admin = clients.kafka_admin(settings)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        counts = {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
        if not counts:
            return {}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in counts]
        )
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for error_code, _message, _type, name, entries, *_ in response.resources:
            if not error_code:
                configs[name] = {entry[0]: entry[1] for entry in entries}
    return {name: ExistingTopic(n, configs.get(name, {})) for name, n in counts.items()}


async def check_topics(settings: Settings) -> None:
    """Raise :class:`TopicsMisconfigured` when an existing topic is wrong for us."""
    names = [spec.name for spec in topic_specs(settings)]
    existing = await describe_existing(settings, names)
    for warning in topic_warnings(settings, existing):
        log.warning("compaction bound: %s", warning)
    problems = topic_problems(settings, existing)
    if problems:
        raise TopicsMisconfigured("\n".join(problems))


async def partitions_of(bootstrap: clients.KafkaTarget, topic: str) -> list[int]:
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
