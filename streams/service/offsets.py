"""Operator tool: move the worker group's positions on ``memory.events`` (a replay from
the start, a skip to the end, a given offset or time). Not pure (Kafka).

A group's offsets can only be moved while it has no members: the broker would take
them back at the next commit of a running worker. :func:`reset_group` therefore
refuses while workers of the group are running (:class:`GroupActive`), and reports
what it would do (``apply=False``) or did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams import clients
from streams.client.topics import Topics, partitions_of
from streams.settings import Settings

__all__ = ["GroupActive", "OffsetMove", "Position", "group_members", "reset_group"]

#: Where to move: the start or the end of each partition, an offset, or a time (the
#: first record at or after it; the end where there is none).
Position = Literal["earliest", "latest"] | int | datetime


class OffsetMove(NamedTuple):
    partition: int
    current: int | None  # None: the group has no position there yet
    target: int


class GroupActive(RuntimeError):
    """The group has running members; stop its workers first."""


async def group_members(settings: Settings, group: str) -> tuple[str, int]:
    """The group's state (``Empty``, ``Stable``, ``Dead``, ...) and its member count."""
    admin = clients.kafka_admin(settings)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    for response in responses:
        for described in response.groups:
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            if described[1] == group:
                return str(described[2]), len(described[5])
    return "Dead", 0


async def reset_group(
    settings: Settings,
    to: Position,
    *,
    group: str | None = None,
    topic: str | None = None,
    apply: bool,
) -> list[OffsetMove]:
    """Each partition's move of ``group`` (default: the worker's) on ``topic`` (default:
    memory.events); made only with ``apply``. Raises :class:`GroupActive` while the
    group has members."""
    group = group or settings.worker_id
    topic = topic or Topics.from_settings(settings).events
    state, members = await group_members(settings, group)
    if members:
        raise GroupActive(
            f"consumer group {group} has {members} running member(s) ({state}); stop its "
            "workers first (their next commit would undo the reset)"
        )
    partitions = await partitions_of(settings, topic)
    if not partitions:
        raise ValueError(f"topic {topic} does not exist")
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer = clients.kafka_consumer(settings, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        if isinstance(to, datetime):
            found = await consumer.offsets_for_times({tp: int(to.timestamp() * 1000) for tp in tps})
            targets = {tp: found[tp].offset if found.get(tp) else end[tp] for tp in tps}
        elif to == "earliest":
            targets = dict(begin)
        elif to == "latest":
            targets = dict(end)
        else:
            targets = {tp: min(max(int(to), begin[tp]), end[tp]) for tp in tps}
        moves = [OffsetMove(tp.partition, await consumer.committed(tp), targets[tp]) for tp in tps]
        if apply:
            await consumer.commit({tp: OffsetAndMetadata(targets[tp], "") for tp in tps})
    finally:
        await consumer.stop()
    return moves
