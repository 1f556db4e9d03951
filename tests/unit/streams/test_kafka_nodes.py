"""The local Kafka cluster's nodes: their generated configs, names and files, a cluster id
shared by every node, nodes of another broker count, and stopping nodes together.
Real (tiny) processes, no services."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streams.cli import build_parser
from streams.settings import Settings
from streams.stack import process, supervisor
from streams.stack.components import components
from streams.stack.kafka_node import (
    Kafka,
    broker_ports,
    kafka_cluster_id_file,
    kafka_leftovers,
    kafka_nodes,
)

SLEEPER = "import time; time.sleep(60)"


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_one_broker_is_the_node_it_always_was(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path)
    [node] = kafka_nodes(settings)
    assert (node.name, node.port, node.home) == ("kafka", 9092, tmp_path / "kafka")
    props = _props(node.server_properties())
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert "broker.session.timeout.ms" not in props
    assert [c.name for c in components(settings)] == ["kafka", "weaviate", "prometheus"]


def test_three_brokers_are_three_nodes_with_their_own_ports_and_files(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path, kafka_brokers=3)
    nodes = kafka_nodes(settings)
    assert [n.name for n in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert broker_ports(settings) == [n.port for n in nodes] == [9092, 9094, 9096]
    assert [c.name for c in components(settings)][3:] == ["weaviate", "prometheus"]
    props = [_props(n.server_properties()) for n in nodes]
    for node, p in zip(nodes, props, strict=True):
        assert p["node.id"] == str(node.node_id)
        assert p["process.roles"] == "broker,controller"
        assert p["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.port + 1}"
        )
        assert p["log.dirs"] == str(tmp_path / node.name / "data")
        # a quorum of three controllers, the same on every node
        assert p["controller.quorum.voters"] == (
            "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
        )
        # Kafka's own topics as durable as ours
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == p["transaction.state.log.min.isr"] == "2"
        assert p["auto.create.topics.enable"] == "false"
        # a dead broker is fenced (its leaderships moved) after 5 s, not Kafka's 9 s
        assert (p["broker.heartbeat.interval.ms"], p["broker.session.timeout.ms"]) == (
            "1000",
            "5000",
        )
    files = [(n.files.pid_file, n.files.log_file, n.config_path, n.marker) for n in nodes]
    assert len({f for group in files for f in group}) == 4 * len(nodes)


def test_a_node_outside_the_cluster_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node 4 of a 3-broker cluster"):
        Kafka(Settings(stack_dir=tmp_path, kafka_brokers=3), node_id=4)


def test_the_nodes_of_a_cluster_share_one_cluster_id(tmp_path: Path) -> None:
    nodes = kafka_nodes(Settings(stack_dir=tmp_path, kafka_brokers=3))
    ids = {node.cluster_id() for node in nodes}
    assert len(ids) == 1
    assert kafka_cluster_id_file(nodes[0].settings).read_text().strip() in ids
    # a single broker formats with an id of its own, as before
    single = Kafka(Settings(stack_dir=tmp_path))
    assert single.cluster_id() != single.cluster_id()


def test_kafka_brokers_is_an_option_of_stack_up_and_status() -> None:
    parser = build_parser()
    assert parser.parse_args(["stack", "up", "--kafka-brokers", "3"]).kafka_brokers == 3
    assert parser.parse_args(["stack", "status", "--kafka-brokers", "3"]).kafka_brokers == 3
    assert parser.parse_args(["stack", "up"]).kafka_brokers is None


def _fake_node(node: Kafka) -> int:
    """A tiny process that passes for the node: its command line holds the node's marker."""
    node.home.mkdir(parents=True, exist_ok=True)
    node.config_path.write_text(node.server_properties())
    return process.start([sys.executable, "-c", SLEEPER, node.marker], node.files)


def test_nodes_of_another_broker_count_are_found_refused_and_stopped(tmp_path: Path) -> None:
    one = Settings(stack_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:19092")
    three = Settings(stack_dir=tmp_path, kafka_brokers=3)
    pid = _fake_node(Kafka(one))
    try:
        assert kafka_leftovers(one) == []  # the layout asked for: not a leftover
        [leftover] = kafka_leftovers(three)
        assert (leftover.name, leftover.port, leftover.pid) == ("kafka", 19092, pid)
        with pytest.raises(supervisor.StackError, match=r"another broker count \(kafka \(pid"):
            supervisor.up(three)
        assert process.stop_together([(leftover.files, leftover.marker)], timeout_s=10) == [True]
        assert kafka_leftovers(three) == []
    finally:
        process.stop(Kafka(one).files, Kafka(one).marker, timeout_s=5)


def test_nodes_are_stopped_together(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path, kafka_brokers=3)
    nodes = kafka_nodes(settings)
    for node in nodes[:2]:
        _fake_node(node)
    targets = [(n.files, n.marker) for n in nodes]
    try:
        assert process.stop_together(targets, timeout_s=10) == [True, True, False]
        assert all(process.running_pid(f, m) is None for f, m in targets)
        assert not any(f.pid_file.exists() for f, _ in targets)
    finally:
        for files, marker in targets:
            process.stop(files, marker, timeout_s=5)
