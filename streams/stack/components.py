"""The processes of the local stack besides Kafka (kafka_node.py): Weaviate and
Prometheus, how each is configured, started and checked; and the list of them all."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from datetime import datetime
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
from streams.stack.limits import raise_open_files
from streams.stack.process import running_pid
from streams.stack.secure import WEAVIATE_USER

log = logging.getLogger(__name__)


class Weaviate(Component):
    """Weaviate built from its Go module; vectors are supplied by us.

    Every listener that can be told binds to loopback (HTTP, gossip, raft); the gRPC
    server and the cluster data port cannot (they listen on every interface), so gRPC
    refuses clients without the API key when one is set and the data port takes a
    password; the metrics server (every interface too, tenant names in its series) runs
    only when ``weaviate_metrics`` asks for it; the Go profiling listener (a fixed port,
    every interface) is off."""

    name = "weaviate"

    @property
    def port(self) -> int:
        return self.settings.weaviate_http_port

    @property
    def marker(self) -> str:
        return str(weaviate_bin_path(self.settings.cache_dir))

    def prepare(self, artifacts: Artifacts) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        # inherited by the server: about 20 open files per active tenant
        limit = raise_open_files(self.settings.weaviate_open_files)
        log.info("Weaviate may open %d files (about %d active tenants)", limit, limit // 20)

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
            **self._auth_env(),
            "QUERY_DEFAULTS_LIMIT": "25",
            "GRPC_PORT": str(self.settings.weaviate_grpc_port),
            "CLUSTER_HOSTNAME": "node1",
            "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
            "CLUSTER_BIND_ADDR": "127.0.0.1",
            # The data port (the nodes' internal API: objects, backups) listens on every
            # interface whatever the bind address: a password only this process knows,
            # new at each start (a single node is its only client).
            "CLUSTER_BASIC_AUTH_USERNAME": "agentmem-cluster",
            "CLUSTER_BASIC_AUTH_PASSWORD": secrets.token_hex(24),
            "CLUSTER_GOSSIP_BIND_PORT": str(base),
            "CLUSTER_DATA_BIND_PORT": str(base + 1),
            "RAFT_PORT": str(base + 2),
            "RAFT_INTERNAL_RPC_PORT": str(base + 3),
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "DISABLE_TELEMETRY": "true",
            "PROMETHEUS_MONITORING_ENABLED": str(self.settings.weaviate_metrics).lower(),
            "PROMETHEUS_MONITORING_PORT": str(self.settings.weaviate_metrics_port),
            # One series per metric instead of one per collection and tenant shard: with
            # many tenants, rendering the per-shard page for each scrape kept about 40%
            # of a core busy while idle (Weaviate recommends it for multi-tenancy).
            "PROMETHEUS_MONITORING_GROUP": "true",
            "GO_PROFILING_DISABLE": "true",
            "LOG_LEVEL": "info",
            "GOMEMLIMIT": "4GiB",
        }

    def _auth_env(self) -> dict[str, str]:
        """Anonymous access, or only the settings' API key when one is set."""
        key = self.settings.weaviate_api_key.get_secret_value()
        if not key:
            return {"AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true"}
        return {
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
            "AUTHENTICATION_APIKEY_ENABLED": "true",
            "AUTHENTICATION_APIKEY_ALLOWED_KEYS": key,
            "AUTHENTICATION_APIKEY_USERS": WEAVIATE_USER,
        }

    def healthy(self) -> bool:
        # the readiness endpoint answers without a key: it says nothing about the data
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
        if not self.settings.weaviate_metrics:  # nothing serves them (Weaviate above)
            config["scrape_configs"] = [
                job for job in config["scrape_configs"] if job["job_name"] != "weaviate"
            ]
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

    def _reload_state(self) -> tuple[float, bool]:
        """(when the config was last loaded, in whole seconds; whether the last reload
        succeeded), from the running Prometheus."""
        url = f"{self.settings.prometheus_url}/api/v1/status/runtimeinfo"
        info = httpx.get(url, timeout=10).raise_for_status().json()["data"]
        loaded = datetime.fromisoformat(info["lastConfigTime"]).timestamp()
        return loaded, bool(info["reloadConfigSuccess"])

    def refresh(self) -> None:
        """Rewrite the config and reload it (and the rule files) into the running instance:
        SIGHUP to our process, so no HTTP client can stop or reload it (no
        ``--web.enable-lifecycle``); the outcome read back from its runtime info."""
        self._write_config()
        pid = running_pid(self.files, self.marker)
        if pid is None:
            raise RuntimeError("not our Prometheus: cannot reload it")
        try:
            before, _ = self._reload_state()
            # the load time has whole seconds: reload in a later second than the last
            time.sleep(max(0.0, before + 1.05 - time.time()))
            os.kill(pid, signal.SIGHUP)
            deadline = time.monotonic() + 30
            while (state := self._reload_state()) == (before, True):
                if time.monotonic() > deadline:
                    raise RuntimeError("Prometheus did not reload its config within 30 s")
                time.sleep(0.2)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"could not reload Prometheus: {exc!r}") from exc
        if not state[1]:
            raise RuntimeError(f"Prometheus refused its new config; see {self.files.log_file}")
        log.info("reloaded Prometheus with %s", self.config_path)

    def argv(self, artifacts: Artifacts) -> list[str]:
        return [
            str(artifacts.prometheus_bin),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.prometheus_url}/-/ready")


def components(settings: Settings) -> list[Component]:
    return [*kafka_nodes(settings), Weaviate(settings), Prometheus(settings)]
