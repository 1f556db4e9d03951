"""A three-broker cluster under load loses one broker: nothing lost, nothing doubled.

The cluster is made of the nodes `agentmem stack up --kafka-brokers 3` runs (private
ports and files, tests/integration/private_kafka.py); the worker and the API run as
processes against it and the shared Weaviate. The worker creates its topics with three
replicas and min.insync.replicas 2. A producer publishes a seeded stream of adds,
updates, deletes, re-sent duplicates and invalid events at a steady rate, and a client
adds memories through the API; mid-load the broker that coordinates the worker's
consumer group is SIGKILLed, kept down, and started again.

Checked: every API request during the outage is answered 202; the worker and the API
are the processes they were and keep acknowledging; once drained, Weaviate, the history
and the acks equal the expected state exactly, every event applied exactly once (a
re-sent one acknowledged as a duplicate no-op); the restarted broker rejoins (every
partition of our topics has three in-sync replicas again). The figures (the outage as
the producer saw it, events/s before, during and after) are logged.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError

from streams import clients
from streams.client.topics import Topics, describe_existing, topic_specs
from streams.settings import Settings
from tests.integration.harness import (
    PipelineTopics,
    WorkerProcess,
    api_process,
    isolated_settings,
    wait_for,
)
from tests.integration.private_kafka import (
    PrivateCluster,
    in_sync_replicas,
    running_private_cluster,
)
from tests.integration.scenario import Expected, generate
from tests.integration.test_pipeline import applied_acks, assert_final_state, dead_letter_reasons

log = logging.getLogger(__name__)

KEY = "cluster-" + "k" * 24
API_TENANTS = [f"cluster-api-{i}" for i in range(4)]
RATE_PER_S = 100  # producer events per second, in chunks of 10
API_RATE_PER_S = 10
BEFORE_S = 10.0  # load before the kill
DOWN_S = 10.0  # the broker stays down this long
AFTER_S = 10.0  # load once the restarted broker is back in sync
MAX_EVENTS = 10_000  # the producer's scenario; it sends a prefix, as long as the load lasts
RESENT_EVERY = 25  # every 25th valid event is sent twice (a producer's retry)
SEED = 31
TENANTS = 20


@pytest.fixture
async def cluster(stack: Settings, tmp_path: Path) -> AsyncIterator[PrivateCluster]:
    async with running_private_cluster(stack, tmp_path, brokers=3) as private:
        yield private


@dataclass
class Timeline:
    """Wall-clock times (s) of the phases, so that Kafka record timestamps fall in them."""

    load_start: float = 0.0
    killed: float = 0.0
    restarted: float = 0.0  # the killed broker healthy again
    rejoined: float = 0.0  # every partition back to three in-sync replicas
    load_end: float = 0.0

    def phase(self, at: float) -> str:
        if at < self.killed:
            return "before"
        return "during" if at < self.restarted else "after"

    def seconds(self) -> dict[str, float]:
        return {
            "before": self.killed - self.load_start,
            "during": self.restarted - self.killed,
            "after": self.load_end - self.restarted,
        }


@dataclass
class Deliveries:
    """When each record was handed to the producer and when the brokers acknowledged it."""

    sent: list[tuple[float, float]] = field(default_factory=list)  # (sent, acked)
    failed: list[str] = field(default_factory=list)

    def record(self, sent_at: float, future: asyncio.Future[object]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.failed.append(repr(None if future.cancelled() else future.exception()))
        else:
            self.sent.append((sent_at, time.time()))

    def longest_wait(self) -> float:
        return max(acked - sent for sent, acked in self.sent)

    def longest_gap(self) -> float:
        """The longest time between two consecutive acknowledgements."""
        acked = sorted(a for _, a in self.sent)
        return max(b - a for a, b in itertools.pairwise(acked))


@dataclass
class Producer:
    """Publishes a prefix of a seeded scenario at a steady rate (open loop: a chunk every
    0.1 s whatever the brokers do) until stopped, through the project's producer
    (idempotent, acks=all). Adds and updates carry their vector, so the worker's time
    goes to Kafka and Weaviate rather than to the embedding model; every
    RESENT_EVERY-th valid event is sent twice in a row."""

    settings: Settings
    deliveries: Deliveries = field(default_factory=Deliveries)
    sent: int = 0  # events of the scenario sent (the prefix's length)
    resent: int = 0
    valid_ids: set[str] = field(default_factory=set)  # event ids of the valid events sent
    invalid: dict[bytes, str] = field(default_factory=dict)  # invalid ones -> reason

    async def run(self, stop: asyncio.Event) -> None:
        scenario = generate(MAX_EVENTS, tenants=TENANTS, seed=SEED)
        rng = random.Random(SEED)
        producer = clients.kafka_producer(self.settings)
        await producer.start()
        topic = self.settings.topic("memory.events")
        pending: list[asyncio.Future[object]] = []
        valid = 0
        next_at = time.monotonic()
        try:
            for key, value in scenario.events:
                if stop.is_set():
                    break
                copies = [value]
                if value in scenario.expected.invalid:
                    self.invalid[value] = scenario.expected.invalid[value]
                else:
                    valid += 1
                    self.valid_ids.add(json.loads(value)["event_id"])
                    copies = [with_vector(value, rng)] * (1 if valid % RESENT_EVERY else 2)
                for copy in copies:
                    sent_at = time.time()
                    future = await producer.send(topic, copy, key=key)
                    future.add_done_callback(functools.partial(self.deliveries.record, sent_at))
                    pending.append(future)
                self.sent += 1
                self.resent += len(copies) - 1
                if self.sent % (RATE_PER_S // 10) == 0:
                    next_at += 0.1
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            assert self.sent < MAX_EVENTS, "the scenario ran out before the load ended"
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout=120)
        finally:
            await producer.stop()

    def expected(self) -> Expected:
        """What the events sent must produce: the scenario of the prefix's length (the
        generator draws the same numbers event by event; only the timestamps differ,
        so the invalid events are the ones sent)."""
        exp = generate(self.sent, tenants=TENANTS, seed=SEED).expected
        assert exp.applied_event_ids == self.valid_ids
        assert len(exp.invalid) == len(self.invalid)
        exp.invalid = dict(self.invalid)
        return exp


def with_vector(value: bytes, rng: random.Random) -> bytes:
    doc = json.loads(value)
    if doc["type"] == "memory.delete":
        return value
    doc["vector"] = [round(rng.uniform(-1, 1), 6) for _ in range(384)]
    return json.dumps(doc).encode()


@dataclass
class ApiClient:
    """Adds memories through the API at a steady rate; one request per memory, no retry:
    every one must be accepted."""

    http: httpx.AsyncClient
    wanted: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> tenant, text
    # (started, answered, status, memory id, event id or error)
    answers: list[tuple[float, float, int, str, str]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def add(self, memory_id: str) -> None:
        tenant, content = self.wanted[memory_id]
        body = {"tenant": tenant, "content": content, "memory_id": memory_id}
        started = time.time()
        try:
            response = await self.http.post("/v1/memories", json=body)
        except httpx.HTTPError as exc:
            self.answers.append((started, time.time(), 0, memory_id, repr(exc)))
            return
        status = response.status_code
        detail = str(response.json()["event_id"]) if status == 202 else response.text
        self.answers.append((started, time.time(), status, memory_id, detail))

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        next_at = time.monotonic()
        while not stop.is_set():
            memory_id = f"api-{n}"
            tenant = API_TENANTS[n % len(API_TENANTS)]
            self.wanted[memory_id] = (tenant, f"{tenant} noted cluster fact number {n}")
            task = asyncio.create_task(self.add(memory_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            n += 1
            next_at += 1.0 / API_RATE_PER_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*self.tasks)


async def ack_times(settings: Settings) -> list[tuple[float, dict[str, object]]]:
    """Every record of memory.indexed with its timestamp (s), read to the end."""
    topic = Topics.from_settings(settings).indexed
    consumer = clients.kafka_consumer(
        settings, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.events_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[float, dict[str, object]]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            out += [
                (m.timestamp / 1000, json.loads(m.value))
                for msgs in batch.values()
                for m in msgs
                if m.value is not None
            ]
        return out
    finally:
        await consumer.stop()


async def wait_rejoined(settings: Settings, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        isr = await in_sync_replicas(settings, names)
        short = {tp: n for tp, n in isr.items() if n < 3}
        if isr and not short:
            return
        assert time.monotonic() < deadline, f"not back to 3 in-sync replicas: {short}"
        await asyncio.sleep(0.5)


async def group_coordinator(settings: Settings, timeout_s: float = 60) -> int:
    """The broker that coordinates the worker's consumer group (once there is one)."""
    admin = clients.kafka_admin(settings)
    await admin.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                return int(await admin.find_coordinator(settings.worker_id))
            except GroupCoordinatorNotAvailableError:
                assert time.monotonic() < deadline, "the worker's group has no coordinator"
                await asyncio.sleep(0.5)
    finally:
        await admin.close()


def rates(times: list[float], timeline: Timeline) -> dict[str, float]:
    counts = Counter(timeline.phase(t) for t in times if t <= timeline.load_end)
    return {p: round(counts[p] / s, 1) for p, s in timeline.seconds().items() if s > 0}


async def test_one_broker_killed_mid_load_loses_and_doubles_nothing(
    stack: Settings, cluster: PrivateCluster, tmp_path: Path
) -> None:
    settings = isolated_settings(
        stack,
        tmp_path / "state",
        kafka_bootstrap_servers=cluster.settings.kafka_bootstrap_servers,
        kafka_brokers=3,
        api_keys=f"{KEY}=*",
        events_partitions=4,
    )
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    await asyncio.to_thread(worker.start)
    timeline = Timeline()
    producer = Producer(settings)
    try:
        # The worker created our topics: three replicas, two of them needed for a write.
        names = [spec.name for spec in topic_specs(settings)]
        existing = await describe_existing(settings, names)
        assert {n: t.config.get("min.insync.replicas") for n, t in existing.items()} == (
            dict.fromkeys(names, "2")
        )
        await wait_rejoined(settings, names, timeout_s=30)
        # The worst broker to lose: the active controller (a new one is elected before
        # the dead broker is fenced); whether it also coordinates the worker's group is
        # reported.
        coordinator = await group_coordinator(settings)
        victim = cluster.broker(cluster.active_controller())
        worker_pid = worker.child.pid if worker.child else None

        with api_process(settings, tmp_path / "api.log") as url:
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
                api = ApiClient(http)
                stop = asyncio.Event()
                timeline.load_start = time.time()
                loads = [
                    asyncio.create_task(producer.run(stop)),
                    asyncio.create_task(api.run(stop)),
                ]
                await asyncio.sleep(BEFORE_S)

                await victim.kill(signal.SIGKILL)
                timeline.killed = time.time()
                await asyncio.sleep(DOWN_S)
                started = await victim.start()
                healthy = await victim.wait_healthy(timeout_s=90)
                timeline.restarted = time.time()
                await wait_rejoined(settings, names, timeout_s=90)
                timeline.rejoined = time.time()
                await asyncio.sleep(AFTER_S)

                stop.set()
                timeline.load_end = time.time()
                await asyncio.gather(*loads)

        # Every request of the API and the producer was accepted, through the outage too.
        statuses = Counter(status for _, _, status, _, _ in api.answers)
        assert statuses == {202: len(api.wanted)}, [a for a in api.answers if a[2] != 202][:5]
        deliveries = producer.deliveries
        assert deliveries.failed == []
        assert len(deliveries.sent) == producer.sent + producer.resent

        # Drain: every valid event applied, every invalid one dead-lettered.
        exp = producer.expected()
        for *_, memory_id, event_id in api.answers:
            tenant, content = api.wanted[memory_id]
            exp.live.setdefault(tenant, {})[memory_id] = (content, 1)
            exp.history_keys.add(f"{tenant}/{memory_id}/1")
            exp.applied_event_ids.add(event_id)
        topics = PipelineTopics.open(settings)
        try:
            await wait_for(
                topics.all,
                lambda: (
                    set(applied_acks(topics)) >= exp.applied_event_ids
                    and len(dead_letter_reasons(topics)) >= len(exp.invalid)
                ),
                120,
                "every event after the outage",
                worker,
            )
            drained = time.time()
            await topics.history.read_to_end()
            await asyncio.to_thread(assert_final_state, settings, topics, exp)
            acks = topics.indexed.json_values()
        finally:
            await topics.close()

        # Applied exactly once each; anything else acknowledged is a duplicate no-op,
        # and each re-sent event is one.
        outcomes = Counter(str(a["outcome"]) for a in acks)
        applied = Counter(str(a["event_id"]) for a in acks if a["outcome"] == "applied")
        assert set(applied.values()) == {1}
        valid_outcomes = {o for o in outcomes if not o.startswith("rejected:")}
        assert valid_outcomes <= {"applied", "noop:duplicate_event"}, outcomes
        assert outcomes["noop:duplicate_event"] >= producer.resent

        # The same worker and API throughout, alive and acknowledging during the outage.
        assert worker.running and worker_pid == (worker.child.pid if worker.child else None)
        status, problems = await asyncio.to_thread(worker.health, "/healthz")
        assert status == 200, problems
        acked = await ack_times(settings)
        worker_rates = rates([t for t, _ in acked], timeline)
        assert worker_rates["during"] > 0, worker_rates

        api_latency = [end - begin for begin, end, *_ in api.answers]
        during_api = [
            end - begin for begin, end, *_ in api.answers if timeline.phase(begin) == "during"
        ]
        report = {
            "killed_broker": victim.node_id,
            "killed_the_active_controller": True,
            "killed_the_group_coordinator": victim.node_id == coordinator,
            "phases_s": {k: round(v, 1) for k, v in timeline.seconds().items()},
            "restart_to_healthy_s": round(healthy - started, 1),
            "healthy_to_in_sync_s": round(timeline.rejoined - timeline.restarted, 1),
            "drained_after_load_s": round(drained - timeline.load_end, 1),
            "producer_outage_s": {
                "longest_send_to_ack": round(deliveries.longest_wait(), 2),
                "longest_gap_between_acks": round(deliveries.longest_gap(), 2),
            },
            "producer_acked_per_s": rates([a for _, a in deliveries.sent], timeline),
            "worker_acks_per_s": worker_rates,
            "api": {
                "requests": len(api.answers),
                "requests_during_outage": len(during_api),
                "slowest_s": round(max(api_latency), 2),
                "slowest_during_outage_s": round(max(during_api, default=0.0), 2),
            },
            "events": producer.sent,
            "resent": producer.resent,
            "ack_outcomes": dict(outcomes),
            "worker_producer_recreations": await asyncio.to_thread(
                worker.metric, "agentmem_producer_recreated_total"
            ),
        }
        log.warning("three-broker outage report: %s", json.dumps(report, indent=2))
    finally:
        await asyncio.to_thread(worker.stop)
