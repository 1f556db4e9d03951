"""`agentmem worker`: the index agent. Wiring only; the work is processors.index_stage."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import openai
import weaviate
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, disable_created_metrics, start_http_server

from processors.circuit import CircuitBreaker
from processors.embedding import Embedder
from processors.enrich_processor import Processor, ProcessorConfig
from processors.enrich_stage import EnrichConfig, EnrichStage
from processors.index_stage import Incoming, IndexConfig, IndexStage
from processors.kafka_sink import KafkaRecordSink
from processors.llm_client import LlmEndpoint, openai_client
from processors.llm_prompts import PromptKind, load_prompt
from processors.metrics import Metrics, build_metrics
from processors.records import SourceRef
from processors.validation import Limits
from processors.weaviate_enrich import EnrichmentStore
from processors.weaviate_store import WeaviateStore
from streams.app import create_app, events_topic, raw_topic
from streams.lag import LagMonitor
from streams.publisher import durable_producer
from streams.settings import Settings
from streams.stack.modelpack import pack_dir
from streams.state_store import LocalCache, LocalStateStore
from streams.topics import Topics, ensure_topics

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
    ):
        self.settings, self.metrics, self.embedder, self.table = settings, metrics, embedder, table
        self.cache = cache
        self.topics = Topics.from_settings(settings)
        self.write_lock = asyncio.Lock()
        self._init_lock = asyncio.Lock()
        self._stage: IndexStage[Any] | None = None
        self._enrich: EnrichStage[Any] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._client: weaviate.WeaviateAsyncClient | None = None
        self._llm: openai.AsyncOpenAI | None = None
        self._closed = False

    async def _clients(self) -> tuple[AIOKafkaProducer, weaviate.WeaviateAsyncClient]:
        async with self._init_lock:
            if self._producer is None:
                producer = durable_producer(self.settings.kafka_bootstrap_servers)
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
            limits=Limits(s.max_content_bytes, s.max_metadata_bytes, s.embedding_dim),
            embed_batch=s.max_batch,
            enrich_topic=self.topics.enrich,
        )
        self._stage = IndexStage(
            config,
            self.table,
            self.embedder,
            WeaviateStore(client, s.weaviate_collection),
            KafkaRecordSink(producer),
            self.metrics,
            write_lock=self.write_lock,
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
        )
        return self._enrich

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._producer is not None:
            await self._producer.stop()
        if self._client is not None:
            await self._client.close()
        if self._llm is not None:
            await self._llm.close()
        self.table.close()
        self.cache.close()


def to_incoming(event: Any) -> Incoming[Any]:
    msg = event.message
    source = SourceRef(
        msg.topic, msg.partition, msg.offset, msg.timestamp and int(msg.timestamp * 1000)
    )
    return Incoming(msg.key, msg.value, source, event)


def build_worker_app(settings: Settings, registry: CollectorRegistry) -> faust.App:
    """The faust app with the index agent and the lag timer attached."""
    metrics = build_metrics(registry)
    embedder = Embedder(
        settings.embedding_model, pack_dir(settings.cache_dir), settings.embedding_threads
    )
    app = create_app(settings)
    table = LocalStateStore(settings.stack_dir / "worker" / "memory_state")
    cache = LocalCache(settings.stack_dir / "worker" / "llm_cache")
    resources = Resources(settings, metrics, embedder, table, cache)
    topics = Topics.from_settings(settings)
    lags = [
        LagMonitor(settings.kafka_bootstrap_servers, settings.worker_id, topic, metrics)
        for topic in (topics.events, topics.enrich)
    ]
    linger_s = settings.linger_ms / 1000

    # concurrency=1: faust-streaming #606 can commit past in-flight events otherwise;
    # scale with partitions and worker processes instead.
    @app.agent(events_topic(app, settings), concurrency=1)
    async def index(stream: Any) -> None:
        stage = await resources.stage()
        try:
            async for events in stream.take_events(settings.max_batch, within=linger_s):
                # process_safely never raises: faust's take_events acks the batch even
                # when the loop body raises, so nothing may escape before it is handled.
                await stage.process_safely([to_incoming(e) for e in events])
        finally:
            await resources.close()
            for lag in lags:
                await lag.close()

    # The enrichment branch: its own topic, so the LLM's latency never holds the index
    # agent; dispatch, the three processors and the merge run inside EnrichStage.
    @app.agent(raw_topic(app, topics.enrich, settings.events_partitions), concurrency=1)
    async def enrich(stream: Any) -> None:
        stage = await resources.enrich_stage()
        enrich_linger_s = settings.enrich_linger_ms / 1000
        async for events in stream.take_events(settings.enrich_max_batch, within=enrich_linger_s):
            await stage.process_safely([to_incoming(e) for e in events])

    @app.timer(5.0)  # type: ignore[untyped-decorator]  # faust's decorators are untyped
    async def measure_lag() -> None:
        for lag in lags:
            await lag.measure()

    return app


def run_worker(settings: Settings) -> int:
    (settings.stack_dir / "worker").mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(preflight(settings))
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    registry = CollectorRegistry()
    start_http_server(settings.worker_metrics_port, addr=settings.metrics_host, registry=registry)
    app = build_worker_app(settings, registry)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.worker_metrics_port)
    worker = faust.Worker(app, loop=loop, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    return 0
