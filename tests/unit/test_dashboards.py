"""The committed dashboards are exactly what dashboards/generate.py produces."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

from prometheus_client import CollectorRegistry

from processors.metrics import build_metrics
from streams.settings import PROJECT_ROOT


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate", PROJECT_ROOT / "dashboards/generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_equal_the_generated_ones() -> None:
    generator = _generator()
    rendered = generator.render()
    assert rendered
    for name, text in rendered.items():
        committed = (generator.OUT_DIR / name).read_text()
        assert committed == text, f"{name} is stale: run `python dashboards/generate.py`"


def test_panels_only_use_metrics_the_factory_builds() -> None:
    registry = CollectorRegistry()
    build_metrics(registry)
    known = {m.name for m in registry.collect()}
    generator = _generator()
    for name, build in generator.DASHBOARDS.items():
        for p in build()["panels"]:
            for target in p["targets"]:
                for metric in re.findall(r"agentmem_[a-z_]+", target["expr"]):
                    base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
                    assert base in known, f"{name}: panel {p['title']!r} uses unknown {metric}"
