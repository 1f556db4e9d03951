"""Apache Kafka of the local stack, one KRaft node or several: how a node is
configured, formatted, started and checked, and what another layout left running.

A single node may be secure (the settings ask for SASL_SSL: `stack up --secure`): its
client listener then takes TLS (certs.py) and SCRAM users made at format time; its
controller listener stays plaintext on loopback (SCRAM cannot authenticate a KRaft
controller: its users live in the metadata the controller serves)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from streams.kafka_connection import KafkaConnection
from streams.settings import Settings
from streams.stack.build import Artifacts, kafka_libs_dir
from streams.stack.certs import cert_paths, write_private
from streams.stack.component import Component
from streams.stack.launcher import port_open
from streams.stack.process import ProcessFiles, running_pid
from streams.stack.secure import (
    KAFKA_BROKER_USER,
    KAFKA_CLIENT_USER,
    MECHANISM,
    load_secrets,
    secure_dir,
    stack_is_secure,
)

log = logging.getLogger(__name__)

KAFKA_CONTROLLER_PORT_OFFSET = 1  # controller listener = broker port + 1
# In a cluster: a broker heartbeats every second and is fenced after 5 s without one.
KAFKA_BROKER_HEARTBEAT_MS = 1000
KAFKA_BROKER_SESSION_MS = 5000


class Kafka(Component):
    """Apache Kafka in KRaft mode: one combined broker and controller, node ``node_id`` of
    a cluster of ``settings.kafka_brokers`` on loopback. A single node is named "kafka";
    node i of several is "kafka-i", with its own ports, data, config, pid file and log.
    Every node is a controller too, so three nodes make a controller quorum of three."""

    def __init__(self, settings: Settings, node_id: int = 1) -> None:
        if not 1 <= node_id <= settings.kafka_brokers:
            raise ValueError(f"node {node_id} of a {settings.kafka_brokers}-broker cluster")
        self.node_id = node_id
        self.name = kafka_node_name(node_id, settings.kafka_brokers)
        super().__init__(settings)

    @property
    def brokers(self) -> int:
        return self.settings.kafka_brokers

    @property
    def port(self) -> int:
        return broker_ports(self.settings)[self.node_id - 1]

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def marker(self) -> str:
        return str(self.config_path)

    @property
    def secure(self) -> bool:
        return stack_is_secure(self.settings)

    @property
    def data_dir(self) -> Path:
        """Plaintext and secure storage apart: SCRAM users exist only in storage
        formatted with them, and switching modes must not need a wipe."""
        return self.home / ("data-sasl" if self.secure else "data")

    def _listener_properties(self, broker: int, controller: int) -> dict[str, str]:
        if not self.secure:
            return {
                "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            }
        found = load_secrets(self.settings)
        if found is None:
            raise RuntimeError("the secure stack's secrets are missing: `stack up --secure`")
        certs = cert_paths(secure_dir(self.settings))
        login = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{KAFKA_BROKER_USER}" password="{found.broker_password}";'
        )
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{broker}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": login,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(certs.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(certs.ca_file),
            "ssl.client.auth": "none",
        }

    def _scram_users(self) -> list[str]:
        """``--add-scram`` arguments of a secure node's format: the client's user and the
        broker's own (its inter-broker login)."""
        found = load_secrets(self.settings)
        if not self.secure or found is None:
            return []
        users = [
            (KAFKA_CLIENT_USER, found.kafka_password),
            (KAFKA_BROKER_USER, found.broker_password),
        ]
        return [f"--add-scram={MECHANISM}=[name={n},password={p}]" for n, p in users]

    def server_properties(self) -> str:
        broker, controller = self.port, self.port + KAFKA_CONTROLLER_PORT_OFFSET
        voters = ",".join(
            f"{i}@127.0.0.1:{p + KAFKA_CONTROLLER_PORT_OFFSET}"
            for i, p in enumerate(broker_ports(self.settings), start=1)
        )
        # Kafka's own topics (consumer offsets, transactions, faust's internal topics)
        # are replicated like ours; with 3 replicas a write needs 2 of them in sync.
        replicas = min(self.settings.replication_factor, self.brokers)
        min_isr = min(self.settings.min_insync_replicas, replicas)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            **self._listener_properties(broker, controller),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created by the worker with their partitions and configs; a
            # producer that runs first must not create memory.events with one partition.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",
            "log.segment.bytes": str(256 * 1024 * 1024),
            "log.cleaner.min.compaction.lag.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
            "message.max.bytes": str(2 * 1024 * 1024),
        }
        if self.brokers > 1:
            # A broker that stops heartbeating is fenced, and its leaderships move, only
            # once its session expires: that is most of the outage a client sees when a
            # broker dies. Kafka's 9 s (heartbeats every 2 s) made producers wait 11-14 s
            # when the dead broker was also the active controller (a new one is elected
            # first), close to the API's 15 s send limit.
            props["broker.heartbeat.interval.ms"] = str(KAFKA_BROKER_HEARTBEAT_MS)
            props["broker.session.timeout.ms"] = str(KAFKA_BROKER_SESSION_MS)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _classpath(self) -> str:
        return str(kafka_libs_dir(self.settings.cache_dir) / "*")

    def _java(self) -> list[str]:
        log4j = Path(__file__).with_name("kafka-log4j.properties")
        heap = self.settings.kafka_heap
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}",
            f"-Dkafka.logs.dir={self.files.log_file.parent}",
            "-cp",
            self._classpath(),
        ]

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    def cluster_id(self) -> str:
        """The id this node's storage is formatted with: a new one for a single node;
        for several, one id shared by every node of the cluster, kept in
        ``<stack_dir>/kafka-cluster.id`` (written by the first node formatted)."""
        if self.brokers == 1:
            return new_cluster_id()
        path = kafka_cluster_id_file(self.settings)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id() + "\n")
        return path.read_text().strip()

    def prepare(self, artifacts: Artifacts) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.files.log_file.parent.mkdir(parents=True, exist_ok=True)
        # owner-only: a secure node's config holds its SCRAM password
        write_private(self.config_path, self.server_properties().encode())
        if self.formatted:
            return
        cluster_id = self.cluster_id()
        cmd = [
            *self._java(),
            "kafka.tools.StorageTool",
            "format",
            # One argument each: a url-safe base64 id may start with "-" (1 in 64),
            # which the tool's parser would read as an option.
            f"--cluster-id={cluster_id}",
            f"--config={self.config_path}",
            "--ignore-formatted",
            *self._scram_users(),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        if self.secure and not self._scram_users():
            raise RuntimeError("a secure node needs its SCRAM users: `stack up --secure`")
        log.info("formatted %s storage (cluster %s)", self.name, cluster_id)

    def argv(self, artifacts: Artifacts) -> list[str]:
        return [*self._java(), "kafka.Kafka", str(self.config_path)]

    def healthy(self) -> bool:
        """This node answers metadata requests and is a registered (unfenced) broker."""
        if not port_open(self.port):
            return False
        # A thread of its own, so the check also works when called from inside an event loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            node = dataclasses.replace(
                KafkaConnection.from_settings(self.settings),
                bootstrap_servers=f"127.0.0.1:{self.port}",
            )
            check = _kafka_node_registered(node, self.node_id)
            return pool.submit(asyncio.run, check).result()


def kafka_node_name(node_id: int, brokers: int) -> str:
    """ "kafka" for the single broker (as it always was), "kafka-<id>" in a cluster."""
    return "kafka" if brokers == 1 else f"kafka-{node_id}"


def broker_ports(settings: Settings) -> list[int]:
    """The port of each broker of the local cluster, node 1 first (its controller
    listener is the next port). Pure."""
    ports = [int(server.rsplit(":", 1)[1]) for server in settings.kafka_servers]
    return ports[: settings.kafka_brokers]


def kafka_nodes(settings: Settings) -> list[Kafka]:
    """Every node of the local Kafka cluster the settings describe."""
    return [Kafka(settings, node_id) for node_id in range(1, settings.kafka_brokers + 1)]


def kafka_cluster_id_file(settings: Settings) -> Path:
    return settings.stack_dir / "kafka-cluster.id"


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass(frozen=True)
class KafkaLeftover:
    """A Kafka node of this stack directory that another broker count started (say
    "kafka" while the settings ask for three brokers): `up` refuses to start beside
    it, `status` shows it, `down` stops it."""

    name: str
    files: ProcessFiles
    marker: str
    port: int  # from its config; 0 when unreadable
    pid: int


def kafka_leftovers(settings: Settings) -> list[KafkaLeftover]:
    """Kafka nodes of another layout that run from this stack directory (ours: pid file
    and config path in the command line)."""
    wanted = {node.name for node in kafka_nodes(settings)}
    found = []
    for pid_file in sorted((settings.stack_dir / "pids").glob("kafka*.pid")):
        name = pid_file.stem
        if name in wanted or not re.fullmatch(r"kafka(-[0-9]+)?", name):
            continue
        config = settings.stack_dir / name / "server.properties"
        files = ProcessFiles(pid_file, settings.stack_dir / "logs" / name / f"{name}.log")
        pid = running_pid(files, str(config))
        if pid is not None:
            found.append(KafkaLeftover(name, files, str(config), _port_of(config), pid))
    return found


def _port_of(config: Path) -> int:
    try:
        text = config.read_text()
    except OSError:
        return 0
    found = re.search(r"^listeners=[A-Z_]+://[^:]+:([0-9]+)", text, flags=re.MULTILINE)
    return int(found[1]) if found else 0


async def _kafka_node_registered(node: KafkaConnection, node_id: int) -> bool:
    """Through the clients' own connection config: a secure node is healthy only when
    a client with the settings' credentials gets in."""
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaError

    client = AIOKafkaClient(**node.aiokafka_options(), request_timeout_ms=3000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=5)
        return client.cluster.broker_metadata(node_id) is not None
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()
