"""`agentmem stack up --secure` on a private stack (free ports): the pipeline's core
through the API with a worker, both with the stack's credentials; clients without
them refused by Kafka and by Weaviate; every listener on loopback but the two Weaviate
cannot be told to bind there (README, "Secure stack"), each of which refuses."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import SecretStr

from streams.kafka_connection import tls_context
from streams.settings import Settings
from streams.stack import launcher, supervisor
from streams.stack.launcher import free_port, settings_env
from streams.stack.secure import secure_settings
from tests.integration.harness import WorkerProcess, start_api
from tests.integration.test_stack_lifecycle import private_settings

ADMIN = "secure-admin-" + "k" * 20
TENANT = "secure-tenant"


@dataclass
class SecureStack:
    settings: Settings
    api: str
    pids: dict[str, int]

    @property
    def weaviate_data_port(self) -> int:
        return self.settings.weaviate_cluster_base_port + 1


@pytest.fixture(scope="module")
def secure(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    work = tmp_path_factory.mktemp("secure")
    plain = private_settings(settings, work / "stack")
    stack = secure_settings(plain).model_copy(update={"api_keys": SecretStr(f"{ADMIN}=*")})
    try:
        assert set(supervisor.up(stack).values()) == {"started"}
        worker = WorkerProcess(stack, work / "worker.log")
        worker.start()
        try:
            with start_api(stack, work / "api.log") as api:
                pids = {r.name: r.pid for r in supervisor.status(stack) if r.pid is not None}
                assert worker.child is not None
                pids |= {"worker": worker.child.pid, "api": api.pid}
                yield SecureStack(stack, f"http://127.0.0.1:{stack.api_port}", pids)
        finally:
            worker.stop()
    finally:
        supervisor.down(stack)


def test_pipeline_core_on_the_secure_stack(secure: SecureStack) -> None:
    """Publish, index, search, history and erase, through the API and its SDK, with a
    worker: every Kafka and Weaviate client of theirs holds the stack's credentials."""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=secure.api, headers=headers, timeout=60) as client:
        for memory_id, content in [
            ("home", "Lives in Lisbon near the river"),
            ("pet", "Has a cat"),
        ]:
            r = client.post(
                "/v1/memories",
                params={"wait": "true"},
                json={"tenant": TENANT, "content": content, "memory_id": memory_id},
            )
            assert r.status_code == 201, r.text
        r = client.put(
            "/v1/memories/home",
            params={"wait": "true"},
            json={"tenant": TENANT, "content": "Moved to Porto, by the Douro"},
        )
        assert r.status_code == 201, r.text
        hits = client.post("/v1/search", json={"tenant": TENANT, "query": "Porto"}).json()
        assert hits["results"][0]["memory_id"] == "home"
        history = client.get("/v1/memories/home/history", params={"tenant": TENANT}).json()
        assert [c["version"] for c in history["changes"]] == [1, 2]
        assert history["changes"][1]["before"] == "Lives in Lisbon near the river"

        r = client.post("/v1/memories/home/erase", params={"tenant": TENANT, "wait": "true"})
        assert r.status_code == 201, r.text
        assert client.get("/v1/memories/home", params={"tenant": TENANT}).status_code == 404
        found = client.post("/v1/search", json={"tenant": TENANT, "query": "Porto Lisbon"})
        assert [h["memory_id"] for h in found.json()["results"]] == ["pet"]
        after = client.get("/v1/memories/home/history", params={"tenant": TENANT}).text
        assert "Porto" not in after and "Lisbon" not in after


async def _metadata(port: int, **security: object) -> object:
    conn = await create_conn("127.0.0.1", port, **security)
    try:
        return await conn.send(MetadataRequest([]))
    finally:
        conn.close()


async def test_kafka_refuses_clients_without_credentials(secure: SecureStack) -> None:
    s = secure.settings
    assert s.kafka_ssl_ca_file is not None
    port, trusted = s.kafka_port, tls_context(s.kafka_ssl_ca_file)
    scram = {"sasl_mechanism": s.kafka_sasl_mechanism, "sasl_plain_username": "agentmem"}
    # plaintext: the broker closes the connection at the first request
    with pytest.raises(KafkaConnectionError, match="closed"):
        await asyncio.wait_for(_metadata(port), 30)
    # TLS without SASL: no request but the handshake is served
    with pytest.raises(KafkaConnectionError, match="closed"):
        await asyncio.wait_for(_metadata(port, security_protocol="SSL", ssl_context=trusted), 30)
    # the right user with a wrong password
    with pytest.raises(SaslAuthenticationFailed):
        await asyncio.wait_for(
            _metadata(
                port,
                security_protocol="SASL_SSL",
                ssl_context=trusted,
                sasl_plain_password="not-the-password",  # noqa: S106 (a wrong one, on purpose)
                **scram,
            ),
            30,
        )
    # a client that does not trust the stack's CA does not talk to the broker at all
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.wait_for(
            _metadata(
                port,
                security_protocol="SASL_SSL",
                ssl_context=ssl.create_default_context(),
                sasl_plain_password=s.kafka_sasl_password.get_secret_value(),
                **scram,
            ),
            30,
        )
    # and the stack's credentials do get metadata (the refusals above are about them)
    answer = await asyncio.wait_for(
        _metadata(
            port,
            security_protocol="SASL_SSL",
            ssl_context=trusted,
            sasl_plain_password=s.kafka_sasl_password.get_secret_value(),
            **scram,
        ),
        30,
    )
    assert answer.brokers


def _grpc_search_without_key(port: int) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        search = channel.unary_unary("/weaviate.v1.Weaviate/Search")
        try:
            search(b"", timeout=30)
        except grpc.RpcError as exc:
            return exc
    raise AssertionError("Weaviate's gRPC answered a search without a key")


def test_weaviate_refuses_clients_without_the_key(secure: SecureStack) -> None:
    s = secure.settings
    key = s.weaviate_api_key.get_secret_value()
    rest = f"http://127.0.0.1:{s.weaviate_http_port}/v1/schema"
    assert httpx.get(rest, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer not-the-key"}
    assert httpx.get(rest, headers=wrong, timeout=30).status_code == 401
    assert httpx.get(rest, headers={"Authorization": f"Bearer {key}"}, timeout=30).is_success
    refused = _grpc_search_without_key(s.weaviate_grpc_port)
    assert "unauthorized" in str(refused.details()), refused
    data = f"http://127.0.0.1:{secure.weaviate_data_port}/nodes/"
    assert httpx.get(data, timeout=30).status_code == 401


LOOPBACK = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}


def _listeners(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on (`ss -ltnp`)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        found.append((address.strip("[]"), int(port)))
    return found


def _is_loopback(address: str) -> bool:
    if address in ("*", "0.0.0.0", "::"):  # noqa: S104 (what ss prints for every interface)
        return False
    ip = ipaddress.ip_address(re.sub(r"%.*$", "", address))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # Java's sockets: [::ffff:127.0.0.1]
    return ip in LOOPBACK


def test_every_listener_is_on_loopback_but_the_named_ones(secure: SecureStack) -> None:
    s = secure.settings
    # README, "Secure stack": the two listeners Weaviate cannot be told to bind to
    # loopback; both refuse a client without credentials (the test above)
    unbindable = {s.weaviate_grpc_port: "weaviate gRPC", secure.weaviate_data_port: "data"}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Secure stack", 1)[1].split("\n## ", 1)[0]
    assert "gRPC" in section and "data port" in section
    assert set(secure.pids) == {"kafka", "weaviate", "prometheus", "worker", "api"}
    exposed = {}
    for name, pid in secure.pids.items():
        listeners = _listeners(pid)
        assert listeners, f"{name} (pid {pid}) listens nowhere: is `ss -p` allowed here?"
        for address, port in listeners:
            if not _is_loopback(address):
                exposed[port] = (name, address)
    assert set(exposed) <= set(unbindable), exposed
    assert all(name == "weaviate" for name, _ in exposed.values()), exposed
    # and Prometheus, on loopback, cannot be stopped by any local HTTP client
    quit_ = httpx.post(f"{s.prometheus_url}/-/quit", timeout=30)
    assert quit_.status_code == 403 and "Lifecycle API is not enabled" in quit_.text


@pytest.mark.parametrize(
    "command", [["worker"], ["api"], ["publish", "--tenant", "t", "--content", "x"]], ids=str
)
def test_a_process_with_a_wrong_password_stops_at_once_and_says_why(
    secure: SecureStack, tmp_path: Path, command: list[str]
) -> None:
    """A refused login is permanent: the process ends, naming it, instead of retrying
    the broker as if it were down."""
    wrong = secure.settings.model_copy(
        update={
            "kafka_sasl_password": SecretStr("not-the-password"),
            "stack_dir": tmp_path / "state",
            "worker_metrics_port": free_port(),
            "api_port": free_port(),
        }
    )
    child = launcher.spawn(
        [sys.executable, "-m", "streams.cli", *command],
        tmp_path / f"{command[0]}.log",
        env=settings_env(wrong),
        what=f"the {command[0]} with a wrong password",
    )
    with child:
        code = child.proc.wait(timeout=120)
    assert code != 0
    log = child.tail(200)
    assert "refused SCRAM-SHA-512 user 'agentmem'" in log, log
    assert "not-the-password" not in log
