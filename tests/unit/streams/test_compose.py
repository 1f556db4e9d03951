"""docker-compose.yml runs intelligent mode out of the box: the worker's LLM is a service
of the same file, every service says when it is healthy, and nothing starts before what
it needs is. (More compose checks: test_stack_config.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
# publishes Kafka, Weaviate, Prometheus and the workers' metrics for host tools
PORTS_OVERLAY = "docker-compose.ports.yml"
# ${VAR:-default}: compose's variable with a default
_DEFAULTED = re.compile(r"^\$\{(?P<var>[A-Z0-9_]+):-(?P<default>[^}]*)\}$")


def _compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return loaded


def _published(name: str) -> dict[str, list[str]]:
    """Service -> the ports a compose file publishes for it."""
    services: dict[str, dict[str, Any]] = _compose(name)["services"]
    return {s: [str(p) for p in spec.get("ports", [])] for s, spec in services.items()}


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _worker_llm_url() -> tuple[str, str]:
    """The variable that overrides the worker's LLM URL, and the URL it defaults to."""
    raw = _services()["worker"]["environment"]["AGENTMEM_LLM_BASE_URL"]
    found = _DEFAULTED.match(raw)
    assert found, f"the worker's LLM URL should be ${{VAR:-default}}, got {raw!r}"
    return found["var"], found["default"]


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_worker_llm_defaults_to_the_fake_llm_service_of_this_file() -> None:
    _, default = _worker_llm_url()
    url = urlsplit(default)
    services = _services()
    assert url.hostname in services, f"{url.hostname} is not a compose service"
    llm = services[url.hostname]
    argv = [*llm.get("entrypoint", []), *llm["command"]]
    assert argv[:2] == ["loadgen", "fake-llm"], argv
    assert _option(argv, "--host") == "0.0.0.0"  # noqa: S104 (inside its container)
    assert int(_option(argv, "--port")) == url.port
    assert llm["build"] == services["worker"]["build"], "the same image as the worker"
    assert url.path == "/v1"


def test_the_external_llm_override_is_documented() -> None:
    variable, _ = _worker_llm_url()
    assert variable == "AGENTMEM_LLM_BASE_URL"
    docker_section = (ROOT / "README.md").read_text().split("## With Docker", 1)[1]
    docker_section = docker_section.split("\n## ", 1)[0]
    assert "AGENTMEM_LLM_BASE_URL=" in docker_section
    # an endpoint on the Docker host is reachable by name from the worker's container
    assert "host.docker.internal" in docker_section
    assert "host.docker.internal:host-gateway" in _services()["worker"]["extra_hosts"]


@pytest.mark.parametrize("name", sorted(_services()))
def test_every_service_has_a_healthcheck(name: str) -> None:
    check = _services()[name].get("healthcheck")
    assert check, f"{name} has no healthcheck"
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1
    assert check.get("interval") and check.get("retries")


def test_depends_on_names_services_and_waits_for_their_health() -> None:
    services = _services()
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions (a mapping)"
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert spec == {"condition": "service_healthy"}, (name, dependency, spec)


def test_worker_waits_for_kafka_weaviate_and_its_llm() -> None:
    assert set(_services()["worker"]["depends_on"]) == {"kafka", "weaviate", "llm"}


def test_no_default_points_at_the_docker_host() -> None:
    """host.docker.internal is only for overrides: a default must be a service of the file."""
    for name, service in _services().items():
        for key, value in (service.get("environment") or {}).items():
            if isinstance(value, str) and (found := _DEFAULTED.match(value)):
                assert "host.docker.internal" not in found["default"], (name, key)


def test_the_worker_can_be_scaled() -> None:
    """`docker compose up --scale worker=3`: no replica needs a host port another one
    holds (none by default; a range on loopback with the ports overlay), and the
    replicas share one state volume in which each claims a folder of its own
    (streams/service/slots.py)."""
    worker = _compose()["services"]["worker"]
    assert "ports" not in worker
    (port,) = _published(PORTS_OVERLAY)["worker"]
    host, ports, inner = port.split(":")
    low, high = (int(p) for p in ports.split("-"))
    assert host == "127.0.0.1" and inner == "9108" and high - low + 1 >= 3
    assert any(v.endswith(":/var/lib/agentmem") for v in worker["volumes"])


def test_only_the_api_and_grafana_are_published_by_default() -> None:
    """The two services that take a credential; Kafka, Weaviate, Prometheus and the
    workers' metrics stay on compose's internal network (issue 13)."""
    published = {name for name, ports in _published("docker-compose.yml").items() if ports}
    assert published == {"api", "grafana"}


def test_the_ports_overlay_publishes_only_services_of_the_main_file() -> None:
    overlay = _published(PORTS_OVERLAY)
    assert set(overlay) <= set(_services())
    assert {"kafka", "weaviate", "prometheus", "worker"} <= {s for s, p in overlay.items() if p}
    assert PORTS_OVERLAY in (ROOT / "docker-compose.yml").read_text()  # named where read


@pytest.mark.parametrize("name", ["docker-compose.yml", PORTS_OVERLAY])
def test_every_published_port_is_on_the_hosts_loopback(name: str) -> None:
    """Nothing of the compose stack is offered to the network (issue 13): each port is
    published as 127.0.0.1:<host>:<container>, with or without the overlay."""
    published = _published(name)
    assert any(published.values())
    for service, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), (service, port)


def test_prometheus_cannot_be_stopped_over_http() -> None:
    """Without --web.enable-lifecycle, a POST to /-/quit is refused."""
    assert not any("lifecycle" in arg for arg in _services()["prometheus"]["command"])
