"""The one place that builds Kafka, Weaviate, embedding and LLM clients from :class:`Settings`.

Not pure: every function returns a client of a real service (unstarted unless it says
otherwise). The SDK, the HTTP API, the worker, requeue and the lag monitor get their
clients here, so a client's configuration is decided once; unit tests inject fakes
instead of calling these.

Kafka builders take the settings or their :class:`KafkaConnection` (servers, protocol,
SASL, TLS: ``streams/kafka_connection.py``), so no client can be made that skips the
security the settings ask for; Weaviate clients send the settings' API key.
``weaviate``, ``fastembed`` and ``openai`` are imported on first use: code that needs only Kafka
does not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from processors.adapters.kafka_sink import ResilientProducer, durable_producer
from streams.kafka_connection import KafkaConnection
from streams.settings import Settings

if TYPE_CHECKING:
    import openai
    import weaviate

    from processors.adapters.embedding import Embedder
    from processors.adapters.llm_client import LlmEndpoint
    from processors.core.circuit import CircuitBreaker
    from processors.core.llm_prompts import PromptKind
    from processors.metrics import Metrics
    from processors.ports import Cache, Completer
    from processors.stages.enrich_processor import Processor

#: The version of the offline embedding model pack's directory layout; equal to
#: ``streams.stack.modelpack.PACK_VERSION`` (a unit test holds them together).
MODEL_PACK_VERSION = "1"

#: What a Kafka client is built from: the settings, or the connection made of them.
KafkaTarget = Settings | KafkaConnection


def kafka_connection(target: KafkaTarget) -> KafkaConnection:
    """The connection of ``target``: built from the settings, or ``target`` itself."""
    return KafkaConnection.from_settings(target) if isinstance(target, Settings) else target


# -- Kafka ------------------------------------------------------------------------------


def kafka_producer(target: KafkaTarget, *, request_timeout_ms: int = 40_000) -> AIOKafkaProducer:
    """The project's one producer configuration: idempotent, acks=all (unstarted)."""
    options = kafka_connection(target).aiokafka_options()
    return durable_producer(request_timeout_ms=request_timeout_ms, **options)


def resilient_producer(
    target: KafkaTarget,
    *,
    delivery_timeout_s: float | None = None,
    stop_timeout_s: float = 10.0,
    request_timeout_ms: int = 40_000,
    on_recreate: Callable[[BaseException], None] | None = None,
) -> ResilientProducer:
    """A :class:`ResilientProducer` over :func:`kafka_producer` (unstarted)."""
    options = kafka_connection(target).aiokafka_options()
    return ResilientProducer(
        lambda: durable_producer(request_timeout_ms=request_timeout_ms, **options),
        delivery_timeout_s=delivery_timeout_s,
        stop_timeout_s=stop_timeout_s,
        on_recreate=on_recreate,
    )


def kafka_consumer(target: KafkaTarget, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer (unstarted); ``options`` are aiokafka's own."""
    return AIOKafkaConsumer(*topics, **kafka_connection(target).aiokafka_options(), **options)


def follower_consumer(target: KafkaTarget, *, from_beginning: bool) -> AIOKafkaConsumer:
    """A consumer without a group for a topic follower (unstarted; partitions assigned
    by the caller). Its reset policy agrees with the follower's seek, so the consumer's
    own initial position reset cannot race the seek and win."""
    return kafka_consumer(
        target,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )


def kafka_admin(target: KafkaTarget) -> AIOKafkaAdminClient:
    """An aiokafka admin client (unstarted)."""
    return AIOKafkaAdminClient(**kafka_connection(target).aiokafka_options())


# -- Weaviate ---------------------------------------------------------------------------


def weaviate_auth(settings: Settings) -> weaviate.auth.AuthCredentials | None:
    """The settings' API key as Weaviate credentials (None: anonymous)."""
    from weaviate.classes.init import Auth

    key = settings.weaviate_api_key.get_secret_value()
    return Auth.api_key(key) if key else None


def weaviate_async(settings: Settings) -> weaviate.WeaviateAsyncClient:
    """The async Weaviate client of the settings (not connected: ``await c.connect()``)."""
    import weaviate

    return weaviate.use_async_with_local(
        host=settings.weaviate_host,
        port=settings.weaviate_http_port,
        grpc_port=settings.weaviate_grpc_port,
        auth_credentials=weaviate_auth(settings),
    )


def weaviate_sync(settings: Settings) -> weaviate.WeaviateClient:
    """The synchronous Weaviate client of the settings, connected (close it)."""
    import weaviate

    return weaviate.connect_to_local(
        host=settings.weaviate_host,
        port=settings.weaviate_http_port,
        grpc_port=settings.weaviate_grpc_port,
        auth_credentials=weaviate_auth(settings),
    )


# -- Embedding --------------------------------------------------------------------------


def model_pack_dir(cache_dir: Path) -> Path:
    """Where ``agentmem stack build`` puts the offline embedding model pack."""
    return cache_dir / "models" / f"all-MiniLM-L6-v2-int8-v{MODEL_PACK_VERSION}"


def embedder(settings: Settings) -> Embedder:
    """The embedding model of the settings, loaded now (seconds: call it off the loop)."""
    from processors.adapters.embedding import Embedder

    return Embedder(
        settings.embedding_model,
        model_pack_dir(settings.cache_dir),
        settings.embedding_threads,
        settings.embedding_run_size,
    )


# -- LLM ------------------------------------------------------------------------------------


def llm_endpoint_label(base_url: str) -> str:
    """The LLM endpoint as a metric label: host and port only. A URL can carry a key
    (user info, a token in its path or query) and metric labels are public. Pure."""
    parts = urlsplit(base_url)
    host = parts.hostname or "unknown"
    try:
        port = parts.port
    except ValueError:  # not a number: the client will say so; the label stays clean
        port = None
    return f"{host}:{port}" if port else host


def llm_endpoint(
    settings: Settings, breaker: CircuitBreaker, metrics: Metrics
) -> tuple[openai.AsyncOpenAI, LlmEndpoint]:
    """The OpenAI-compatible client of the settings (close it when done) and the endpoint
    over it: breaker, outcomes in metrics, structured-output mode, answer token bound."""
    from processors.adapters.llm_client import LlmEndpoint, openai_client

    s = settings
    client = openai_client(s.llm_base_url, s.llm_api_key.get_secret_value(), s.llm_timeout_s)
    endpoint = LlmEndpoint(
        client,
        s.llm_model,
        breaker,
        metrics,
        llm_endpoint_label(s.llm_base_url),
        mode=s.llm_structured_output,
        max_tokens=s.llm_max_tokens,
    )
    return client, endpoint


def llm_processors(
    settings: Settings, completer: Completer, cache: Cache, metrics: Metrics
) -> dict[PromptKind, Processor]:
    """The enrichment's three processors (facts, importance, decision) on one endpoint."""
    from processors.core.llm_prompts import PromptKind, load_prompt
    from processors.stages.enrich_processor import Processor, ProcessorConfig

    s = settings
    config = ProcessorConfig(
        batch_size=s.llm_batch_size, concurrency=s.llm_concurrency, attempts=s.llm_attempts
    )
    return {
        kind: Processor(
            load_prompt(kind, s.llm_prompt_version), completer, cache, s.llm_model, config, metrics
        )
        for kind in PromptKind
    }
