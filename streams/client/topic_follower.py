"""Follow a topic in the background (no consumer group): the base of the ack watcher,
the history projection and the dead-letter reader. Not pure (a Kafka consumer).

The consumer and the partition lookup are injectable, so that a follower runs on a
fake consumer in unit tests; by default they come from :mod:`streams.clients`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

from aiokafka import ConsumerRecord, TopicPartition

from streams import clients
from streams.client.topics import partitions_of

log = logging.getLogger(__name__)


class FollowerConsumer(Protocol):
    """What a follower uses of an ``AIOKafkaConsumer``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> Any: ...

    async def seek_to_end(self, *partitions: TopicPartition) -> Any: ...

    async def position(self, partition: TopicPartition) -> int: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]: ...


ConsumerFactory = Callable[[], FollowerConsumer]
PartitionLookup = Callable[[], Awaitable[list[int]]]


class TopicFollower(ABC):
    #: read the topic from its beginning (a projection) or from now on (acks)
    from_beginning: ClassVar[bool]

    def __init__(
        self,
        bootstrap: clients.KafkaTarget,
        topic: str,
        *,
        consumer_factory: ConsumerFactory | None = None,
        partitions: PartitionLookup | None = None,
    ) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        from_beginning = self.from_beginning
        self._consumer_factory: ConsumerFactory = consumer_factory or (
            lambda: clients.follower_consumer(bootstrap, from_beginning=from_beginning)
        )
        self._partitions: PartitionLookup = partitions or (lambda: partitions_of(bootstrap, topic))
        self._consumer: FollowerConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._tps: list[TopicPartition] = []
        self._progress = asyncio.Condition()
        self.init_state()

    def init_state(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Where a subclass sets up what it keeps of the records (called by __init__)."""

    @abstractmethod
    def on_record(self, record: ConsumerRecord[bytes, bytes]) -> None: ...

    async def start(self) -> None:
        partitions = await self._partitions()
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist (is the worker running?)")
        self._consumer = self._consumer_factory()
        await self._consumer.start()
        self._tps = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(self._tps)
        if self.from_beginning:
            await self._consumer.seek_to_beginning(*self._tps)
        else:
            await self._consumer.seek_to_end(*self._tps)
        for tp in self._tps:  # resolve positions now: nothing after start() is missed
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run(), name=f"follow {self.topic}")

    @property
    def consumer(self) -> FollowerConsumer:
        if self._consumer is None:
            raise RuntimeError(f"follower of {self.topic} has not been started")
        return self._consumer

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                for record in records:
                    try:
                        self.on_record(record)
                    except Exception:
                        log.exception("skipping unreadable record on %s", self.topic)
            async with self._progress:
                self._progress.notify_all()

    async def wait_progress(self, timeout_s: float) -> None:
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout_s)

    async def catch_up(self, timeout_s: float = 10.0) -> None:
        """Wait until everything on the topic now has been read."""
        ends = await self.consumer.end_offsets(self._tps)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            positions = {tp: await self.consumer.position(tp) for tp in self._tps}
            if all(positions[tp] >= end for tp, end in ends.items()):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{self.topic} not caught up within {timeout_s}s")
            await self.wait_progress(0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
