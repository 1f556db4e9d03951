"""The processes of the local stack besides Kafka (kafka_node.py): Weaviate and
Prometheus, how each is configured, started and checked; and the list of them all."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml

from streams.scrape_targets import WORKERS, targets_dir
from streams.settings import Settings
from streams.stack.build import Artifacts, weaviate_bin_path
from streams.stack.component import Component
from streams.stack.kafka_node import kafka_nodes
from streams.stack.launcher import http_ok

log = logging.getLogger(__name__)


class Weaviate(Component):
    """Weaviate built from its Go module; vectors are supplied by us."""

    name = "weaviate"

    @property
    def port(self) -> int:
        return self.settings.weaviate_http_port

    @property
    def marker(self) -> str:
        return str(weaviate_bin_path(self.settings.cache_dir))

    def prepare(self, artifacts: Artifacts) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)

    def argv(self, artifacts: Artifacts) -> list[str]:
        return [
            str(artifacts.weaviate_bin),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--scheme",
            "http",
        ]

    def env(self) -> dict[str, str]:
        base = self.settings.weaviate_cluster_base_port
        return {
            "PERSISTENCE_DATA_PATH": str(self.home / "data"),
            "DEFAULT_VECTORIZER_MODULE": "none",
            "ENABLE_MODULES": "",
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
            "QUERY_DEFAULTS_LIMIT": "25",
            "GRPC_PORT": str(self.settings.weaviate_grpc_port),
            "CLUSTER_HOSTNAME": "node1",
            "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
            "CLUSTER_GOSSIP_BIND_PORT": str(base),
            "CLUSTER_DATA_BIND_PORT": str(base + 1),
            "RAFT_PORT": str(base + 2),
            "RAFT_INTERNAL_RPC_PORT": str(base + 3),
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "DISABLE_TELEMETRY": "true",
            "PROMETHEUS_MONITORING_ENABLED": "true",
            "PROMETHEUS_MONITORING_PORT": str(self.settings.weaviate_metrics_port),
            # One series per metric instead of one per collection and tenant shard: with
            # many tenants, rendering the per-shard page for each scrape kept about 40%
            # of a core busy while idle (Weaviate recommends it for multi-tenancy).
            "PROMETHEUS_MONITORING_GROUP": "true",
            "LOG_LEVEL": "info",
            "GOMEMLIMIT": "4GiB",
        }

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.weaviate_url}/v1/.well-known/ready")


class Prometheus(Component):
    """Our own Prometheus instance (Debian's binary), scraping the worker and the API."""

    name = "prometheus"

    @property
    def port(self) -> int:
        return self.settings.prometheus_port

    @property
    def config_path(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def marker(self) -> str:
        return str(self.config_path)

    @property
    def targets_dir(self) -> Path:
        """Where tests and benchmarks drop target files (streams/scrape_targets.py)."""
        return targets_dir(self.settings)

    def local_config(self) -> dict[str, Any]:
        """The committed config with targets pointed at this machine's ports.

        Static targets go to 127.0.0.1 and the configured ports; `file_sd_configs`
        patterns, relative to the config file, are resolved under this component's
        home, so `targets/*.json` watches `<stack_dir>/prometheus/targets/`.
        """
        # dashboards/prometheus, shipped in the package through the streams/stack/prometheus
        # link (so an installed agentmem finds it too)
        source_dir = Path(str(resources.files("streams.stack").joinpath("prometheus")))
        config: dict[str, Any] = yaml.safe_load((source_dir / "prometheus.yml").read_text())
        ports = {
            "prometheus": self.settings.prometheus_port,
            "agentmem-api": self.settings.api_port,
            "weaviate": self.settings.weaviate_metrics_port,
        }
        for job in config["scrape_configs"]:
            if "static_configs" in job:
                name = job["job_name"]
                if name not in ports:
                    raise ValueError(
                        f"scrape job {name!r} has no local port (Prometheus.local_config)"
                    )
                job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}"]}]
            if job.pop("dns_sd_configs", None) is not None:
                # compose's replicas by DNS; here, the files the workers write themselves
                pattern = str(self.targets_dir / WORKERS / "*.json")
                job["file_sd_configs"] = [{"files": [pattern], "refresh_interval": "5s"}]
                continue
            for sd in job.get("file_sd_configs", []):
                sd["files"] = [str(self.home / pattern) for pattern in sd["files"]]
        config["rule_files"] = [str(source_dir / pattern) for pattern in config["rule_files"]]
        return config

    def _write_config(self) -> None:
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.local_config(), sort_keys=False))

    def prepare(self, artifacts: Artifacts) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        self._write_config()

    def refresh(self) -> None:
        """Rewrite the config and reload it (and the rule files) into the running instance."""
        self._write_config()
        try:
            response = httpx.post(f"{self.settings.prometheus_url}/-/reload", timeout=30)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"could not reload Prometheus: {exc!r}") from exc
        if response.status_code != 200:
            raise RuntimeError(f"Prometheus refused its new config: {response.text.strip()}")
        log.info("reloaded Prometheus with %s", self.config_path)

    def argv(self, artifacts: Artifacts) -> list[str]:
        return [
            str(artifacts.prometheus_bin),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.prometheus_url}/-/ready")


def components(settings: Settings) -> list[Component]:
    return [*kafka_nodes(settings), Weaviate(settings), Prometheus(settings)]
