"""The local stack's generated configs and the docker-compose file, checked without services."""

from __future__ import annotations

import fnmatch
import glob
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams import scrape_targets
from streams.settings import PROJECT_ROOT, Settings
from streams.stack.components import Prometheus, Weaviate
from streams.stack.kafka_node import Kafka
from streams.stack.modelpack import PACK_FILES, verify


def _props(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_kafka_is_one_kraft_node_on_loopback(tmp_path: Path) -> None:
    props = _props(Kafka(Settings(stack_dir=tmp_path)).server_properties())
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["offsets.topic.replication.factor"] == "1"


def test_weaviate_env_uses_settings_ports(tmp_path: Path) -> None:
    env = Weaviate(Settings(stack_dir=tmp_path, weaviate_grpc_port=6000)).env()
    assert env["GRPC_PORT"] == "6000"
    assert env["DEFAULT_VECTORIZER_MODULE"] == "none"
    assert env["PERSISTENCE_DATA_PATH"] == str(tmp_path / "weaviate" / "data")
    # per-tenant-shard metrics made every scrape cost Weaviate a large share of a core
    assert env["PROMETHEUS_MONITORING_GROUP"] == "true"
    assert (
        _compose()["services"]["weaviate"]["environment"]["PROMETHEUS_MONITORING_GROUP"] == "true"
    )


def test_prometheus_local_config_points_at_loopback(tmp_path: Path) -> None:
    config = Prometheus(Settings(stack_dir=tmp_path, worker_metrics_port=9200)).local_config()
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"]
        for job in config["scrape_configs"]
        if "static_configs" in job
    }
    assert "agentmem-worker" not in targets  # workers register themselves, any number
    assert targets["prometheus"] == ["127.0.0.1:9090"]
    [workers] = [j for j in config["scrape_configs"] if j["job_name"] == "agentmem-worker"]
    assert "dns_sd_configs" not in workers
    assert workers["file_sd_configs"][0]["files"] == [
        str(tmp_path / "prometheus" / "targets" / "workers" / "*.json")
    ]
    assert all(Path(p).is_absolute() for p in config["rule_files"])


def test_prometheus_watches_the_folder_scrape_targets_are_written_to(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path)
    config = Prometheus(settings).local_config()
    patterns = {
        job["job_name"]: f
        for job in config["scrape_configs"]
        for sd in job.get("file_sd_configs", [])
        for f in sd["files"]
    }
    pattern = patterns["agentmem-file-sd"]
    path = scrape_targets.register(settings, "bench-1", ["127.0.0.1:9311"], {"job": "bench"})
    assert fnmatch.fnmatch(str(path), pattern)
    worker = scrape_targets.register(settings, "w", ["127.0.0.1:9"], {}, folder="workers")
    # Prometheus globs as Go's filepath.Glob does: '*' stays within one folder
    assert glob.glob(patterns["agentmem-worker"]) == [str(worker)]
    assert glob.glob(pattern) == [str(path)]  # each file scraped by one job only
    scrape_targets.unregister(settings, "w", folder="workers")
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:9311"], "labels": {"job": "bench"}}
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "bench-1.json",
        "workers",
    ]  # no temporary
    assert scrape_targets.unregister(settings, "bench-1")
    assert not path.exists()
    assert not scrape_targets.unregister(settings, "bench-1")
    with scrape_targets.registered(settings, "t", ["127.0.0.1:1"], {}) as held:
        assert held.exists()
    assert not held.exists()
    with pytest.raises(ValueError, match="target file names"):
        scrape_targets.register(settings, "../escape", ["127.0.0.1:1"], {})


def test_model_pack_verify_reports_missing_and_corrupt_files(tmp_path: Path) -> None:
    assert len(verify(tmp_path)) == len(PACK_FILES)
    (tmp_path / "vocab.txt").write_text("not the vocabulary")
    problems = verify(tmp_path)
    assert any(p.startswith("vocab.txt: sha256") for p in problems)


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"
        if "build" in service:
            assert (PROJECT_ROOT / service["build"] / "Dockerfile").is_file()


def test_compose_ports_match_settings_defaults() -> None:
    """Published by docker-compose.yml (the API) or by its ports overlay (the rest),
    at the local stack's defaults, so host tools need no other settings."""
    s = Settings()
    services = _compose()["services"]
    overlay = yaml.safe_load((PROJECT_ROOT / "docker-compose.ports.yml").read_text())

    def host_ports(service: str) -> set[int]:
        """The first host port of each mapping ([ip:]host[-last]:container)."""
        ports = [*services[service].get("ports", []),
                 *overlay["services"].get(service, {}).get("ports", [])]  # fmt: skip
        return {int(p.split(":")[-2].split("-")[0]) for p in ports}

    assert host_ports("kafka") == {s.kafka_port}
    assert host_ports("weaviate") == {s.weaviate_http_port, s.weaviate_grpc_port}
    assert host_ports("prometheus") == {s.prometheus_port}
    assert host_ports("worker") == {s.worker_metrics_port}
    assert host_ports("api") == {s.api_port}


def test_compose_dependencies_wait_for_health() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for dep, cond in service.get("depends_on", {}).items():
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}"


def test_committed_prometheus_scrapes_the_compose_services() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "dashboards/prometheus/prometheus.yml").read_text())
    hosts = {
        t.split(":")[0]
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for t in static["targets"]
    } | {name for job in config["scrape_configs"] for d in job.get("dns_sd_configs", [])
         for name in d["names"]}  # fmt: skip
    assert "worker" in hosts  # every replica of `--scale worker=N`, by DNS
    assert hosts - {"localhost"} <= set(_compose()["services"])


def test_compose_worker_healthcheck_is_liveness_not_metrics() -> None:
    """A worker waiting out an outage must not look dead, and a wedged one must not
    look alive because /metrics still answers."""
    (command,) = [
        part for part in _compose()["services"]["worker"]["healthcheck"]["test"] if "http" in part
    ]
    assert "/healthz" in command and "/metrics" not in command


def test_brokers_do_not_create_topics_on_first_use(tmp_path: Path) -> None:
    """A producer that runs before the first worker must fail, not create memory.events
    with one partition (the worker creates every topic as it must be)."""
    props = _props(Kafka(Settings(stack_dir=tmp_path)).server_properties())
    assert props["auto.create.topics.enable"] == "false"
    kafka_env = _compose()["services"]["kafka"]["environment"]
    assert str(kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
