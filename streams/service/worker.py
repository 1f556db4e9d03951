"""`agentmem worker`: the index and enrich agents. Wiring only; the work is
processors.stages.index and processors.stages.enrich.

Shared clients (one Kafka producer, one Weaviate client) belong to the worker's
lifecycle: made on an agent's first run, closed only once the whole app has stopped
(:class:`AgentMemWorker`). An agent that crashes or restarts on a rebalance finds
them alive. Liveness and readiness are served beside /metrics (health_server)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import openai
import weaviate
from prometheus_client import CollectorRegistry, disable_created_metrics

from processors.adapters.embedding import Embedder
from processors.adapters.kafka_sink import KafkaRecordSink, ResilientProducer, durable_producer
from processors.adapters.llm_client import LlmEndpoint, openai_client
from processors.adapters.weaviate.enrich import EnrichmentStore
from processors.adapters.weaviate.store import WeaviateStore
from processors.core.circuit import CircuitBreaker, CircuitState
from processors.core.health import Health
from processors.core.llm_prompts import PromptKind, load_prompt
from processors.core.records import SourceRef
from processors.core.validation import Limits
from processors.metrics import Metrics, build_metrics
from processors.stages.enrich import EnrichConfig, EnrichStage
from processors.stages.enrich_processor import Processor, ProcessorConfig
from processors.stages.index import Incoming, IndexConfig, IndexStage
from processors.stages.object_writes import WritePolicy
from streams.client.topics import Topics, ensure_topics
from streams.service.app import create_app, events_topic, raw_topic
from streams.service.health_server import start_health_server
from streams.service.lag import LagMonitor
from streams.service.state import LocalCache, LocalStateStore
from streams.settings import Settings
from streams.stack.modelpack import pack_dir

log = logging.getLogger(__name__)


def weaviate_async_client(settings: Settings) -> weaviate.WeaviateAsyncClient:
    return weaviate.use_async_with_local(
        host=settings.weaviate_host,
        port=settings.weaviate_http_port,
        grpc_port=settings.weaviate_grpc_port,
    )


async def preflight(settings: Settings) -> None:
    """Topics and the collection exist before the consumer subscribes."""
    await ensure_topics(settings)
    client = weaviate_async_client(settings)
    await client.connect()
    try:
        await WeaviateStore(client, settings.weaviate_collection).ensure_collection()
    finally:
        await client.close()


KAFKA_DELIVERY_TIMEOUT_S = 30.0


class Resources:
    """Clients that must live in the worker's event loop, made on an agent's first run
    and shared by the index and enrich agents (one producer, one Weaviate client, and
    the lock that orders their Weaviate writes)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        embedder: Embedder,
        table: LocalStateStore,
        cache: LocalCache,
        health: Health,
    ):
        self.settings, self.metrics, self.embedder, self.table = settings, metrics, embedder, table
        self.cache, self.health = cache, health
        self.topics = Topics.from_settings(settings)
        self.write_lock = asyncio.Lock()
        self._init_lock = asyncio.Lock()
        self._stage: IndexStage[Any] | None = None
        self._enrich: EnrichStage[Any] | None = None
        self._producer: ResilientProducer | None = None
        self._client: weaviate.WeaviateAsyncClient | None = None
        self._llm: openai.AsyncOpenAI | None = None
        self._breaker: CircuitBreaker | None = None
        self._closers: tuple[Callable[[], Awaitable[None]], ...] = ()
        self._closed = False

    async def _clients(self) -> tuple[ResilientProducer, weaviate.WeaviateAsyncClient]:
        async with self._init_lock:
            if self._producer is None:
                bootstrap = self.settings.kafka_bootstrap_servers
                recreated = self.metrics.producer_recreated.labels("worker")
                # A bounded delivery wait turns a broker outage into retriable errors,
                # which the stages retry while readiness and metrics say so.
                producer = ResilientProducer(
                    lambda: durable_producer(bootstrap),
                    delivery_timeout_s=KAFKA_DELIVERY_TIMEOUT_S,
                    on_recreate=lambda cause: recreated.inc(),
                )
                await producer.start()
                self._producer = producer
            if self._client is None:
                client = weaviate_async_client(self.settings)
                await client.connect()
                self._client = client
            return self._producer, self._client

    async def stage(self) -> IndexStage[Any]:
        if self._stage is not None:
            return self._stage
        s = self.settings
        producer, client = await self._clients()
        config = IndexConfig(
            history_topic=self.topics.history,
            deadletter_topic=self.topics.deadletter,
            indexed_topic=self.topics.indexed,
            limits=limits_of(s),
            embed_batch=s.max_batch,
            enrich_topic=self.topics.enrich,
            writes=WritePolicy(transient_budget_s=s.weaviate_transient_budget_s),
        )
        self._stage = IndexStage(
            config,
            self.table,
            self.embedder,
            WeaviateStore(client, s.weaviate_collection),
            KafkaRecordSink(producer),
            self.metrics,
            write_lock=self.write_lock,
            health=self.health,
        )
        return self._stage

    async def enrich_stage(self) -> EnrichStage[Any]:
        if self._enrich is not None:
            return self._enrich
        s = self.settings
        producer, client = await self._clients()
        self._llm = openai_client(s.llm_base_url, s.llm_api_key.get_secret_value(), s.llm_timeout_s)
        breaker = CircuitBreaker(
            window=s.llm_circuit_window,
            min_calls=s.llm_circuit_min_calls,
            failure_ratio=s.llm_circuit_failure_ratio,
            cooldown_s=s.llm_circuit_cooldown_s,
        )
        self._breaker = breaker
        endpoint = LlmEndpoint(self._llm, s.llm_model, breaker, self.metrics, s.llm_base_url)
        config = ProcessorConfig(
            batch_size=s.llm_batch_size, concurrency=s.llm_concurrency, attempts=s.llm_attempts
        )
        processors = {
            kind: Processor(
                load_prompt(kind, s.llm_prompt_version),
                endpoint,
                self.cache,
                s.llm_model,
                config,
                self.metrics,
            )
            for kind in PromptKind
        }
        self._enrich = EnrichStage(
            EnrichConfig(
                events_topic=self.topics.events,
                enriched_topic=self.topics.enriched,
                deadletter_topic=self.topics.deadletter,
                candidates=s.decision_candidates,
                max_distance=s.decision_max_distance,
            ),
            EnrichmentStore(client, s.weaviate_collection),
            processors,
            KafkaRecordSink(producer),
            self.metrics,
            self.write_lock,
            health=self.health,
        )
        return self._enrich

    def on_close(self, *closers: Callable[[], Awaitable[None]]) -> None:
        self._closers += closers

    async def probe(self) -> None:
        """Readiness of the dependencies, whether or not a batch is using them now."""
        if self._client is not None:
            try:
                ok = await asyncio.wait_for(self._client.is_ready(), 3)
                self.health.set_dependency("weaviate", None if ok else "not ready")
            except Exception as exc:  # noqa: BLE001  # any failure means "not ready"
                self.health.set_dependency("weaviate", f"{type(exc).__name__}: {exc}")
        if self._breaker is not None:
            open_ = self._breaker.state == CircuitState.OPEN
            self.health.set_dependency("llm", "circuit open" if open_ else None)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for closer in self._closers:
            await closer()
        if self._producer is not None:
            await self._producer.stop()
        if self._client is not None:
            await self._client.close()
        if self._llm is not None:
            await self._llm.close()
        self.table.close()
        self.cache.close()


def limits_of(settings: Settings) -> Limits:
    return Limits(
        max_content_bytes=settings.max_content_bytes,
        max_metadata_bytes=settings.max_metadata_bytes,
        vector_dim=settings.embedding_dim,
        max_event_bytes=settings.max_event_bytes,
    )


def to_incoming(event: Any) -> Incoming[Any]:
    msg = event.message
    source = SourceRef(
        msg.topic, msg.partition, msg.offset, msg.timestamp and int(msg.timestamp * 1000)
    )
    return Incoming(msg.key, msg.value, source, event)


def build_worker_app(
    settings: Settings, registry: CollectorRegistry, health: Health
) -> tuple[faust.App, Resources]:
    """The faust app with the index and enrich agents, the lag timer and the health
    probes attached, and the resources they share (closed by :class:`AgentMemWorker`)."""
    metrics = build_metrics(registry)
    embedder = Embedder(
        settings.embedding_model, pack_dir(settings.cache_dir), settings.embedding_threads
    )
    app = create_app(settings)
    table = LocalStateStore(settings.stack_dir / "worker" / "memory_state")
    cache = LocalCache(settings.stack_dir / "worker" / "llm_cache")
    resources = Resources(settings, metrics, embedder, table, cache, health)
    topics = Topics.from_settings(settings)
    lags = [
        LagMonitor(settings.kafka_bootstrap_servers, settings.worker_id, topic, metrics)
        for topic in (topics.events, topics.enrich)
    ]
    resources.on_close(*(lag.close for lag in lags))
    linger_s = settings.linger_ms / 1000

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
            async for events in stream.take_events(settings.max_batch, within=linger_s):
                # process_safely never raises: faust's take_events acks the batch even
                # when the loop body raises, so nothing may escape before it is handled.
                await stage.process_safely([to_incoming(e) for e in events])
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

    @app.timer(5.0)  # type: ignore[untyped-decorator]  # faust's decorators are untyped
    async def measure_lag() -> None:
        for lag in lags:
            await lag.measure()

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        health.beat()

    @app.timer(settings.readiness_probe_s)  # type: ignore[untyped-decorator]
    async def probe_dependencies() -> None:
        await resources.probe()

    return app, resources


class AgentMemWorker(faust.Worker):  # faust is untyped
    """faust's worker that closes the shared clients once every agent has stopped."""

    def __init__(self, app: faust.App, resources: Resources, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._resources = resources

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self._resources.close()


def run_worker(settings: Settings) -> int:
    (settings.stack_dir / "worker").mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(preflight(settings))
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    registry = CollectorRegistry()
    health = Health(batch_stall_s=settings.liveness_batch_stall_s)
    app, resources = build_worker_app(settings, registry, health)
    start_health_server(
        settings.metrics_host, settings.worker_metrics_port, registry, health, resources.metrics
    )
    log.info(
        "metrics, /healthz and /readyz on http://%s:%d",
        settings.metrics_host,
        settings.worker_metrics_port,
    )
    worker = AgentMemWorker(app, resources, loop=loop, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    return 0
