"""`agentmem worker`: the index and enrich agents. Wiring only; the work is
processors.stages.index and processors.stages.enrich. Not pure.

Shared clients (one Kafka producer, one Weaviate client) belong to the worker's
lifecycle (:class:`streams.service.lifecycle.Resources`): made on an agent's first run,
closed only once the whole app has stopped (:class:`AgentMemWorker`). An agent that
crashes or restarts on a rebalance finds them alive. Liveness and readiness are served
beside /metrics (health_server)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable, Set
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry, disable_created_metrics

from processors.adapters.weaviate.store import WeaviateStore
from processors.core.health import Health
from processors.core.records import SourceRef
from processors.metrics import Metrics, build_metrics
from processors.ports import Incoming
from streams import clients, scrape_targets
from streams.client.topics import TopicsMisconfigured, check_topics, ensure_topics
from streams.kafka_connection import KafkaAuthenticationError, check_credentials
from streams.service.app import create_app, events_topic, raw_topic
from streams.service.compaction import CompactionRoller, roll_interval_s
from streams.service.event_batches import EventBatches
from streams.service.health_server import start_health_server
from streams.service.lag import LagMonitor
from streams.service.lifecycle import Resources
from streams.service.slots import Slot, claim_slot
from streams.settings import Settings

log = logging.getLogger(__name__)


async def preflight(settings: Settings) -> None:
    """Topics and the collection exist before the consumer subscribes, and the topics
    that existed already are as we need them (else :class:`TopicsMisconfigured`). Kafka
    refusing the credentials raises :class:`KafkaAuthenticationError`."""
    await check_credentials(clients.kafka_connection(settings))
    await check_topics(settings)
    await ensure_topics(settings)
    client = clients.weaviate_async(settings)
    await client.connect()
    try:
        await WeaviateStore(client, settings.weaviate_collection).ensure_collection()
    finally:
        await client.close()


def to_incoming(event: Any) -> Incoming[Any]:
    """A faust event as the stages take it: key, value, where it came from."""
    msg = event.message
    source = SourceRef(
        msg.topic, msg.partition, msg.offset, msg.timestamp and int(msg.timestamp * 1000)
    )
    return Incoming(msg.key, msg.value, source, event)


def build_resources(
    settings: Settings, metrics: Metrics, health: Health, state_dir: Path
) -> Resources:
    """The shared resources, with the state stores in ``state_dir`` and the embedding model."""
    return Resources(settings, metrics, clients.embedder(settings), state_dir, health)


def attach_rebalance(app: faust.App, settings: Settings, resources: Resources) -> None:
    """Follow the worker's share of memory.events: a partition that goes is restored
    again before its next use here (another worker may change it meanwhile), and each
    assignment is logged with who got it, so that a log shows each partition's owners."""
    events = resources.topics.events
    who = f"{socket.gethostname()}/{os.getpid()}"

    def ours(tps: Set[Any]) -> list[int]:
        return sorted(tp.partition for tp in tps if tp.topic == events)

    async def revoked(sender: Any, revoked: Set[Any], **kwargs: Any) -> None:
        resources.state.revoke(ours(revoked))
        resources.cache.release(ours(revoked))

    async def assigned(sender: Any, assigned: Set[Any], **kwargs: Any) -> None:
        partitions = ours(assigned)
        resources.state.assign(partitions)
        resources.cache.take(partitions)
        log.warning("assignment: worker %s owns %s partitions %s", who, events, partitions)

    # faust's signal types want a `signal` keyword our handlers take through **kwargs
    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]


def attach_agents(app: faust.App, settings: Settings, resources: Resources) -> None:
    """The index and enrich agents, on memory.events and memory.enrich."""
    metrics, health, topics = resources.metrics, resources.health, resources.topics

    def crashed(agent: str, exc: BaseException) -> None:
        log.error("agent %s crashed: %r", agent, exc)
        metrics.agent_crashes.labels(agent).inc()
        health.agent_crashed(agent, exc)

    # concurrency=1: faust-streaming #606 can commit past in-flight events otherwise;
    # scale with partitions and worker processes instead.
    @app.agent(events_topic(app, settings), concurrency=1)
    async def index(stream: Any) -> None:
        try:
            stage = await resources.stage()
            health.started = True
            if settings.fault_crash_agent == "index":
                raise RuntimeError("fault injected by AGENTMEM_FAULT_CRASH_AGENT=index")
            batches = EventBatches(stream, settings.max_batch, settings.linger_ms / 1000)
            async for events in batches:
                # process_safely never raises (every event ends applied, a no-op or
                # dead-lettered); the batch is acked only once it has been processed.
                await stage.process_safely([to_incoming(e) for e in events])
                await batches.ack(events)
        except Exception as exc:
            crashed("index", exc)
            raise

    # The enrichment branch: its own topic, so the LLM's latency never holds the index
    # agent; dispatch, the three processors and the merge run inside EnrichStage.
    @app.agent(raw_topic(app, topics.enrich, settings.events_partitions), concurrency=1)
    async def enrich(stream: Any) -> None:
        try:
            stage = await resources.enrich_stage()
            if settings.fault_crash_agent == "enrich":
                raise RuntimeError("fault injected by AGENTMEM_FAULT_CRASH_AGENT=enrich")
            enrich_linger_s = settings.enrich_linger_ms / 1000
            batches = stream.take_events(settings.enrich_max_batch, within=enrich_linger_s)
            async for events in batches:
                await stage.process_safely([to_incoming(e) for e in events])
        except Exception as exc:
            crashed("enrich", exc)
            raise


def attach_timers(app: faust.App, settings: Settings, resources: Resources) -> None:
    """Consumer lag every 5 s, the liveness heartbeat, the dependency probes, and the
    roll tombstones that hold the compaction bound (compaction.py)."""
    topics = resources.topics
    lags = [
        LagMonitor(settings, settings.worker_id, topic, resources.metrics)
        for topic in (topics.events, topics.enrich)
    ]
    resources.on_close(*(lag.close for lag in lags))

    @app.timer(5.0)  # type: ignore[untyped-decorator]  # faust's decorators are untyped
    async def measure_lag() -> None:
        for lag in lags:
            await lag.measure()

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        resources.health.beat()

    @app.timer(settings.readiness_probe_s)  # type: ignore[untyped-decorator]
    async def probe_dependencies() -> None:
        await resources.probe()

    roller = CompactionRoller(settings, resources.producer)

    @app.timer(roll_interval_s(settings))  # type: ignore[untyped-decorator]
    async def roll_compacted_topics() -> None:
        await roller.tick()


def build_worker_app(
    settings: Settings, registry: CollectorRegistry, health: Health, slot_dir: Path
) -> tuple[faust.App, Resources]:
    """The faust app with the index and enrich agents, the lag timer and the health
    probes attached, and the resources they share (closed by :class:`AgentMemWorker`);
    ``slot_dir`` is this process's own state folder."""
    resources = build_resources(settings, build_metrics(registry), health, slot_dir)
    app = create_app(settings, slot_dir / "faust")
    attach_agents(app, settings, resources)
    attach_timers(app, settings, resources)
    attach_rebalance(app, settings, resources)
    return app, resources


class AgentMemWorker(faust.Worker):  # faust is untyped
    """faust's worker that closes the shared clients once every agent has stopped."""

    def __init__(self, app: faust.App, resources: Resources, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._resources = resources

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self._resources.close()


def serve_health(
    settings: Settings, slot: Slot, registry: CollectorRegistry, health: Health, metrics: Metrics
) -> tuple[ThreadingHTTPServer, Callable[[], None]]:
    """/metrics, /healthz and /readyz on the configured port, or on a free one when
    another worker of this host holds it. Under a local stack (its Prometheus watches
    ``<stack_dir>/prometheus/targets/``) the worker registers its address there, named
    for its group, host and slot (a restart replaces the file); returns the server and
    what removes the registration."""
    host, port = settings.metrics_host, settings.worker_metrics_port
    try:
        server = start_health_server(host, port, registry, health, metrics)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        server = start_health_server(host, 0, registry, health, metrics)
        log.warning("port %d is taken; metrics on port %d", port, server.server_address[1])
    bound = server.server_address[1]
    log.info("metrics, /healthz and /readyz on http://%s:%d", host, bound)
    if not scrape_targets.targets_dir(settings).is_dir():
        return server, lambda: None
    name = f"{settings.worker_id}-{socket.gethostname()}-slot-{slot.index}"
    folder = scrape_targets.WORKERS
    scrape_targets.register(settings, name, [f"{host}:{bound}"], {}, folder=folder)

    def unregister() -> None:
        scrape_targets.unregister(settings, name, folder=folder)

    return server, unregister


def run_worker(settings: Settings) -> int:
    slot = claim_slot(settings.stack_dir / "worker")
    log.info("worker state folder %s", slot.path)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(preflight(settings))
    except TopicsMisconfigured as exc:
        log.error("the worker will not start; existing topics are wrong for it:\n%s", exc)
        return 2
    except KafkaAuthenticationError as exc:
        log.error("the worker will not start: %s", exc)
        return 2
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    registry = CollectorRegistry()
    health = Health(batch_stall_s=settings.liveness_batch_stall_s)
    app, resources = build_worker_app(settings, registry, health, slot.path)
    _, unregister = serve_health(settings, slot, registry, health, resources.metrics)

    async def unregister_target() -> None:
        unregister()

    resources.on_close(unregister_target)
    worker = AgentMemWorker(app, resources, loop=loop, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    return 0
