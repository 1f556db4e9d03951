"""The pure parts of authenticated infrastructure: the Kafka connection config, its
settings, the secure stack's certificates, broker and Weaviate configs, env file, and
what may appear in metric labels."""

from __future__ import annotations

import shlex
import ssl
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr, ValidationError

from processors.adapters.llm_client import classify
from streams import clients
from streams.kafka_connection import tls_context
from streams.settings import Settings
from streams.stack.certs import cert_paths, ensure_certs
from streams.stack.components import Prometheus, Weaviate
from streams.stack.kafka_node import Kafka
from streams.stack.secure import (
    KAFKA_BROKER_USER,
    KAFKA_CLIENT_USER,
    check_stack_credentials,
    env_file,
    load_secrets,
    secure_settings,
)


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> dict[str, Any]:
    """A TLS handshake in memory between the two contexts; the server certificate the
    client verified. Raises what the client's verification raises."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    tls_client = client.wrap_bio(c_in, c_out, server_hostname=name)
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, tls in (("client", tls_client), ("server", tls_server)):
            if not done[side]:
                try:
                    tls.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            peer: dict[str, Any] = tls_client.getpeercert() or {}
            return peer
    raise AssertionError("the handshake did not finish")


@pytest.fixture
def secured(tmp_path: Path) -> Settings:
    return secure_settings(Settings(stack_dir=tmp_path / "stack", cache_dir=tmp_path / "cache"))


# -- the connection config ------------------------------------------------------------


def test_plaintext_connection_adds_no_security_options() -> None:
    connection = clients.kafka_connection(Settings(kafka_bootstrap_servers="h:1, h:3"))
    assert connection.aiokafka_options() == {
        "bootstrap_servers": "h:1, h:3",
        "security_protocol": "PLAINTEXT",
    }
    assert connection.faust_credentials() is None
    assert connection.faust_broker_url() == "kafka://h:1;h:3"


def test_secure_connection_gives_aiokafka_and_faust_the_same_security(secured: Settings) -> None:
    connection = clients.kafka_connection(secured)
    options = connection.aiokafka_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == KAFKA_CLIENT_USER
    assert options["sasl_plain_password"] == secured.kafka_sasl_password.get_secret_value()
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert connection.aiokafka_options()["ssl_context"] is context  # built once
    faust_auth = credentials_to_aiokafka_auth(connection.faust_credentials())
    assert faust_auth == {k: v for k, v in options.items() if k != "bootstrap_servers"}
    assert secured.kafka_sasl_password.get_secret_value() not in repr(connection)


def test_sasl_ssl_settings_name_what_they_lack(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(kafka_security_protocol="SASL_SSL")
    for variable in ("SASL_USERNAME", "SASL_PASSWORD", "SSL_CA_FILE"):
        assert f"AGENTMEM_KAFKA_{variable}" in str(info.value)
    with pytest.raises(ValidationError, match="is not a file"):
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="u",
            kafka_sasl_password=SecretStr("p"),
            kafka_ssl_ca_file=tmp_path / "missing.pem",
        )
    with pytest.raises(ValidationError):
        Settings(kafka_security_protocol="SSL")  # not one we speak


def test_secrets_stay_out_of_the_settings_repr(secured: Settings) -> None:
    shown = repr(secured) + str(secured)
    assert secured.kafka_sasl_password.get_secret_value() not in shown
    assert secured.weaviate_api_key.get_secret_value() not in shown


# -- certificates ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "::1"])
def test_clients_trust_the_broker_certificate_for_loopback_names(tmp_path: Path, name: str) -> None:
    certs = ensure_certs(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs.broker_keystore)
    peer = _handshake(server, tls_context(certs.ca_file), name)
    names = {value for _, value in peer.get("subjectAltName", ())}
    assert name.replace("::1", "0:0:0:0:0:0:0:1") in names or name in names, names


def test_clients_refuse_another_name_or_another_ca(tmp_path: Path) -> None:
    certs, other = ensure_certs(tmp_path / "a"), ensure_certs(tmp_path / "b")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs.broker_keystore)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(server, tls_context(certs.ca_file), "kafka.example.com")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, tls_context(other.ca_file), "127.0.0.1")


def test_certificates_are_made_once_and_owner_only(tmp_path: Path) -> None:
    first = ensure_certs(tmp_path)
    made = first.ca_file.read_bytes()
    assert ensure_certs(tmp_path).ca_file.read_bytes() == made
    for path in (first.ca_file, first.broker_keystore):
        assert path.stat().st_mode & 0o077 == 0
    assert b"PRIVATE KEY" not in first.ca_file.read_bytes()  # the CA's key is not kept
    assert first.broker_keystore.read_bytes().count(b"BEGIN CERTIFICATE") == 2


# -- the secure stack's configs -------------------------------------------------------


def test_a_secure_broker_takes_sasl_ssl_only_and_keeps_the_controller_on_loopback(
    secured: Settings,
) -> None:
    kafka = Kafka(secured)
    props = _props(kafka.server_properties())
    port = secured.kafka_port
    assert props["listeners"] == f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    certs = cert_paths(secured.stack_dir / "secure")
    assert props["ssl.keystore.location"] == str(certs.broker_keystore)
    secrets = load_secrets(secured)
    assert secrets is not None
    login = props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert f'username="{KAFKA_BROKER_USER}"' in login and secrets.broker_password in login
    assert props["log.dirs"].endswith("data-sasl")
    assert kafka._scram_users() == [
        f"--add-scram=SCRAM-SHA-512=[name={KAFKA_CLIENT_USER},password={secrets.kafka_password}]",
        f"--add-scram=SCRAM-SHA-512=[name={KAFKA_BROKER_USER},password={secrets.broker_password}]",
    ]


def test_a_plaintext_broker_is_as_before(tmp_path: Path) -> None:
    kafka = Kafka(Settings(stack_dir=tmp_path))
    props = _props(kafka.server_properties())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert not any(key.startswith(("sasl", "ssl", "listener.name")) for key in props)
    assert props["log.dirs"].endswith("/data") and kafka._scram_users() == []


def test_weaviate_binds_what_it_can_to_loopback_and_needs_the_key(secured: Settings) -> None:
    plain = Weaviate(Settings(stack_dir=secured.stack_dir)).env()
    secure = Weaviate(secured).env()
    for env in (plain, secure):
        assert env["CLUSTER_BIND_ADDR"] == "127.0.0.1"
        assert env["GO_PROFILING_DISABLE"] == "true"
        assert env["PROMETHEUS_MONITORING_ENABLED"] == "false"
        assert len(env["CLUSTER_BASIC_AUTH_PASSWORD"]) >= 32
    assert plain["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "true"
    assert "AUTHENTICATION_APIKEY_ENABLED" not in plain
    assert secure["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"
    assert secure["AUTHENTICATION_APIKEY_ENABLED"] == "true"
    assert secure["AUTHENTICATION_APIKEY_ALLOWED_KEYS"] == (
        secured.weaviate_api_key.get_secret_value()
    )
    # a new data-port password at each start
    assert (
        Weaviate(secured).env()["CLUSTER_BASIC_AUTH_PASSWORD"]
        != secure["CLUSTER_BASIC_AUTH_PASSWORD"]
    )


def test_weaviate_metrics_and_their_scrape_job_only_when_asked(tmp_path: Path) -> None:
    def jobs(settings: Settings) -> set[str]:
        return {job["job_name"] for job in Prometheus(settings).local_config()["scrape_configs"]}

    off, on = Settings(stack_dir=tmp_path), Settings(stack_dir=tmp_path, weaviate_metrics=True)
    assert "weaviate" not in jobs(off) and "weaviate" in jobs(on)
    assert Weaviate(on).env()["PROMETHEUS_MONITORING_ENABLED"] == "true"
    yaml.safe_dump(Prometheus(off).local_config())  # still a config


def test_the_env_file_gives_a_client_the_stack_settings(secured: Settings) -> None:
    path = env_file(secured)
    assert path.stat().st_mode & 0o077 == 0
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, raw = line.removeprefix("export ").partition("=")
            (values[name],) = shlex.split(raw)
    rebuilt = Settings(**{k.removeprefix("AGENTMEM_").lower(): v for k, v in values.items()})
    check_stack_credentials(rebuilt.model_copy(update={"stack_dir": secured.stack_dir}))
    for field in ("kafka_sasl_password", "kafka_ssl_ca_file", "weaviate_api_key"):
        assert getattr(rebuilt, field) == getattr(secured, field)


def test_secrets_are_kept_and_other_credentials_refused(secured: Settings) -> None:
    again = secure_settings(Settings(stack_dir=secured.stack_dir, cache_dir=secured.cache_dir))
    assert again.kafka_sasl_password == secured.kafka_sasl_password
    check_stack_credentials(again)
    wrong = again.model_copy(update={"kafka_sasl_password": SecretStr("guess")})
    with pytest.raises(ValueError, match="stack up --secure"):
        check_stack_credentials(wrong)


def test_the_secure_stack_is_one_broker(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one Kafka broker"):
        secure_settings(Settings(stack_dir=tmp_path, kafka_brokers=3))


# -- secrets out of labels ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://127.0.0.1:8700/v1", "127.0.0.1:8700"),
        ("https://user:sk-live-123@api.example.com/v1?key=sk-live-456", "api.example.com"),
        ("https://api.example.com:8443/key/sk-live-789/v1", "api.example.com:8443"),
        ("http://[::1]:notaport/v1", "::1"),
    ],
)
def test_the_llm_endpoint_label_holds_no_secret(url: str, label: str) -> None:
    assert clients.llm_endpoint_label(url) == label
    assert "sk-" not in clients.llm_endpoint_label(url)


def test_an_llm_error_that_echoes_the_key_keeps_it_out_of_logs_and_dead_letters() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    echo = "Incorrect API key provided: sk-proj-ab12***yz89. You can find your key online."
    refusal = openai.AuthenticationError(
        echo, response=httpx.Response(401, request=request), body=None
    )
    error = classify(refusal)
    assert error.outcome == "rejected" and not error.retriable
    assert "sk-" not in error.detail and "ab12" not in error.detail
    assert "Incorrect API key provided: [redacted]" in error.detail
