"""Every Prometheus metric of AgentMem, built by one factory against an injected registry.

Dashboards and alert rules (dashboards/) use exactly these names.

Pure (no I/O: the registry is injected; the HTTP exposition is the caller's).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


@dataclass(frozen=True)
class Metrics:
    events_in: Counter
    events_applied: Counter
    events_noop: Counter
    events_failed: Counter
    deadletters: Counter
    batch_size: Histogram
    stage_seconds: Histogram
    end_to_end_seconds: Histogram
    retries: Counter
    consumer_lag: Gauge
    batches_in_retry: Gauge
    api_requests: Counter
    api_seconds: Histogram
    llm_requests: Counter
    llm_seconds: Histogram
    llm_prompt_items: Histogram
    llm_cache: Counter
    llm_answers: Counter
    llm_answer_items: Counter
    llm_circuit_state: Gauge
    enrichments: Counter
    enrich_decisions: Counter
    enrichment_lag_seconds: Histogram
    batches_isolated: Counter
    agent_crashes: Counter
    producer_recreated: Counter
    worker_health: Gauge
    events_replayed: Counter
    state_restore_seconds: Histogram
    state_restored_records: Counter
    partitions_owned: Gauge
    rebuild_lag: Gauge


def build_metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(
        events_in=Counter(
            "agentmem_events_in", "Events read from memory.events", ["stage"], registry=registry
        ),
        events_applied=Counter(
            "agentmem_events_applied",
            "Events whose change was applied",
            ["type"],
            registry=registry,
        ),
        events_noop=Counter(
            "agentmem_events_noop",
            "Events that changed nothing (duplicates, unchanged)",
            ["type", "reason"],
            registry=registry,
        ),
        events_failed=Counter(
            "agentmem_events_failed",
            "Events that failed a stage",
            ["stage", "reason"],
            registry=registry,
        ),
        deadletters=Counter(
            "agentmem_deadletters",
            "Records written to memory.deadletter",
            ["stage", "reason"],
            registry=registry,
        ),
        batch_size=Histogram(
            "agentmem_batch_size",
            "Events per micro-batch",
            ["stage"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        ),
        stage_seconds=Histogram(
            "agentmem_stage_seconds",
            "Latency of one stage for one batch",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        end_to_end_seconds=Histogram(
            "agentmem_end_to_end_seconds",
            "From occurred_at (or produce time) to searchable in Weaviate",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        retries=Counter(
            "agentmem_retries",
            "Retried operations after a transient failure",
            ["operation"],
            registry=registry,
        ),
        consumer_lag=Gauge(
            "agentmem_consumer_lag",
            "Events not yet committed by the worker's group",
            ["topic", "partition"],
            registry=registry,
        ),
        batches_in_retry=Gauge(
            "agentmem_batches_in_retry",
            "1 while the batch loop waits on a failing dependency",
            ["operation"],
            registry=registry,
        ),
        api_requests=Counter(
            "agentmem_api_requests",
            "HTTP API requests",
            ["route", "method", "status"],
            registry=registry,
        ),
        api_seconds=Histogram(
            "agentmem_api_request_seconds",
            "HTTP API request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        llm_requests=Counter(
            "agentmem_llm_requests",
            "LLM chat-completion requests by processor and outcome "
            "(ok, rate_limited, server_error, timeout, connection_error, invalid_answer, "
            "rejected, circuit_open)",
            ["kind", "outcome"],
            registry=registry,
        ),
        llm_seconds=Histogram(
            "agentmem_llm_request_seconds",
            "Latency of one LLM request, whatever its outcome",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        llm_prompt_items=Histogram(
            "agentmem_llm_prompt_items",
            "Memories packed into one LLM request",
            ["kind"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        ),
        llm_cache=Counter(
            "agentmem_llm_cache",
            "llm_cache lookups by processor and result (hit, miss)",
            ["kind", "result"],
            registry=registry,
        ),
        llm_answers=Counter(
            "agentmem_llm_answers",
            "LLM answers (requests that came back) by processor and how they read: valid, "
            "repaired (fenced, cut off, wrong types put right) or invalid (nothing usable)",
            ["kind", "verdict"],
            registry=registry,
        ),
        llm_answer_items=Counter(
            "agentmem_llm_answer_items",
            "Memories asked in LLM answers that came back, by result (valid, repaired, "
            "missing: absent or unusable, asked again alone or failed)",
            ["kind", "result"],
            registry=registry,
        ),
        llm_circuit_state=Gauge(
            "agentmem_llm_circuit_state",
            "Circuit breaker of the LLM endpoint: 0 closed, 1 half-open, 2 open",
            ["endpoint"],
            registry=registry,
        ),
        enrichments=Counter(
            "agentmem_enrichments",
            "Enrichment requests finished, by outcome (enriched, partial, failed, stale)",
            ["outcome"],
            registry=registry,
        ),
        enrich_decisions=Counter(
            "agentmem_enrich_decisions",
            "ADD/UPDATE/DELETE/NOOP decisions carried out by the merge step",
            ["action"],
            registry=registry,
        ),
        enrichment_lag_seconds=Histogram(
            "agentmem_enrichment_lag_seconds",
            "From a memory becoming searchable to its enrichment applied",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        batches_isolated=Counter(
            "agentmem_batches_isolated",
            "Batches that failed as a whole and were split in two to find the events "
            "that fail alone",
            ["stage"],
            registry=registry,
        ),
        agent_crashes=Counter(
            "agentmem_agent_crashes",
            "Exceptions that left an agent's loop (the agent is restarted; liveness fails)",
            ["agent"],
            registry=registry,
        ),
        producer_recreated=Counter(
            "agentmem_producer_recreated",
            "Kafka producers replaced after a fatal producer error (broker restarts)",
            ["client"],
            registry=registry,
        ),
        worker_health=Gauge(
            "agentmem_worker_health",
            "1 when the check passes: live (no crash, nothing stuck or wedged) and ready "
            "(no dependency waited on)",
            ["check"],
            registry=registry,
        ),
        events_replayed=Counter(
            "agentmem_events_replayed",
            "Events skipped because their partition was applied past them already (a "
            "replay of the log: offsets reset, a new consumer group)",
            ["stage"],
            registry=registry,
        ),
        state_restore_seconds=Histogram(
            "agentmem_state_restore_seconds",
            "Time to bring one partition's memory_state up to date from its changelog "
            "when the worker takes the partition (0 records when the local copy is current)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        state_restored_records=Counter(
            "agentmem_state_restored_records",
            "memory_state changelog records read while restoring partitions",
            registry=registry,
        ),
        partitions_owned=Gauge(
            "agentmem_partitions_owned",
            "memory.events partitions assigned to this worker",
            registry=registry,
        ),
        rebuild_lag=Gauge(
            "agentmem_rebuild_lag_events",
            "Events of memory.events a rebuild has still to apply to its new generation",
            ["generation"],
            registry=registry,
        ),
    )
