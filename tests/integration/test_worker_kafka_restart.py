"""The whole write path through Kafka broker restarts: the API and the worker run as
processes against a private broker (on free ports) and the shared Weaviate; clients
add memories through the API at a steady rate while the broker is stopped (SIGTERM,
then separately SIGKILL), kept down a few seconds and started again.

A client does what the API tells it: a 202 is done; a 503 (Kafka unreachable, with
Retry-After) or a timeout is sent again later with the same memory id and content.
Checked: the API and the worker go on once the broker is back, neither process was
restarted, every memory is searchable in Weaviate exactly once with its content, and
every accepted event is acknowledged by the worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from streams.client.topics import Topics
from streams.settings import Settings
from tests.integration.harness import (
    TopicReader,
    WorkerProcess,
    api_process,
    isolated_settings,
    weaviate_objects,
)
from tests.integration.private_kafka import Broker, PrivateKafka, running_private_kafka

log = logging.getLogger(__name__)

KEY = "restart-" + "k" * 24
TENANTS = [f"restart-{i}" for i in range(6)]
RATE_PER_S = 30.0
STEADY_S = 5.0
DOWN_S = 5.0


@dataclass
class Client:
    """Adds memories through the API at a fixed rate (open loop); retries what was
    not accepted, as a well-behaved client would."""

    http: httpx.AsyncClient
    wanted: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> tenant, text
    accepted: dict[str, str] = field(default_factory=dict)  # memory id -> event id
    statuses: dict[str, int] = field(default_factory=dict)
    retry: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, what: str) -> None:
        self.statuses[what] = self.statuses.get(what, 0) + 1

    async def add(self, memory_id: str) -> None:
        tenant, content = self.wanted[memory_id]
        body = {"tenant": tenant, "content": content, "memory_id": memory_id}
        try:
            response = await self.http.post("/v1/memories", json=body)
        except httpx.HTTPError as exc:
            self.count(type(exc).__name__)
            await self.retry.put(memory_id)
            return
        self.count(str(response.status_code))
        if response.status_code == 202:
            self.accepted.setdefault(memory_id, response.json()["event_id"])
        elif response.status_code == 503:
            assert response.headers.get("retry-after"), response.headers
            await self.retry.put(memory_id)
        else:
            raise AssertionError(f"unexpected {response.status_code}: {response.text}")

    def spawn(self, memory_id: str) -> None:
        task = asyncio.create_task(self.add(memory_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stopped.is_set():
            memory_id = f"mem-{n}"
            tenant = TENANTS[n % len(TENANTS)]
            self.wanted[memory_id] = (tenant, f"{tenant} remembers restart fact number {n}")
            self.spawn(memory_id)
            while not self.retry.empty():
                self.spawn(self.retry.get_nowait())
            n += 1
            next_at += 1.0 / RATE_PER_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def finish(self, timeout_s: float) -> None:
        """Stop new memories; send the ones not accepted yet until they are."""
        self.stopped.set()
        deadline = time.monotonic() + timeout_s
        while self.tasks or not self.retry.empty():
            assert time.monotonic() < deadline, f"not accepted: {self.retry.qsize()}"
            while not self.retry.empty():
                self.spawn(self.retry.get_nowait())
            await asyncio.sleep(0.2)


@pytest.fixture
async def private_kafka(stack: Settings, tmp_path: Path) -> AsyncIterator[PrivateKafka]:
    async with running_private_kafka(stack, tmp_path) as private:
        yield private


async def restart_twice(broker: Broker, client: Client) -> list[dict[str, object]]:
    """Stop the broker with SIGTERM, then with SIGKILL, restarting it each time under
    the client's load; what each restart took and how much was accepted after it."""
    restarts: list[dict[str, object]] = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        down_at = await broker.kill(sig)
        await asyncio.sleep(DOWN_S)
        start_at = await broker.start()
        healthy_at = await broker.wait_healthy()
        before = len(client.accepted)
        await asyncio.sleep(STEADY_S)
        restarts.append(
            {
                "signal": sig.name,
                "down_s": round(start_at - down_at, 1),
                "healthy_after_start_s": round(healthy_at - start_at, 1),
                "accepted_in_next_5s": len(client.accepted) - before,
            }
        )
    return restarts


async def first_acks(
    settings: Settings, worker: WorkerProcess, wanted_events: set[str]
) -> dict[str, str]:
    """event id -> outcome of its first ack, once every wanted event has one."""
    indexed = TopicReader(settings, Topics.from_settings(settings).indexed)
    acked: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 180
        while not wanted_events <= set(acked):
            assert time.monotonic() < deadline, (
                f"{len(wanted_events - set(acked))} accepted events not acked\n{worker.log_tail()}"
            )
            assert worker.running, worker.log_tail()
            await indexed.poll()
            for ack in indexed.json_values():
                acked.setdefault(str(ack["event_id"]), str(ack["outcome"]))
    finally:
        await indexed.close()
    return acked


async def test_api_and_worker_go_on_through_broker_restarts(
    stack: Settings, private_kafka: PrivateKafka, tmp_path: Path
) -> None:
    broker = private_kafka.broker
    settings = isolated_settings(
        stack,
        tmp_path / "state",
        kafka_bootstrap_servers=private_kafka.settings.kafka_bootstrap_servers,
        api_keys=f"{KEY}=*",
        events_partitions=4,
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    await asyncio.to_thread(worker.start)
    restarts: list[dict[str, object]] = []
    try:
        with api_process(settings, tmp_path / "api.log") as url:
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
                client = Client(http)
                load = asyncio.create_task(client.run())
                await asyncio.sleep(STEADY_S)
                restarts += await restart_twice(broker, client)
                client.stopped.set()
                await load
                await client.finish(timeout_s=120)
            assert set(client.accepted) == set(client.wanted)

        # Every accepted event acknowledged by the worker, which produced again after
        # the restarts (the last events were accepted after both).
        wanted_events = set(client.accepted.values())
        acked = await first_acks(settings, worker, wanted_events)
        assert {acked[e] for e in wanted_events} <= {"applied", "noop:unchanged"}

        # Weaviate holds each memory once (weaviate_objects asserts one object per
        # memory id), with its content, at version 1: nothing lost, nothing doubled.
        objects = await asyncio.to_thread(weaviate_objects, settings, TENANTS)
        found = {
            mid: (tenant, content)
            for tenant, objs in objects.items()
            for mid, (content, _) in objs.items()
        }
        assert found == client.wanted
        versions = {v for objs in objects.values() for _, v in objs.values()}
        assert versions == {1}

        status, problems = await asyncio.to_thread(worker.health, "/healthz")
        assert status == 200, problems
        recreated = await asyncio.to_thread(worker.metric, "agentmem_producer_recreated_total")
        report = {
            "memories": len(client.wanted),
            "responses": client.statuses,
            "restarts": restarts,
            "worker_producer_recreations": recreated,
        }
        log.warning("worker/API kafka restart report: %s", json.dumps(report, indent=2))
    finally:
        await asyncio.to_thread(worker.stop)
