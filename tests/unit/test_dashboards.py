"""Dashboards, Prometheus config and rules, checked without services.

The committed Grafana JSON is what dashboards/generate.py produces; every metric a
panel or a rule uses is built by processors/metrics.py; every recorded series a
panel uses is defined; promtool accepts the config and the rules and their unit
tests pass; Grafana's provisioning matches docker-compose.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from dashboards import generate as dashboard_generator
from processors.metrics import build_metrics
from streams.settings import PROJECT_ROOT, Settings
from streams.stack.components import Prometheus

PROM_DIR = PROJECT_ROOT / "dashboards" / "prometheus"
GRAFANA_DIR = PROJECT_ROOT / "dashboards" / "grafana"
RECORDED = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")
METRIC = re.compile(r"\bagentmem_[a-z0-9_]+")
SAMPLE_SUFFIX = re.compile(r"_(total|bucket|sum|count)$")


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted((PROM_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += group["rules"]
    return rules


def _factory_metrics() -> set[str]:
    registry = CollectorRegistry()
    build_metrics(registry)
    return {m.name for m in registry.collect()}


def _unknown_names(expr: str, known: set[str], recorded: set[str]) -> list[str]:
    """Metric and recorded-series names in a PromQL expression that nothing defines."""
    unknown = [name for name in RECORDED.findall(expr) if name not in recorded]
    bare = RECORDED.sub(" ", expr)
    unknown += [m for m in METRIC.findall(bare) if SAMPLE_SUFFIX.sub("", m) not in known]
    return unknown


def _queries() -> Iterator[tuple[str, str, str]]:
    generator = dashboard_generator
    for name, build in generator.DASHBOARDS.items():
        for where, expr in generator.panel_queries(build()):
            yield name, where, expr


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `make setup` installs Debian's prometheus package")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, check=False, cwd=PROJECT_ROOT
    )


def test_committed_dashboards_equal_the_generated_ones() -> None:
    generator = dashboard_generator
    rendered = generator.render()
    assert rendered
    for name, text in rendered.items():
        committed = (generator.OUT_DIR / name).read_text()
        assert committed == text, f"{name} is stale: run `make dashboards`"


def test_panels_only_use_metrics_the_factory_builds_and_series_the_rules_record() -> None:
    known = _factory_metrics()
    recorded = {r["record"] for r in _rules() if "record" in r}
    queries = list(_queries())
    assert len(queries) >= 20
    problems = [
        f"{name}: {where!r} uses {u}"
        for name, where, expr in queries
        for u in _unknown_names(expr, known, recorded)
    ]
    assert problems == []


def test_the_name_check_catches_a_misspelt_metric_and_an_undefined_recording() -> None:
    known, recorded = {"agentmem_events_in"}, {"job:agentmem_events_in:rate5m"}
    assert _unknown_names("rate(agentmem_events_in_total[1m])", known, recorded) == []
    assert _unknown_names("job:agentmem_events_in:rate5m", known, recorded) == []
    assert _unknown_names("rate(agentmem_event_in_total[1m])", known, recorded) == [
        "agentmem_event_in_total"
    ]
    assert _unknown_names("job:agentmem_events_in:rate1m", known, recorded) == [
        "job:agentmem_events_in:rate1m"
    ]


def test_rules_only_use_metrics_the_factory_builds() -> None:
    known = _factory_metrics()
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    problems = [
        f"{r.get('record') or r.get('alert')} uses {u}"
        for r in rules
        for u in _unknown_names(r["expr"], known, recorded)
    ]
    assert problems == []
    alerts = {r["alert"] for r in rules if "alert" in r}
    wanted = {
        "AgentMemConsumerLagGrowing",
        "AgentMemDeadLetters",
        "AgentMemLLMErrors",
        "AgentMemLLMCircuitOpen",
    }
    assert wanted <= alerts


def test_every_variable_a_panel_uses_is_defined() -> None:
    generator = dashboard_generator
    for name, build in generator.DASHBOARDS.items():
        dashboard = build()
        defined = {v["name"] for v in dashboard["templating"]["list"]}
        values = {v: "x" for v in (*defined, *generator.GRAFANA_BUILTINS)}
        for where, expr in generator.panel_queries(dashboard):
            expanded = generator.expand(expr, values)  # KeyError names an undefined one
            assert "$" not in expanded, f"{name}: {where!r}"
        assert {"job", "instance"} <= defined


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    generator = dashboard_generator
    for name, build in generator.DASHBOARDS.items():
        panels = build()["panels"]
        assert len({p["id"] for p in panels}) == len(panels), name
        taken: set[tuple[int, int]] = set()
        for p in panels:
            g = p["gridPos"]
            assert g["x"] + g["w"] <= generator.GRID_WIDTH, p["title"]
            cells = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & taken, f"{name}: {p['title']!r} overlaps another panel"
            taken |= cells
            refs = [t["refId"] for t in p.get("targets", [])]
            assert len(set(refs)) == len(refs), p["title"]


def test_promtool_accepts_the_rules() -> None:
    result = _run("check", "rules", *map(str, sorted((PROM_DIR / "rules").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    tests = sorted((PROM_DIR / "tests").glob("*.yml"))
    assert tests
    result = _run("test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_committed_and_the_rendered_config(tmp_path: Path) -> None:
    result = _run("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    prometheus = Prometheus(Settings(stack_dir=tmp_path))
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(yaml.safe_dump(prometheus.local_config(), sort_keys=False))
    result = _run("check", "config", str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_fails_on_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n"
    )
    assert _run("check", "rules", str(broken)).returncode != 0


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    return loaded


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host path of a compose service's bind mounts."""
    out = {}
    for volume in _compose()["services"][service]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = source
    return out


def test_grafana_provisioning_matches_compose_and_the_dashboards() -> None:
    generator = dashboard_generator
    mounts = _mounts("grafana")
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/agentmem.yml").read_text())
    for provider in providers["providers"]:
        host_dir = mounts[provider["options"]["path"]]
        assert (PROJECT_ROOT / host_dir).resolve() == generator.OUT_DIR
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/grafana/provisioning"
    sources = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert source["uid"] == generator.DATASOURCE["uid"]
    assert source["type"] == generator.DATASOURCE["type"]
    host, port = source["url"].removeprefix("http://").split(":")
    assert host in _compose()["services"]
    # the port Prometheus listens on inside compose's network (not published there)
    command = _compose()["services"][host]["command"]
    listen = [a.split("=", 1)[1] for a in command if a.startswith("--web.listen-address=")]
    assert int(port) == (int(listen[0].rsplit(":", 1)[1]) if listen else 9090)
    home = _compose()["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert Path(home).name in generator.DASHBOARDS


def test_compose_prometheus_mounts_what_the_config_reads() -> None:
    mounts = _mounts("prometheus")
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config_dir = Path(next(t for t, s in mounts.items() if s.endswith("prometheus.yml"))).parent
    patterns = list(config["rule_files"]) + [
        f
        for job in config["scrape_configs"]
        for sd in job.get("file_sd_configs", [])
        for f in sd["files"]
    ]
    for pattern in patterns:
        folder = str(config_dir / Path(pattern).parent)
        assert folder in mounts, f"compose does not mount {folder} for {pattern}"
        assert (PROJECT_ROOT / mounts[folder]).is_dir()
