"""Generate the Grafana dashboards from code: `python dashboards/generate.py`.

The JSON under dashboards/grafana/dashboards/ is committed; a unit test regenerates
it and fails when it differs. Every PromQL expression uses the metric names of
processors/metrics.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(
    pid: int,
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    pos: tuple[int, int, int, int],
    kind: str = "timeseries",
) -> dict[str, Any]:
    x, y, w, h = pos
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            _target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)
        ],
    }


def _quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f'histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{job=~"$job"}}'
            f"[$__rate_interval])))",
            f"p{int(q * 100)}{suffix}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def pipeline_dashboard() -> dict[str, Any]:
    rate = "[$__rate_interval]"
    sel = '{job=~"$job"}'
    panels = [
        panel(
            1,
            "Events in / applied / no-op per second",
            [
                (f"sum(rate(agentmem_events_in_total{sel}{rate}))", "in"),
                (
                    f"sum by (type) (rate(agentmem_events_applied_total{sel}{rate}))",
                    "applied {{type}}",
                ),
                (
                    f"sum by (reason) (rate(agentmem_events_noop_total{sel}{rate}))",
                    "no-op {{reason}}",
                ),
            ],
            "ops",
            (0, 0, 12, 8),
        ),
        panel(
            2,
            "End-to-end latency (occurred to searchable)",
            _quantiles("agentmem_end_to_end_seconds"),
            "s",
            (12, 0, 12, 8),
        ),
        panel(
            3,
            "Stage latency per batch",
            [
                *_quantiles("agentmem_stage_seconds", "stage"),
            ],
            "s",
            (0, 8, 12, 8),
        ),
        panel(
            4,
            "Batch size",
            [
                (
                    f"sum by (stage) (rate(agentmem_batch_size_sum{sel}{rate})) / "
                    f"sum by (stage) (rate(agentmem_batch_size_count{sel}{rate}))",
                    "mean {{stage}}",
                ),
                *_quantiles("agentmem_batch_size", "stage")[2:],
            ],
            "none",
            (12, 8, 12, 8),
        ),
        panel(
            5,
            "Consumer lag",
            [
                (f"sum by (topic) (agentmem_consumer_lag{sel})", "{{topic}}"),
            ],
            "short",
            (0, 16, 12, 8),
        ),
        panel(
            6,
            "Dead letters per second",
            [
                (
                    f"sum by (stage, reason) (rate(agentmem_deadletters_total{sel}{rate}))",
                    "{{stage}} {{reason}}",
                ),
            ],
            "ops",
            (12, 16, 12, 8),
        ),
        panel(
            7,
            "Retries and waits on dependencies",
            [
                (
                    f"sum by (operation) (rate(agentmem_retries_total{sel}{rate}))",
                    "retry {{operation}}",
                ),
                (f"max by (operation) (agentmem_batches_in_retry{sel})", "waiting {{operation}}"),
            ],
            "short",
            (0, 24, 24, 8),
        ),
    ]
    return {
        "uid": "agentmem-pipeline",
        "title": "AgentMem Stream — pipeline",
        "tags": ["agentmem"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "job",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": "label_values(agentmem_events_in_total, job)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                }
            ]
        },
        "panels": panels,
    }


DASHBOARDS = {"agentmem-pipeline.json": pipeline_dashboard}


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
