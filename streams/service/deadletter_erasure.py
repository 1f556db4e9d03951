"""An erase's reach into ``memory.deadletter``: the memory's (or tenant's) dead letters
tombstoned.

Dead letters are keyed ``tenant\\x1fmemory\\x1fsource-position``
(:func:`processors.core.records.dead_letter_key`) and written to the partition their
record was read from, the tenant's events partition: so an erase reads that one
partition of the compacted topic, finds the keys that start with the memory's (or the
tenant's) prefix and still hold a dead letter, and writes their tombstones there. The
read is of dead letters only (kept 14 days), and only when something is erased.

:func:`live_matches` is pure; :class:`KafkaDeadLetterEraser` reads and writes Kafka.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiokafka import TopicPartition

from processors.adapters.kafka_sink import ResilientProducer
from streams import clients
from streams.client.topics import Topics
from streams.settings import Settings

__all__ = ["KafkaDeadLetterEraser", "live_matches"]


def live_matches(
    records: Iterable[tuple[bytes | None, bytes | None]], prefixes: Sequence[bytes]
) -> list[bytes]:
    """The keys, in first-seen order, that start with one of ``prefixes`` and whose last
    record (of ``records``, in log order) is not a tombstone. Pure."""
    live: dict[bytes, bool] = {}
    for key, value in records:
        if key is not None and key.startswith(tuple(prefixes)):
            live[key] = value is not None
    return [key for key, alive in live.items() if alive]


class KafkaDeadLetterEraser:
    """Implements :class:`processors.ports.DeadLetterEraser` with the worker's producer."""

    def __init__(
        self, settings: Settings, producer: Callable[[], Awaitable[ResilientProducer]]
    ) -> None:
        self.settings = settings
        self.topic = Topics.from_settings(settings).deadletter
        self._producer = producer

    async def erase(self, partition: int, prefixes: Sequence[bytes]) -> int:
        if not prefixes:
            return 0
        keys = live_matches(await self._read(partition), prefixes)
        if keys:
            producer = await self._producer()
            await producer.send_all(self.topic, [(k, None) for k in keys], partition=partition)
        return len(keys)

    async def _read(self, partition: int) -> list[tuple[bytes | None, bytes | None]]:
        """(key, value) of every record of the partition, up to its end now."""
        tp = TopicPartition(self.topic, partition)
        consumer = clients.follower_consumer(self.settings, from_beginning=True)
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            await consumer.seek_to_beginning(tp)
            found: list[tuple[bytes | None, bytes | None]] = []
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                found += [(r.key, r.value) for r in batches.get(tp, [])]
            return found
        finally:
            await consumer.stop()
