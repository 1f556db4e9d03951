"""The dashboard's rows and panels, as data: each row a function returning a `Row` of
`Panel`s with their PromQL queries. Pure; rendered to Grafana JSON by generate.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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


ROWS = (_health, _throughput, _latency, _llm, _enrichment, _api)
