"""The clients the worker's agents share, owned by the worker's lifecycle. Not pure.

:class:`Resources` makes one Kafka producer and one Weaviate client (through
:mod:`streams.clients`) on an agent's first run, in the worker's event loop, and builds
the index and enrich stages on them. An agent that crashes or restarts on a rebalance
finds them alive; :class:`streams.service.worker.AgentMemWorker` closes them once the
whole app has stopped. Readiness probes of the dependencies run here too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai

from processors.adapters.embedding import Embedder
from processors.adapters.kafka_sink import KafkaRecordSink, ResilientProducer
from processors.adapters.weaviate.enrich import EnrichmentStore
from processors.adapters.weaviate.store import WeaviateStore
from processors.core.circuit import CircuitBreaker
from processors.core.health import Health
from processors.core.llm_prompts import PromptKind
from processors.core.validation import Limits
from processors.metrics import Metrics
from processors.ports import StateWrite
from processors.stages.enrich import EnrichConfig, EnrichStage
from processors.stages.enrich_processor import Processor
from processors.stages.index import IndexConfig, IndexStage
from processors.stages.object_writes import WritePolicy
from streams import clients
from streams.client.topics import Topics
from streams.service.deadletter_erasure import KafkaDeadLetterEraser
from streams.service.llm_cache import LocalCache
from streams.service.state import PartitionedState
from streams.service.state_rebuild import committed_offsets, replay_partition
from streams.settings import Settings

if TYPE_CHECKING:
    import weaviate

#: A bounded delivery wait turns a broker outage into retriable errors, which the
#: stages retry while readiness and metrics say so.
KAFKA_DELIVERY_TIMEOUT_S = 30.0


def limits_of(settings: Settings) -> Limits:
    """The event limits of the settings. Pure."""
    return Limits(
        max_content_bytes=settings.max_content_bytes,
        max_metadata_bytes=settings.max_metadata_bytes,
        vector_dim=settings.embedding_dim,
        max_event_bytes=settings.max_event_bytes,
    )


def circuit_breaker(settings: Settings) -> CircuitBreaker:
    """The LLM's circuit breaker as the settings configure it. Pure."""
    return CircuitBreaker(
        window=settings.llm_circuit_window,
        min_calls=settings.llm_circuit_min_calls,
        failure_ratio=settings.llm_circuit_failure_ratio,
        cooldown_s=settings.llm_circuit_cooldown_s,
    )


class Resources:
    """Clients that must live in the worker's event loop, made on an agent's first run
    and shared by the index and enrich agents (one producer, one Weaviate client, and
    the lock that orders their Weaviate writes)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        embedder: Embedder,
        state_dir: Path,
        health: Health,
    ):
        """``state_dir``: this worker process's own folder (its slot), for the local
        copy of ``memory_state`` and for ``llm_cache``."""
        self.settings, self.metrics, self.embedder = settings, metrics, embedder
        self.health = health
        self.topics = Topics.from_settings(settings)
        # The local copy is per changelog topic: a slot reused with other topics never
        # mistakes another deployment's state for its own.
        self.state = PartitionedState(
            state_dir / self.topics.state / "memory_state",
            self.topics.state,
            self._started_producer,
            lambda: clients.follower_consumer(settings, from_beginning=True),
            metrics,
            recover=self._recover_partition,
        )
        self.cache = LocalCache(state_dir / "llm_cache")
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

    async def _recover_partition(self, partition: int) -> tuple[list[StateWrite], int] | None:
        """States of a partition recomputed from memory.events, up to where the group
        applied it; None when it never did."""
        committed = (await committed_offsets(self.settings)).get(partition, -1)
        if committed <= 0:
            return None
        writes, _ = await replay_partition(
            self.settings, partition, committed, limits_of(self.settings)
        )
        return writes, committed - 1

    def _started_producer(self) -> ResilientProducer:
        if self._producer is None:
            raise RuntimeError("the worker's producer is not started yet")
        return self._producer

    async def producer(self) -> ResilientProducer:
        """The worker's one producer, started."""
        return (await self._clients())[0]

    async def _clients(self) -> tuple[ResilientProducer, weaviate.WeaviateAsyncClient]:
        async with self._init_lock:
            if self._producer is None:
                recreated = self.metrics.producer_recreated.labels("worker")
                producer = clients.resilient_producer(
                    self.settings,
                    delivery_timeout_s=KAFKA_DELIVERY_TIMEOUT_S,
                    on_recreate=lambda cause: recreated.inc(),
                )
                await producer.start()
                self._producer = producer
            if self._client is None:
                client = clients.weaviate_async(self.settings)
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
            self.state,
            self.embedder,
            WeaviateStore(client, s.weaviate_collection),
            KafkaRecordSink(producer),
            self.metrics,
            write_lock=self.write_lock,
            health=self.health,
            cache=self.cache,
            deadletters=KafkaDeadLetterEraser(s, self.producer),
        )
        return self._stage

    def _processors(self) -> dict[PromptKind, Processor]:
        """The enrichment's three processors on one LLM client and circuit breaker."""
        self._breaker = circuit_breaker(self.settings)
        self._llm, endpoint = clients.llm_endpoint(self.settings, self._breaker, self.metrics)
        return clients.llm_processors(self.settings, endpoint, self.cache, self.metrics)

    async def enrich_stage(self) -> EnrichStage[Any]:
        if self._enrich is not None:
            return self._enrich
        s = self.settings
        producer, client = await self._clients()
        self._enrich = EnrichStage(
            EnrichConfig(
                events_topic=self.topics.events,
                enriched_topic=self.topics.enriched,
                deadletter_topic=self.topics.deadletter,
                candidates=s.decision_candidates,
                max_distance=s.decision_max_distance,
            ),
            EnrichmentStore(client, s.weaviate_collection),
            self._processors(),
            KafkaRecordSink(producer),
            self.metrics,
            self.write_lock,
            health=self.health,
            cache=self.cache,
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
            # not `state`: reading it would move the circuit (and its gauge) on
            open_ = not self._breaker.closed
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
        self.state.close()
        self.cache.close()
