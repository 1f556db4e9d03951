"""Follow a topic in the background (no consumer group): the base of the ack watcher
and the history projection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.client.topics import partitions_of

log = logging.getLogger(__name__)


class TopicFollower(ABC):
    def __init__(self, bootstrap: str, topic: str, from_beginning: bool) -> None:
        self.bootstrap, self.topic, self.from_beginning = bootstrap, topic, from_beginning
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._tps: list[TopicPartition] = []
        self._progress = asyncio.Condition()

    @abstractmethod
    def on_record(self, record: ConsumerRecord[bytes, bytes]) -> None: ...

    async def start(self) -> None:
        partitions = await partitions_of(self.bootstrap, self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist (is the worker running?)")
        # The reset policy agrees with the seek below: the consumer's own initial
        # position reset can otherwise race the seek and win.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self.from_beginning else "latest",
        )
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
    def consumer(self) -> AIOKafkaConsumer:
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
