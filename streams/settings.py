"""The one settings object of every AgentMem process.

Built once in an entrypoint (`Settings()` reads `AGENTMEM_*` variables) and passed
down; nothing deeper reads the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = Annotated[int, Field(ge=1, le=65535)]

# The embedding model the offline model pack provides (streams/stack/modelpack.py); equal to
# processors.adapters.embedding.MODEL_PACK_NAME, kept here so that settings do not import fastembed.
MODEL_PACK_NAME = "agentmem/all-MiniLM-L6-v2-int8"

# The folder above this package: the source checkout when the package runs from one
# (an editable install, or a script run in the clone), site-packages when installed.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def source_checkout(root: Path = PROJECT_ROOT) -> Path | None:
    """The source checkout this package runs from, or None for an installed package."""
    if (root / "pyproject.toml").is_file() and (root / "streams" / "settings.py").is_file():
        return root
    return None


SOURCE_CHECKOUT = source_checkout()


# The default replication factor is the broker count up to this (and from this many
# replicas on, min.insync.replicas is a majority of them).
MAX_DEFAULT_REPLICATION = 3

# Each local broker takes two ports: its own and its controller listener's.
KAFKA_PORTS_PER_BROKER = 2


def expand_bootstrap(servers: str, brokers: int) -> str:
    """``servers`` as given, or, when it names one server and there are several brokers,
    that server and the next ``brokers - 1`` on the same host, ``KAFKA_PORTS_PER_BROKER``
    ports apart. Pure."""
    listed = [s.strip() for s in servers.split(",") if s.strip()]
    if brokers <= 1 or len(listed) != 1 or ":" not in listed[0]:
        return servers
    host, port = listed[0].rsplit(":", 1)
    if not port.isdigit():
        return servers
    first = int(port)
    return ",".join(f"{host}:{first + KAFKA_PORTS_PER_BROKER * i}" for i in range(brokers))


def _xdg_dir(env: Mapping[str, str], variable: str, fallback: str) -> Path:
    """``$variable/agentmem``, or ``~/<fallback>/agentmem`` when it is unset or relative
    (the XDG base directory rules)."""
    base = env.get(variable, "")
    if not base or not Path(base).is_absolute():
        home = env.get("HOME") or str(Path.home())
        base = str(Path(home) / fallback)
    return Path(base) / "agentmem"


def default_stack_dir(env: Mapping[str, str], checkout: Path | None) -> Path:
    """Where the local stack keeps its state: ``.stack/`` of the checkout, else the user's
    state dir (``$XDG_STATE_HOME/agentmem``, ``~/.local/state/agentmem``)."""
    if checkout is not None:
        return checkout / ".stack"
    return _xdg_dir(env, "XDG_STATE_HOME", ".local/state")


def default_cache_dir(env: Mapping[str, str], checkout: Path | None) -> Path:
    """Where builds (Kafka jars, Weaviate, the model pack) are cached: ``.cache/`` of the
    checkout, else the user's cache dir (``$XDG_CACHE_HOME/agentmem``, ``~/.cache/agentmem``)."""
    if checkout is not None:
        return checkout / ".cache"
    return _xdg_dir(env, "XDG_CACHE_HOME", ".cache")


class Settings(BaseSettings):
    """Every knob of the service, frozen after validation."""

    model_config = SettingsConfigDict(env_prefix="AGENTMEM_", frozen=True, extra="ignore")

    # Kafka. With kafka_brokers > 1 and one bootstrap server, the servers are that one and
    # the next brokers two ports apart (port, port+2, ...: each broker's controller
    # listener is the port after its own, streams/stack/kafka_node.py), so the list names
    # every broker of the local stack's cluster.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_brokers: int = Field(default=1, ge=1, le=9)
    topic_prefix: str = "agentmem."
    events_partitions: int = Field(default=8, ge=1, le=1024)
    history_partitions: int = Field(default=8, ge=1, le=1024)
    # How long an erased memory's text may outlive the erase in the compacted topics
    # (memory.history, memory.state): their segments roll and are compacted within it
    # (segment.ms and max.compaction.lag.ms of topics we create; the worker appends a
    # tombstone to each partition every half of it so that a quiet one rolls too).
    compaction_bound_ms: int = Field(default=3_600_000, ge=1000)
    # Default: the brokers, at most 3 (min.insync.replicas follows, see the property).
    replication_factor: int = Field(default=1, ge=1)
    # How long the group waits for a silent worker (SIGKILL, a lost host) before its
    # partitions move: a takeover is processing within this plus the state restore.
    kafka_session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    # How every client reaches the brokers (streams/kafka_connection.py): PLAINTEXT, or
    # SASL/SCRAM over TLS with the broker's certificate checked against the CA file.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_file: Path | None = None

    # Weaviate
    weaviate_host: str = "127.0.0.1"
    weaviate_http_port: Port = 8080
    weaviate_grpc_port: Port = 50051
    weaviate_collection: str = "Memory"
    # Weaviate's internal ports (gossip, data, raft, raft rpc = base .. base+3) and metrics
    weaviate_cluster_base_port: Port = 7946
    weaviate_metrics_port: Port = 2112
    # local stack: open files for Weaviate (about 20 per active tenant; raised at start)
    weaviate_open_files: int = Field(default=262_144, ge=1024)
    # Weaviate's API key (sent by every client; the local stack requires it when set)
    weaviate_api_key: SecretStr = SecretStr("")
    # local stack: Weaviate's metrics server, which listens on every interface (it cannot
    # be told otherwise) and lists tenant names: off unless asked for
    weaviate_metrics: bool = False

    # Prometheus and metrics endpoints
    prometheus_port: Port = 9090
    worker_metrics_port: Port = 9108
    metrics_host: str = "127.0.0.1"
    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    # "key=tenant1,tenant2;otherkey=*" (see streams/http/auth.py)
    api_keys: SecretStr = SecretStr("")
    api_wait_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # A larger request body is refused with 413 before it is read.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Embedding
    embedding_model: str = MODEL_PACK_NAME
    embedding_dim: int = Field(default=384, ge=1)
    embedding_threads: int | None = Field(default=None, ge=1)
    # A batch is embedded in runs of this many texts of near length (the model pads
    # each call to its longest text): see processors/core/text_batches.py. On the
    # benchmark texts (32-144 characters) runs of 32 embedded 1.38x the texts per second
    # of one call per 256 (16: 1.41x, 64: 1.38x, 128: 1.2x).
    embedding_run_size: int = Field(default=32, ge=1, le=10_000)

    # Micro-batching of the index agent
    max_batch: int = Field(default=256, ge=1, le=10_000)
    # How long a batch waits to fill. Under backlog batches fill at once whatever
    # this is; at half load 10 ms gave p50 ~130 ms / p99 ~450 ms against
    # ~215 / ~800 ms at 50 ms (the wait is paid by every event).
    linger_ms: int = Field(default=10, ge=0, le=60_000)

    # Event limits
    max_content_bytes: int = Field(default=32 * 1024, ge=1)
    max_metadata_bytes: int = Field(default=8 * 1024, ge=2)
    max_event_bytes: int = Field(default=256 * 1024, ge=1024)

    # Failure handling: how long objects Weaviate refuses "for now" (a READONLY shard,
    # a tenant activating) are retried before their events are dead-lettered; how long
    # a batch may run outside of a dependency wait before liveness calls it wedged; how
    # often readiness probes Weaviate and the LLM's circuit.
    weaviate_transient_budget_s: float = Field(default=300.0, gt=0, le=86_400)
    liveness_batch_stall_s: float = Field(default=300.0, gt=0)
    readiness_probe_s: float = Field(default=5.0, gt=0, le=300)
    # Test-only fault injection, off by default: "index" or "enrich" makes that agent
    # raise as it starts (the liveness test uses it).
    fault_crash_agent: Literal["", "index", "enrich"] = ""

    # LLM (intelligent mode); any OpenAI-compatible endpoint
    llm_base_url: str = "http://127.0.0.1:8700/v1"
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_model: str = "agentmem-fake"
    llm_timeout_s: float = Field(default=30.0, gt=0, le=600)
    llm_attempts: int = Field(default=4, ge=1, le=20)
    # memories packed into one prompt, and requests in flight per processor
    llm_batch_size: int = Field(default=16, ge=1, le=512)
    llm_concurrency: int = Field(default=8, ge=1, le=256)
    llm_prompt_version: str = Field(default="v1", pattern=r"^v[0-9]+$")
    # circuit breaker: opens when failure_ratio of the last window calls (>= min_calls) failed
    llm_circuit_window: int = Field(default=20, ge=1)
    llm_circuit_min_calls: int = Field(default=10, ge=1)
    llm_circuit_failure_ratio: float = Field(default=0.8, gt=0, le=1)
    llm_circuit_cooldown_s: float = Field(default=10.0, gt=0)
    # how the answer's JSON schema is asked for: "auto" starts with json_schema and steps
    # down (json_object with the schema, then the schema in the prompt only) when the
    # endpoint refuses it; or one of them, fixed
    llm_structured_output: Literal["auto", "json_schema", "json_object", "none"] = "auto"
    # tokens one answer may take: a small model can loop until its context is full
    llm_max_tokens: int = Field(default=2048, ge=16, le=65_536)
    # the local model server of `agentmem stack up --llm` (streams/stack/llm_server.py)
    llm_local_size: Literal["0.5b", "1.5b"] = "0.5b"
    llm_local_port: Port = 8701
    llm_local_ctx: int = Field(default=8192, ge=512, le=32_768)
    llm_local_threads: int | None = Field(default=None, ge=1)
    # the enrich agent's micro-batches, and the older memories a decision is shown
    enrich_max_batch: int = Field(default=512, ge=1, le=10_000)
    enrich_linger_ms: int = Field(default=500, ge=0, le=60_000)
    decision_candidates: int = Field(default=5, ge=1, le=50)
    decision_max_distance: float = Field(default=0.7, gt=0, le=2)

    # Local state and build cache: the checkout's .stack/ and .cache/ when running from
    # one, else per-user dirs (default_stack_dir, default_cache_dir)
    stack_dir: Path = Field(default_factory=lambda: default_stack_dir(os.environ, SOURCE_CHECKOUT))
    cache_dir: Path = Field(default_factory=lambda: default_cache_dir(os.environ, SOURCE_CHECKOUT))
    kafka_heap: str = "1g"
    worker_id: str = "agentmem-worker"

    @model_validator(mode="before")
    @classmethod
    def _kafka_cluster_defaults(cls, data: object) -> object:
        """Fill in what follows from ``kafka_brokers`` unless it was given: every broker
        in the bootstrap list, and the replication factor (the brokers, at most 3)."""
        if not isinstance(data, dict):
            return data
        try:
            brokers = int(data.get("kafka_brokers", 1))
        except (TypeError, ValueError):
            return data  # the field's own validation reports it
        values = dict(data)
        servers = str(values.get("kafka_bootstrap_servers", "127.0.0.1:9092"))
        values["kafka_bootstrap_servers"] = expand_bootstrap(servers, brokers)
        values.setdefault("replication_factor", min(brokers, MAX_DEFAULT_REPLICATION))
        return values

    @model_validator(mode="after")
    def _kafka_cluster_consistent(self) -> Settings:
        listed = len(self.kafka_servers)
        if self.kafka_brokers > 1 and listed != self.kafka_brokers:
            raise ValueError(
                f"kafka_bootstrap_servers lists {listed} servers but kafka_brokers is "
                f"{self.kafka_brokers}: list one (the others follow) or all of them"
            )
        if self.kafka_brokers > 1 and self.replication_factor > self.kafka_brokers:
            raise ValueError(
                f"replication_factor {self.replication_factor} exceeds the "
                f"{self.kafka_brokers} brokers"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Settings:
        """SASL_SSL needs a user, a password and a readable CA file; fail now, not at
        the first connection."""
        if self.kafka_security_protocol != "SASL_SSL":
            return self
        missing = [
            f"AGENTMEM_{name.upper()}"
            for name, empty in (
                ("kafka_sasl_username", not self.kafka_sasl_username),
                ("kafka_sasl_password", not self.kafka_sasl_password.get_secret_value()),
                ("kafka_ssl_ca_file", self.kafka_ssl_ca_file is None),
            )
            if empty
        ]
        if missing:
            raise ValueError(f"kafka_security_protocol SASL_SSL needs {', '.join(missing)}")
        if self.kafka_ssl_ca_file is not None and not self.kafka_ssl_ca_file.is_file():
            raise ValueError(f"kafka_ssl_ca_file {self.kafka_ssl_ca_file} is not a file")
        return self

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_topic_safe(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{0,200}", value):
            raise ValueError("topic prefix may hold only letters, digits, '.', '_' and '-'")
        return value

    @field_validator("weaviate_collection")
    @classmethod
    def _collection_is_class_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z][A-Za-z0-9_]{0,200}", value):
            raise ValueError("collection names start with a capital letter (Weaviate class name)")
        return value

    @field_validator("kafka_heap")
    @classmethod
    def _heap_is_jvm_size(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[mMgG]", value):
            raise ValueError("kafka_heap is a JVM size such as 768m or 1g")
        return value

    @field_validator("stack_dir", "cache_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _circuit_window_holds_min_calls(self) -> Settings:
        if self.llm_circuit_min_calls > self.llm_circuit_window:
            raise ValueError("llm_circuit_min_calls must not exceed llm_circuit_window")
        return self

    @model_validator(mode="after")
    def _ports_distinct(self) -> Settings:
        ports = [
            self.weaviate_http_port,
            self.weaviate_grpc_port,
            self.prometheus_port,
            self.weaviate_metrics_port,
            self.worker_metrics_port,
            self.api_port,
            self.llm_local_port,
        ]
        if len(set(ports)) != len(ports):
            raise ValueError(f"ports must differ from one another, got {ports}")
        return self

    def child_env(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """The environment that makes a child process build exactly these settings:
        ``inherited`` without its ``AGENTMEM_`` variables, plus one per field."""
        env = {k: v for k, v in inherited.items() if not k.startswith("AGENTMEM_")}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[f"AGENTMEM_{name.upper()}"] = str(raw)
        return env

    def topic(self, name: str) -> str:
        """Full topic name for a short name such as ``memory.events``."""
        return f"{self.topic_prefix}{name}"

    @property
    def kafka_port(self) -> int:
        """Port of the first bootstrap server (the local stack's broker port)."""
        return int(self.kafka_servers[0].rsplit(":", 1)[1])

    @property
    def kafka_servers(self) -> list[str]:
        """The bootstrap servers, one ``host:port`` each."""
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @property
    def min_insync_replicas(self) -> int:
        """``min.insync.replicas`` of our topics: a majority of the replicas from 3
        replicas on (2 of 3: one broker may be down and every write is still on two),
        else 1 (with 2 replicas, requiring both would stop writes when either is down)."""
        rf = self.replication_factor
        return rf // 2 + 1 if rf >= MAX_DEFAULT_REPLICATION else 1

    @property
    def weaviate_url(self) -> str:
        return f"http://{self.weaviate_host}:{self.weaviate_http_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"
