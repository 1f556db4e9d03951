"""How the Kafka cluster's size shapes the settings: bootstrap servers, replication and
min.insync.replicas of our topics. No services."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.client.topics import replica_configs
from streams.settings import Settings, expand_bootstrap


def test_one_broker_stays_the_default() -> None:
    s = Settings()
    assert s.kafka_brokers == 1
    assert s.kafka_servers == ["127.0.0.1:9092"]
    assert (s.replication_factor, s.min_insync_replicas) == (1, 1)
    assert replica_configs(s) == {}


def test_three_brokers_list_every_broker_two_ports_apart() -> None:
    s = Settings(kafka_brokers=3)
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert s.kafka_port == 9092
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)
    assert replica_configs(s) == {"min.insync.replicas": "2"}


def test_the_environment_sets_the_broker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMEM_KAFKA_BROKERS", "3")
    monkeypatch.setenv("AGENTMEM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    s = Settings()
    assert s.kafka_servers == ["127.0.0.1:19092", "127.0.0.1:19094", "127.0.0.1:19096"]
    assert s.replication_factor == 3


def test_a_child_process_builds_the_same_cluster_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Settings(kafka_brokers=3, kafka_bootstrap_servers="127.0.0.1:20000")
    for name, value in s.child_env({}).items():
        monkeypatch.setenv(name, value)
    rebuilt = Settings()
    assert rebuilt.kafka_bootstrap_servers == s.kafka_bootstrap_servers
    assert (rebuilt.kafka_brokers, rebuilt.replication_factor) == (3, 3)


def test_a_listed_cluster_is_kept_as_listed() -> None:
    servers = "a:9092,b:9092,c:9092"
    s = Settings(kafka_brokers=3, kafka_bootstrap_servers=servers)
    assert s.kafka_bootstrap_servers == servers
    # one broker configured (the default) with several listed: a remote cluster, kept
    assert Settings(kafka_bootstrap_servers=servers).replication_factor == 1


def test_an_explicit_replication_factor_wins() -> None:
    s = Settings(kafka_brokers=3, replication_factor=2)
    assert (s.replication_factor, s.min_insync_replicas) == (2, 1)
    assert replica_configs(s) == {}
    assert Settings(kafka_brokers=5).replication_factor == 3
    assert Settings(kafka_brokers=5, replication_factor=5).min_insync_replicas == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_brokers": 3, "kafka_bootstrap_servers": "a:1,b:1"}, "lists 2 servers"),
        ({"kafka_brokers": 3, "replication_factor": 4}, "exceeds the 3 brokers"),
        ({"kafka_brokers": 0}, "kafka_brokers"),
        ({"kafka_brokers": "many"}, "kafka_brokers"),
    ],
)
def test_inconsistent_cluster_settings_fail_fast(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)  # type: ignore[arg-type]


def test_expand_bootstrap_is_pure_and_leaves_odd_input_alone() -> None:
    assert expand_bootstrap("h:100", 2) == "h:100,h:102"
    assert expand_bootstrap("h:100", 1) == "h:100"
    assert expand_bootstrap("h:100,h:200", 3) == "h:100,h:200"
    assert expand_bootstrap("nohostport", 3) == "nohostport"
