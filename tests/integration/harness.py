"""Helpers for pipeline tests: a real worker process, topic readers, Weaviate reads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
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

from loadgen.bench import free_port as free_port  # re-exported for the tests
from loadgen.bench import settings_env as settings_env
from streams.client.topics import Topics, partitions_of
from streams.settings import Settings


def isolated_settings(base: Settings, work_dir: Path, **overrides: Any) -> Settings:
    """Settings of the shared stack with private topics, group, collection and state."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": base.kafka_bootstrap_servers,
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
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=settings_env(self.settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 90) -> None:
        url = f"http://127.0.0.1:{self.settings.worker_metrics_port}/metrics"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready:\n{self.log_tail()}")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of a metric's samples (optionally filtered by labels) from /metrics."""
        text = httpx.get(
            f"http://127.0.0.1:{self.settings.worker_metrics_port}/metrics", timeout=5
        ).text
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
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def api_process(settings: Settings, log_path: Path) -> Iterator[str]:
    """`agentmem api` as a separate process, ready (``/readyz``); yields its URL."""
    out = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "api"],
        env=settings_env(settings),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{settings.api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        yield url
        assert proc.poll() is None, f"the API exited:\n{log_path.read_text()[-3000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        out.close()


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
            found = await partitions_of(self.settings.kafka_bootstrap_servers, self.topic)
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.3)

    async def _ensure(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            partitions = await self._partitions()
            assert partitions, f"topic {self.topic} does not exist"
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
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
        if worker is not None and worker.proc is not None and worker.proc.poll() is not None:
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
    client = weaviate.connect_to_local(
        host=settings.weaviate_host,
        port=settings.weaviate_http_port,
        grpc_port=settings.weaviate_grpc_port,
    )
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
