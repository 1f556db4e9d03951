"""Consumer lag of the worker's group on a topic, exported as a gauge. Not pure (Kafka
clients from :mod:`streams.clients`)."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from processors.metrics import Metrics
from streams import clients
from streams.client.topics import partitions_of

log = logging.getLogger(__name__)


class LagMonitor:
    def __init__(
        self, bootstrap: clients.KafkaTarget, group: str, topic: str, metrics: Metrics
    ) -> None:
        self.bootstrap, self.group, self.topic, self.metrics = bootstrap, group, topic, metrics
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[int] = []

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            self._admin = clients.kafka_admin(self.bootstrap)
            await self._admin.start()
            self._consumer = clients.kafka_consumer(self.bootstrap)
            await self._consumer.start()
        return self._admin, self._consumer

    async def measure(self) -> dict[int, int]:
        """Lag per partition (end offset minus the group's committed offset)."""
        try:
            admin, consumer = await self._clients()
            if not self._partitions:
                self._partitions = await partitions_of(self.bootstrap, self.topic)
            tps = [TopicPartition(self.topic, p) for p in self._partitions]
            if not tps:
                return {}
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(self.group, partitions=tps)
        except KafkaError as exc:
            log.warning("could not measure consumer lag: %r", exc)
            return {}
        lags = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lags[tp.partition] = max(0, ends[tp] - done)
            self.metrics.consumer_lag.labels(self.topic, str(tp.partition)).set(lags[tp.partition])
        return lags

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()
