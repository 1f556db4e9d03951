"""Helpers for pipeline tests: a real worker process, topic readers, Weaviate reads.

Processes (the worker, the API) start through the stack's launcher
(streams/stack/launcher.py), which also gives free ports and child environments."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import weaviate
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import clients
from streams.client.topics import Topics, partitions_of
from streams.settings import Settings
from streams.stack import launcher
from streams.stack.launcher import free_port, settings_env


def isolated_settings(base: Settings, work_dir: Path, **overrides: Any) -> Settings:
    """Settings of the shared stack with private topics, group, collection and state."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": base.kafka_bootstrap_servers,
        # the shared stack's credentials, if it is secure (`stack up --secure`)
        "kafka_security_protocol": base.kafka_security_protocol,
        "kafka_sasl_mechanism": base.kafka_sasl_mechanism,
        "kafka_sasl_username": base.kafka_sasl_username,
        "kafka_sasl_password": base.kafka_sasl_password,
        "kafka_ssl_ca_file": base.kafka_ssl_ca_file,
        "weaviate_api_key": base.weaviate_api_key,
        "weaviate_host": base.weaviate_host,
        "weaviate_http_port": base.weaviate_http_port,
        "weaviate_grpc_port": base.weaviate_grpc_port,
        "prometheus_port": base.prometheus_port,
        "cache_dir": base.cache_dir,
        "stack_dir": work_dir,
        "topic_prefix": f"test.{tag}.",
        "worker_id": f"test-worker-{tag}",
        "weaviate_collection": f"Test{tag}",
        "worker_metrics_port": free_port(),
        "api_port": free_port(),
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class WorkerProcess:
    """`agentmem worker` as a separate process, so that it can be SIGKILLed."""

    settings: Settings
    log_path: Path
    child: launcher.Child | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.worker_metrics_port}/metrics"

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    @property
    def exited(self) -> bool:
        """Started, and no longer running."""
        return self.child is not None and not self.child.running

    def start(self, timeout_s: float = 90) -> None:
        """Start the worker and wait until its metrics answer."""
        self.child = launcher.spawn(
            [sys.executable, "-m", "streams.cli", "worker"],
            self.log_path,
            env=settings_env(self.settings),
            what="the worker",
        )
        self.child.wait_http(self.metrics_url, timeout_s)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of a metric's samples (optionally filtered by labels) from /metrics."""
        text = httpx.get(self.metrics_url, timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if labels and not all(f'{k}="{v}"' in line for k, v in labels.items()):
                continue
            total += float(line.rsplit(" ", 1)[1])
        return total

    def health(self, path: str) -> tuple[int, dict[str, str]]:
        """Status and named problems of ``/healthz`` (liveness) or ``/readyz``."""
        url = f"http://127.0.0.1:{self.settings.worker_metrics_port}{path}"
        response = httpx.get(url, timeout=5)
        return response.status_code, dict(response.json()["problems"])

    def kill(self) -> None:
        assert self.child is not None
        self.child.kill()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(grace_s=60)

    def log_tail(self, lines: int = 60) -> str:
        return launcher.tail(self.log_path, lines)


def start_api(settings: Settings, log_path: Path, timeout_s: float = 60) -> launcher.Child:
    """`agentmem api` as a separate process, ready (``/readyz`` answers 200)."""
    child = launcher.spawn(
        [sys.executable, "-m", "streams.cli", "api"],
        log_path,
        env=settings_env(settings),
        what="the API",
    )
    try:
        child.wait_http(f"http://127.0.0.1:{settings.api_port}/readyz", timeout_s)
    except BaseException:
        child.stop()
        raise
    return child


@contextmanager
def api_process(settings: Settings, log_path: Path) -> Iterator[str]:
    """`agentmem api` as a separate process, ready (``/readyz``); yields its URL."""
    with start_api(settings, log_path) as api:
        yield f"http://127.0.0.1:{settings.api_port}"
        assert api.running, f"the API exited:\n{api.tail()}"


@dataclass
class TopicReader:
    """Reads a whole topic from the beginning and keeps up with it (no consumer group)."""

    settings: Settings
    topic: str
    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None

    async def _partitions(self) -> list[int]:
        deadline = time.monotonic() + 30
        while True:
            found = await partitions_of(self.settings, self.topic)
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.3)

    async def _ensure(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            partitions = await self._partitions()
            assert partitions, f"topic {self.topic} does not exist"
            consumer = clients.kafka_consumer(
                self.settings,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # agrees with the seek: no race to the end
            )
            await consumer.start()
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self._consumer = consumer
        return self._consumer

    async def poll(self) -> int:
        consumer = await self._ensure()
        batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
        added = [(m.key, m.value) for msgs in batch.values() for m in msgs]
        self.records += added
        return len(added)

    async def read_to_end(self) -> list[tuple[bytes | None, bytes | None]]:
        consumer = await self._ensure()
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while True:
            positions = {tp: await consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                break
            await self.poll()
        return self.records

    def json_values(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, v in self.records if v is not None]

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


async def wait_for(
    readers: list[TopicReader],
    done: Callable[[], bool],
    timeout_s: float,
    what: str,
    worker: WorkerProcess | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if worker is not None and worker.exited:
            raise RuntimeError(f"worker died while waiting for {what}:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            counts = {r.topic: len(r.records) for r in readers}
            raise TimeoutError(f"timed out waiting for {what}; records so far: {counts}")
        for reader in readers:
            await reader.poll()


@dataclass
class PipelineTopics:
    history: TopicReader
    deadletter: TopicReader
    indexed: TopicReader

    @classmethod
    def open(cls, settings: Settings) -> PipelineTopics:
        t = Topics.from_settings(settings)
        return cls(
            TopicReader(settings, t.history),
            TopicReader(settings, t.deadletter),
            TopicReader(settings, t.indexed),
        )

    @property
    def all(self) -> list[TopicReader]:
        return [self.history, self.deadletter, self.indexed]

    async def close(self) -> None:
        for reader in self.all:
            await reader.close()


@contextmanager
def weaviate_client(settings: Settings) -> Iterator[weaviate.WeaviateClient]:
    client = clients.weaviate_sync(settings)
    try:
        yield client
    finally:
        client.close()


def weaviate_objects(
    settings: Settings, tenants: list[str] | None = None
) -> dict[str, dict[str, tuple[str, int]]]:
    """tenant -> memory_id -> (content, version), read back from Weaviate."""
    with weaviate_client(settings) as client:
        coll = client.collections.use(settings.weaviate_collection)
        existing = set(coll.tenants.get())
        result: dict[str, dict[str, tuple[str, int]]] = {}
        for tenant in sorted(existing if tenants is None else set(tenants) & existing):
            objs: dict[str, tuple[str, int]] = {}
            for obj in coll.with_tenant(tenant).iterator(
                return_properties=["memory_id", "content", "version"]
            ):
                mid = str(obj.properties["memory_id"])
                assert mid not in objs, f"duplicate object for {tenant}/{mid}"
                objs[mid] = (str(obj.properties["content"]), int(obj.properties["version"]))
            result[tenant] = objs
        return result
