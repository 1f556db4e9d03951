"""Generate the Grafana dashboards from code: `make dashboards` (`python -m dashboards.generate`).

The JSON under dashboards/grafana/dashboards/ is committed; a unit test regenerates
it and fails when it differs, and checks that every metric a panel queries is built
by processors/metrics.py and every recorded series is defined in
dashboards/prometheus/rules/. tests/integration/test_dashboards.py runs every
panel's query against a real Prometheus scraping a real worker.

Panels filter by the `$job` and `$instance` variables; "All" means `.*`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dashboards.panels import ROWS, Panel, Row

OUT_DIR = Path(__file__).resolve().parent / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
GRID_WIDTH = 24


def _field_config(p: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": p.unit}
    if p.kind == "timeseries":
        defaults["min"] = 0
    if p.max_value is not None:
        defaults["max"] = p.max_value
    if p.mappings:
        defaults["mappings"] = list(p.mappings)
    if p.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"value": v, "color": c} for v, c in p.thresholds],
        }
        defaults["color"] = {"mode": "thresholds"}
    return {"defaults": defaults, "overrides": []}


def _options(p: Panel) -> dict[str, Any]:
    if p.kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _panel_json(pid: int, p: Panel, x: int, y: int) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": p.width, "h": p.height},
        "fieldConfig": _field_config(p),
        "options": _options(p),
        "targets": [
            {
                "datasource": DATASOURCE,
                "expr": q.expr,
                "legendFormat": q.legend,
                "refId": chr(ord("A") + i),
            }
            for i, q in enumerate(p.queries)
        ],
    }
    if p.description:
        panel["description"] = p.description
    return panel


def layout(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Rows of panels, left to right, wrapping at the grid's width; ids from 1."""
    panels: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                "panels": [],
            }
        )
        y += 1
        x, row_height = 0, 0
        for p in row.panels:
            if x + p.width > GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel_json(len(panels) + 1, p, x, y))
            x += p.width
            row_height = max(row_height, p.height)
        y += row_height
    return panels


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
    }


SERIES_OF_OURS = '{__name__=~"agentmem_events_in_total|agentmem_api_requests_total"'


def pipeline_dashboard() -> dict[str, Any]:
    rows = [row() for row in ROWS]
    return {
        "uid": "agentmem-pipeline",
        "title": "AgentMem Stream",
        "description": "Workers and API of AgentMem Stream: throughput, latency, LLM, enrichment.",
        "tags": ["agentmem"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                _variable("job", "job", f"label_values({SERIES_OF_OURS}}}, job)"),
                _variable(
                    "instance",
                    "instance",
                    f'label_values({SERIES_OF_OURS}, job=~"$job"}}, instance)',
                ),
            ]
        },
        "annotations": {"list": []},
        "panels": layout(rows),
    }


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "agentmem-pipeline.json": pipeline_dashboard,
}


GRAFANA_BUILTINS = ("__rate_interval", "__interval", "__range")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title: legend, PromQL) of every query of every panel."""
    return [
        (f"{p['title']}: {t['legendFormat']}", t["expr"])
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    ]


def expand(expr: str, variables: Mapping[str, str]) -> str:
    """The query as Grafana sends it, `$name` and `${name}` replaced; KeyError if unknown."""
    return _VARIABLE.sub(lambda m: variables[m.group(1) or m.group(2)], expr)


def render() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT_DIR / name).write_text(text)
        sys.stdout.write(f"wrote {OUT_DIR / name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
