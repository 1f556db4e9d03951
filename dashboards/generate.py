"""Generate the Grafana dashboards from code: `make dashboards` (`python dashboards/generate.py`).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
GRID_WIDTH = 24

SEL = '{job=~"$job", instance=~"$instance"}'
RATE = "[$__rate_interval]"
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    queries: Sequence[Query]
    unit: str
    description: str = ""
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    mappings: Sequence[dict[str, Any]] = ()
    thresholds: Sequence[tuple[float | None, str]] = ()
    max_value: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel] = field(default_factory=tuple)


def rate(metric: str, by: str, selector: str = SEL) -> str:
    return f"sum by ({by}) (rate({metric}{selector}{RATE}))"


def quantiles(metric: str, by: str = "", qs: Sequence[float] = QUANTILES) -> list[Query]:
    """histogram_quantile over `<metric>_bucket`, one query per quantile."""
    group = f"le, {by}" if by else "le"
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",") if label.strip())
    return [
        Query(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{SEL}{RATE})))",
            f"p{round(q * 100)} {legend}".strip(),
        )
        for q in qs
    ]


def mean(metric: str, by: str) -> Query:
    return Query(
        f"sum by ({by}) (rate({metric}_sum{SEL}{RATE})) / "
        f"sum by ({by}) (rate({metric}_count{SEL}{RATE}))",
        f"mean {{{{{by}}}}}",
    )


CIRCUIT_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green", "index": 0},
            "1": {"text": "half-open", "color": "yellow", "index": 1},
            "2": {"text": "open", "color": "red", "index": 2},
        },
    }
]


def _health() -> Row:
    job = '{job=~"$job"}'
    return Row(
        "Health (the series the alerts watch; recording rules over 5m)",
        [
            Panel(
                "Consumer lag",
                [Query(f"sum(job_topic:agentmem_consumer_lag:sum{job})", "events behind")],
                "short",
                "Events of memory.events not yet committed, summed over jobs and topics.",
                kind="stat",
                width=5,
                height=4,
                thresholds=[(None, "green"), (1000, "orange")],
            ),
            Panel(
                "Dead letters / s",
                [Query(f"sum(instance:agentmem_deadletters:rate5m{SEL})", "dead letters")],
                "ops",
                "Records written to memory.deadletter (any stage, any reason).",
                kind="stat",
                width=5,
                height=4,
                thresholds=[(None, "green"), (0.001, "orange")],
            ),
            Panel(
                "End-to-end p99",
                [Query(f"max(job:agentmem_end_to_end_seconds:p99_5m{job})", "p99")],
                "s",
                "From occurred_at (or produce time) to searchable in Weaviate.",
                kind="stat",
                width=5,
                height=4,
                thresholds=[(None, "green"), (1, "orange")],
            ),
            Panel(
                "LLM error ratio",
                [
                    Query(
                        f"sum(instance_kind:agentmem_llm_request_errors:rate5m{SEL}) / "
                        f"sum(instance_kind:agentmem_llm_requests:rate5m{SEL})",
                        "errors",
                    )
                ],
                "percentunit",
                'Share of LLM requests whose outcome is not "ok".',
                kind="stat",
                width=5,
                height=4,
                thresholds=[(None, "green"), (0.1, "orange")],
            ),
            Panel(
                "LLM circuit",
                [Query(f"max(agentmem_llm_circuit_state{SEL})", "circuit")],
                "none",
                "The worst circuit breaker state of the LLM endpoints.",
                kind="stat",
                width=4,
                height=4,
                mappings=CIRCUIT_MAPPINGS,
            ),
        ],
    )


def _throughput() -> Row:
    return Row(
        "Throughput",
        [
            Panel(
                "Events per second by stage and type",
                [
                    Query(rate("agentmem_events_in_total", "stage"), "in {{stage}}"),
                    Query(rate("agentmem_events_applied_total", "type"), "applied {{type}}"),
                    Query(
                        rate("agentmem_events_noop_total", "type, reason"),
                        "no-op {{type}} {{reason}}",
                    ),
                ],
                "ops",
                "Read from memory.events, applied to Weaviate, and skipped as no-ops.",
            ),
            Panel(
                "Failed events by stage and reason",
                [
                    Query(
                        rate("agentmem_events_failed_total", "stage, reason"),
                        "{{stage}} {{reason}}",
                    )
                ],
                "ops",
                "Events that failed a stage (each is also dead-lettered).",
            ),
            Panel(
                "Dead letters by stage and reason",
                [
                    Query(
                        rate("agentmem_deadletters_total", "stage, reason"),
                        "{{stage}} {{reason}}",
                    )
                ],
                "ops",
                "Records written to memory.deadletter.",
            ),
            Panel(
                "Consumer lag by topic",
                [
                    Query(
                        f"sum by (topic) (max by (topic, partition) (agentmem_consumer_lag{SEL}))",
                        "{{topic}}",
                    )
                ],
                "short",
                "Every worker reports its group's lag; one value per partition is counted.",
            ),
        ],
    )


def _latency() -> Row:
    return Row(
        "Latency and batching",
        [
            Panel(
                "End-to-end latency (occurred to searchable)",
                quantiles("agentmem_end_to_end_seconds"),
                "s",
            ),
            Panel(
                "Stage latency per batch",
                quantiles("agentmem_stage_seconds", "stage"),
                "s",
                "agentmem_stage_seconds by stage: embed, weaviate_write, history_append, ...",
            ),
            Panel(
                "Batch size",
                [
                    mean("agentmem_batch_size", "stage"),
                    *quantiles("agentmem_batch_size", "stage", (0.99,)),
                ],
                "none",
                "Events per micro-batch.",
            ),
            Panel(
                "Retries and waits on dependencies",
                [
                    Query(rate("agentmem_retries_total", "operation"), "retry {{operation}}"),
                    Query(
                        f"max by (operation) (agentmem_batches_in_retry{SEL})",
                        "waiting {{operation}}",
                    ),
                ],
                "short",
                "Retries per second; 1 while the batch loop waits on a failing dependency.",
            ),
        ],
    )


def _llm() -> Row:
    return Row(
        "LLM (intelligent mode)",
        [
            Panel(
                "LLM request latency by kind",
                quantiles("agentmem_llm_request_seconds", "kind"),
                "s",
                "One chat-completion request, whatever its outcome.",
            ),
            Panel(
                "LLM requests by kind and outcome",
                [
                    Query(
                        rate("agentmem_llm_requests_total", "kind, outcome"),
                        "{{kind}} {{outcome}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "LLM error ratio by kind (5m)",
                [
                    Query(
                        f"sum by (kind) (instance_kind:agentmem_llm_request_errors:rate5m{SEL}) / "
                        f"sum by (kind) (instance_kind:agentmem_llm_requests:rate5m{SEL})",
                        "{{kind}}",
                    )
                ],
                "percentunit",
                'Outcome other than "ok"; the AgentMemLLMErrors alert fires above 10%.',
                max_value=1,
            ),
            Panel(
                "Prompts per request",
                [
                    mean("agentmem_llm_prompt_items", "kind"),
                    *quantiles("agentmem_llm_prompt_items", "kind", (0.95,)),
                ],
                "none",
                "Memories packed into one LLM request.",
            ),
            Panel(
                "llm_cache hit ratio by kind (5m)",
                [
                    Query(
                        f"sum by (kind) (instance_kind:agentmem_llm_cache_hits:rate5m{SEL}) / "
                        f"sum by (kind) (instance_kind:agentmem_llm_cache_lookups:rate5m{SEL})",
                        "{{kind}}",
                    )
                ],
                "percentunit",
                max_value=1,
            ),
            Panel(
                "LLM circuit state by endpoint",
                [
                    Query(
                        f"max by (endpoint) (agentmem_llm_circuit_state{SEL})",
                        "{{endpoint}}",
                    )
                ],
                "none",
                "0 closed, 1 half-open, 2 open (no calls until the breaker half-opens).",
                mappings=CIRCUIT_MAPPINGS,
                max_value=2,
            ),
        ],
    )


def _enrichment() -> Row:
    return Row(
        "Enrichment",
        [
            Panel(
                "Enrichment lag (searchable to enriched)",
                quantiles("agentmem_enrichment_lag_seconds"),
                "s",
                width=8,
            ),
            Panel(
                "Enrichments by outcome",
                [Query(rate("agentmem_enrichments_total", "outcome"), "{{outcome}}")],
                "ops",
                "enriched, partial, failed, stale.",
                width=8,
            ),
            Panel(
                "Merge decisions by action",
                [Query(rate("agentmem_enrich_decisions_total", "action"), "{{action}}")],
                "ops",
                "ADD / UPDATE / DELETE / NOOP decisions carried out.",
                width=8,
            ),
        ],
    )


def _api() -> Row:
    return Row(
        "HTTP API",
        [
            Panel(
                "API requests by route and status",
                [
                    Query(
                        rate("agentmem_api_requests_total", "method, route, status"),
                        "{{method}} {{route}} {{status}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "API latency by route",
                quantiles("agentmem_api_request_seconds", "route", (0.5, 0.99)),
                "s",
            ),
        ],
    )


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
    rows = [_health(), _throughput(), _latency(), _llm(), _enrichment(), _api()]
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
