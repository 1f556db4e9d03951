"""Private Kafka on free ports, for tests that stop and restart brokers: a single broker
(KRaft), or a cluster of several, made of the same nodes `agentmem stack up
--kafka-brokers N` runs (streams/stack/kafka_node.py's Kafka, started and stopped the
way the supervisor does). Their files live under the test's own directory."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams import clients
from streams.settings import KAFKA_PORTS_PER_BROKER, Settings
from streams.stack import launcher, process
from streams.stack.build import Artifacts, ensure_kafka
from streams.stack.kafka_node import KAFKA_CONTROLLER_PORT_OFFSET, Kafka, kafka_nodes


def broker_port() -> int:
    """A free port whose neighbour (the controller listener) is free too."""
    return launcher.free_port_range(KAFKA_CONTROLLER_PORT_OFFSET + 1)


def kafka_artifacts(settings: Settings) -> Artifacts:
    none = Path("/nonexistent")  # Kafka's config and command line use only the jars
    return Artifacts(ensure_kafka(settings.cache_dir), none, none, none)


class Broker:
    """One private Kafka node (KRaft, combined broker and controller)."""

    def __init__(self, settings: Settings, node: Kafka | None = None) -> None:
        self.kafka = Kafka(settings) if node is None else node
        self.artifacts = kafka_artifacts(settings)

    @property
    def node_id(self) -> int:
        return self.kafka.node_id

    def pid(self) -> int | None:
        return process.running_pid(self.kafka.files, self.kafka.marker)

    async def start(self) -> float:
        """Start the process; the monotonic time it was started at."""
        k = self.kafka
        await asyncio.to_thread(k.prepare, self.artifacts)
        started = time.monotonic()
        await asyncio.to_thread(process.start, k.argv(self.artifacts), k.files, k.env(), k.home)
        return started

    async def wait_healthy(self, timeout_s: float = 60.0) -> float:
        """Wait until the node answers metadata requests as a registered broker; the
        monotonic time it did."""
        await asyncio.to_thread(
            launcher.wait_until,
            self.kafka.healthy,
            what=self.kafka.name,
            timeout_s=timeout_s,
            alive=lambda: self.pid() is not None,
            log_file=self.kafka.files.log_file,
            interval_s=0.2,
        )
        return time.monotonic()

    def _kill(self, sig: signal.Signals, timeout_s: float) -> None:
        pid = self.pid()
        assert pid is not None, f"{self.kafka.name} is not running"
        launcher.signal_group(pid, sig)
        assert launcher.wait_gone(pid, timeout_s), f"broker ignored {sig.name} for {timeout_s}s"

    async def kill(self, sig: signal.Signals, timeout_s: float = 45.0) -> float:
        """Send ``sig`` to the broker's process group; wait until it is gone."""
        await asyncio.to_thread(self._kill, sig, timeout_s)
        return time.monotonic()

    def down(self) -> None:
        process.stop(self.kafka.files, self.kafka.marker, timeout_s=30.0)


@dataclass
class PrivateKafka:
    settings: Settings
    broker: Broker


def _private_values(base: Settings, work_dir: Path, first_port: int) -> dict[str, Any]:
    return {
        "stack_dir": work_dir / "stack",
        "cache_dir": base.cache_dir,
        "kafka_bootstrap_servers": f"127.0.0.1:{first_port}",
        "kafka_heap": "512m",
        "topic_prefix": f"restart.{uuid.uuid4().hex[:8]}.",
        "events_partitions": 4,
    }


@asynccontextmanager
async def running_private_kafka(
    base: Settings, work_dir: Path, **overrides: Any
) -> AsyncIterator[PrivateKafka]:
    """A single broker of our own on free ports, its files under ``work_dir``;
    ``overrides`` go into the returned settings (which name the broker)."""
    values = _private_values(base, work_dir, broker_port())
    values.update(overrides)
    private = Settings(**values)
    broker = Broker(private)
    try:
        await broker.start()
        await broker.wait_healthy()
        yield PrivateKafka(private, broker)
    finally:
        await asyncio.to_thread(broker.down)
    assert broker.pid() is None


@dataclass
class PrivateCluster:
    """A private cluster: its settings (every broker in the bootstrap list, replication
    and min.insync.replicas as for the local stack) and its nodes, node 1 first."""

    settings: Settings
    brokers: list[Broker]

    def broker(self, node_id: int) -> Broker:
        return self.brokers[node_id - 1]

    def active_controller(self) -> int:
        """The node id of the controller quorum's leader, as the running nodes last
        recorded it (``quorum-state`` of the metadata log, highest epoch)."""
        states = [
            json.loads(path.read_text())
            for b in self.brokers
            if b.pid() is not None
            and (path := b.kafka.home / "data" / "__cluster_metadata-0" / "quorum-state").exists()
        ]
        leader: int = max(states, key=lambda state: state["leaderEpoch"])["leaderId"]
        assert leader > 0, f"no controller leader in {states}"
        return leader

    def down(self) -> None:
        """Every node at once, as `agentmem stack down` stops them."""
        nodes = [b.kafka for b in self.brokers]
        process.stop_together([(n.files, n.marker) for n in nodes], timeout_s=30.0)


@asynccontextmanager
async def running_private_cluster(
    base: Settings, work_dir: Path, brokers: int = 3, **overrides: Any
) -> AsyncIterator[PrivateCluster]:
    """``brokers`` Kafka nodes of our own on consecutive free ports (broker and
    controller listener each), started together, its files under ``work_dir``."""
    first = launcher.free_port_range(KAFKA_PORTS_PER_BROKER * brokers)
    values = {**_private_values(base, work_dir, first), "kafka_brokers": brokers}
    values.update(overrides)
    private = Settings(**values)
    cluster = PrivateCluster(private, [Broker(private, node) for node in kafka_nodes(private)])
    try:
        for broker in cluster.brokers:  # formatted one by one: they share a cluster id
            await broker.start()
        await asyncio.gather(*(b.wait_healthy(timeout_s=90.0) for b in cluster.brokers))
        yield cluster
    finally:
        await asyncio.to_thread(cluster.down)
    assert all(b.pid() is None for b in cluster.brokers)


async def in_sync_replicas(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> how many replicas are in sync, for every partition of
    ``topics``; a partition the broker did not describe is missing."""
    admin = clients.kafka_admin(settings)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {
        (d["topic"], p["partition"]): len(p["isr"])
        for d in described
        if not d.get("error_code")
        for p in d["partitions"]
    }
