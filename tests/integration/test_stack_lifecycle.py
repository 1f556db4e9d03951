"""A second, private stack on other ports: reuse, SIGKILL recovery and a clean `down`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from streams import clients
from streams.settings import Settings
from streams.stack import process, supervisor
from streams.stack.kafka_node import Kafka, new_cluster_id
from streams.stack.launcher import free_port_range, free_ports
from tests.integration.private_kafka import broker_port, kafka_artifacts

WEAVIATE_CLUSTER_PORTS = 4  # gossip, data, raft, raft rpc: base port and the next three


def private_settings(base: Settings, stack_dir: Path) -> Settings:
    """The shared stack's cache with a stack of our own on free ports: a port that
    another process holds must not fail the run."""
    while True:
        kafka, cluster = broker_port(), free_port_range(WEAVIATE_CLUSTER_PORTS)
        http, grpc, metrics, prometheus, worker, api = free_ports(6)
        ranges = [kafka, kafka + 1, *range(cluster, cluster + WEAVIATE_CLUSTER_PORTS)]
        every = [*ranges, http, grpc, metrics, prometheus, worker, api]
        if len(set(every)) == len(every):
            break
    return Settings(
        stack_dir=stack_dir,
        cache_dir=base.cache_dir,
        kafka_bootstrap_servers=f"127.0.0.1:{kafka}",
        weaviate_http_port=http,
        weaviate_grpc_port=grpc,
        weaviate_cluster_base_port=cluster,
        weaviate_metrics_port=metrics,
        prometheus_port=prometheus,
        worker_metrics_port=worker,
        api_port=api,
        kafka_heap="512m",
    )


async def _produce(settings: Settings, topic: str, value: bytes) -> None:
    """Create the topic (our brokers do not create topics on first use), then write."""
    admin = clients.kafka_admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = clients.kafka_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _consume_all(settings: Settings, topic: str) -> list[bytes]:
    consumer = clients.kafka_consumer(
        settings,
        topic,
        auto_offset_reset="earliest",
        group_id=f"test-{uuid.uuid4().hex}",
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
        return [m.value for msgs in batch.values() for m in msgs if m.value is not None]
    finally:
        await consumer.stop()


def _our_processes(stack_dir: Path) -> str:
    found = subprocess.run(
        ["pgrep", "-af", str(stack_dir)], capture_output=True, text=True, check=False
    )
    return found.stdout.strip()


async def test_private_stack_lifecycle(stack: Settings, tmp_path: Path) -> None:
    settings = private_settings(stack, tmp_path / "stack")
    try:
        first = supervisor.up(settings)
        assert first == {"kafka": "started", "weaviate": "started", "prometheus": "started"}
        second = supervisor.up(settings)
        assert second == {"kafka": "reused", "weaviate": "reused", "prometheus": "reused"}
        rows = supervisor.status(settings)
        assert {r.name: r.state for r in rows} == {
            "kafka": "healthy",
            "weaviate": "healthy",
            "prometheus": "healthy",
        }
        pids = {r.name: r.pid for r in rows}

        topic = f"test.recovery.{uuid.uuid4().hex}"
        await _produce(settings, topic, b"written before the crash")

        kafka = Kafka(settings)
        kafka_pid = pids["kafka"]
        assert kafka_pid is not None
        os.kill(kafka_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.running_pid(kafka.files, kafka.marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert process.running_pid(kafka.files, kafka.marker) is None

        third = supervisor.up(settings)
        assert third == {"kafka": "started", "weaviate": "reused", "prometheus": "reused"}
        assert await _consume_all(settings, topic) == [b"written before the crash"]
    finally:
        outcome = supervisor.down(settings)
    assert outcome == {
        "worker": "not running",
        "fake-llm": "not running",
        "llm": "not running",  # `stack up --llm`'s model server: not started here
        "prometheus": "stopped",
        "weaviate": "stopped",
        "kafka": "stopped",
    }
    assert _our_processes(settings.stack_dir) == ""
    assert {r.state for r in supervisor.status(settings)} == {"stopped"}


def _dash_cluster_id() -> str:
    """A valid cluster id (url-safe base64 of 16 bytes) that starts with "-"."""
    while True:
        candidate = new_cluster_id()
        if candidate.startswith("-"):
            return candidate


def test_kafka_storage_formats_with_a_cluster_id_that_starts_with_a_dash(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 in 64 new ids starts with "-"; the real StorageTool once read it as an option
    and `stack up` failed."""
    settings = private_settings(stack, tmp_path / "stack")
    node = Kafka(settings)
    cluster_id = _dash_cluster_id()
    monkeypatch.setattr(node, "cluster_id", lambda: cluster_id)
    node.prepare(kafka_artifacts(settings))
    meta = (node.home / "data" / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta
