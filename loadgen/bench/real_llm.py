"""`loadgen llm-throughput`: intelligent mode on a real endpoint against fast mode, in
one run, for several prompt sizes (memories per prompt).

For each size a private worker on the shared stack, pointed at the endpoint with the
slow-endpoint tuning of ``stack up --llm``, drains the same synthetic adds twice:
in fast mode (publish start to the last ack), then in intelligent mode under other
tenants (publish start to the last ``memory.enriched`` record). New texts for each
size, and a new worker (its own ``llm_cache``): nothing is answered from a cache.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from loadgen.bench.config import BenchConfig
from loadgen.bench.harness import (
    PrivateWorker,
    adds,
    as_fast,
    drain_enriched,
    drained_per_s,
    private_settings,
    warm_up,
)
from streams.settings import Settings
from streams.stack.llm_server import LOCAL_TUNING

log = logging.getLogger(__name__)


def _worker_counts(port: int) -> dict[str, float]:
    """Answers by verdict and requests by outcome, summed over kinds."""
    counts: dict[str, float] = {}
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        for name, label in (
            ("agentmem_llm_answers_total{", "verdict"),
            ("agentmem_llm_requests_total{", "outcome"),
            ("agentmem_enrichments_total{", "outcome"),
        ):
            if line.startswith(name):
                value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
                key = f"{name[:-1].removeprefix('agentmem_')}:{value}"
                counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def measure(
    base: Settings, config: BenchConfig, batch_size: int, seed_offset: int
) -> dict[str, Any]:
    docs = adds(config, config.intelligent_events, seed_offset, mode="intelligent")
    settings = private_settings(
        base, config.workdir, **{**LOCAL_TUNING, "llm_batch_size": batch_size}
    )
    log_path = config.workdir / f"llm-throughput-b{batch_size}.log"
    with PrivateWorker(settings, log_path):
        warm_up(settings, config)
        fast = drained_per_s(settings, as_fast(docs), config, "fast baseline")
        result = drain_enriched(settings, docs, config)
        counts = _worker_counts(settings.worker_metrics_port)
    seconds = result.drain_seconds or float("nan")
    intelligent = result.acked / seconds
    return {
        "batch_size": batch_size,
        "events": len(docs),
        "enriched": result.acked,
        "complete": result.complete,
        "fast_events_per_s": fast,
        "intelligent_events_per_s": intelligent,
        "intelligent_seconds": seconds,
        "intelligent_vs_fast_ratio": intelligent / fast,
        **counts,
    }


def run(base: Settings, config: BenchConfig, batch_sizes: list[int]) -> list[dict[str, Any]]:
    out = []
    for n, size in enumerate(batch_sizes):
        row = measure(base, config, size, 40 + n)
        log.info("batch size %d: %s", size, row)
        out.append(row)
    return out


def render(rows: list[dict[str, Any]], model: str) -> str:
    lines = [
        f"# Intelligent vs fast mode on {model}",
        "",
        "| memories/prompt | events | enriched | fast ev/s | intelligent ev/s | ratio "
        "| answers valid/repaired/invalid | requests ok/invalid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        answers = "/".join(
            f"{r.get(f'llm_answers_total:{v}', 0):.0f}" for v in ("valid", "repaired", "invalid")
        )
        requests = "/".join(
            f"{r.get(f'llm_requests_total:{v}', 0):.0f}" for v in ("ok", "invalid_answer")
        )
        lines.append(
            f"| {r['batch_size']} | {r['events']} | {r['enriched']} "
            f"| {r['fast_events_per_s']:.1f} | {r['intelligent_events_per_s']:.3f} "
            f"| {r['intelligent_vs_fast_ratio']:.4f} | {answers} | {requests} |"
        )
    return "\n".join(lines) + "\n"
