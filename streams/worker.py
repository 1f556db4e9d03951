"""`agentmem worker`: the index agent. Wiring only; the work is processors.index_stage."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import weaviate
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, disable_created_metrics, start_http_server

from processors.embedding import Embedder
from processors.index_stage import Incoming, IndexConfig, IndexStage
from processors.kafka_sink import KafkaRecordSink
from processors.metrics import Metrics, build_metrics
from processors.records import SourceRef
from processors.validation import Limits
from processors.weaviate_store import WeaviateStore
from streams.app import create_app, events_topic
from streams.lag import LagMonitor
from streams.publisher import durable_producer
from streams.settings import Settings
from streams.stack.modelpack import pack_dir
from streams.state_store import LocalStateStore
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
    """Clients that must live in the worker's event loop, made on the agent's first run."""

    def __init__(
        self, settings: Settings, metrics: Metrics, embedder: Embedder, table: LocalStateStore
    ):
        self.settings, self.metrics, self.embedder, self.table = settings, metrics, embedder, table
        self._stage: IndexStage[Any] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._client: weaviate.WeaviateAsyncClient | None = None

    async def stage(self) -> IndexStage[Any]:
        if self._stage is not None:
            return self._stage
        s = self.settings
        self._producer = durable_producer(s.kafka_bootstrap_servers)
        await self._producer.start()
        self._client = weaviate_async_client(s)
        await self._client.connect()
        topics = Topics.from_settings(s)
        config = IndexConfig(
            history_topic=topics.history,
            deadletter_topic=topics.deadletter,
            indexed_topic=topics.indexed,
            limits=Limits(s.max_content_bytes, s.max_metadata_bytes, s.embedding_dim),
            embed_batch=s.max_batch,
        )
        self._stage = IndexStage(
            config,
            self.table,
            self.embedder,
            WeaviateStore(self._client, s.weaviate_collection),
            KafkaRecordSink(self._producer),
            self.metrics,
        )
        return self._stage

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        if self._client is not None:
            await self._client.close()
        self.table.close()


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
    resources = Resources(settings, metrics, embedder, table)
    lag = LagMonitor(
        settings.kafka_bootstrap_servers,
        settings.worker_id,
        Topics.from_settings(settings).events,
        metrics,
    )
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
            await lag.close()

    @app.timer(5.0)  # type: ignore[untyped-decorator]  # faust's decorators are untyped
    async def measure_lag() -> None:
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
