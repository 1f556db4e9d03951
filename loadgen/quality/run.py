"""One quality run against the configured endpoint (``AGENTMEM_LLM_*``), through the
worker's own path: the same endpoint adapter, processors, prompts and batching, the
same rules before the model (exact duplicates), the same reading of decisions.

Not pure: it talks to the LLM. Nothing is cached between runs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from loadgen.quality.dataset import DecisionCase, MemoryCase, decision_cases, memory_cases
from loadgen.quality.score import (
    FAILED,
    DecisionScore,
    FactScore,
    ImportanceScore,
    Predicted,
    score_decisions,
    score_facts,
    score_importance,
)
from processors.core.circuit import CircuitBreaker
from processors.core.enrichment import (
    Candidate,
    decision_from_answer,
    decision_item,
    local_decision,
)
from processors.core.llm_prompts import PromptKind, Result
from processors.metrics import build_metrics
from streams import clients
from streams.settings import Settings

PARTS = ("decisions", "facts", "importance")


class MemoryCache:
    """An llm_cache that lives for one run (so every answer is asked for)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value


@dataclass
class QualityRun:
    base_url: str
    model: str
    batch_size: int
    prompt_version: str  # the prompt files asked, e.g. "decision.v2, facts.v1"
    mode: str  # the structured-output mode the endpoint ended up with
    decisions: DecisionScore
    facts: FactScore
    importance: ImportanceScore
    seconds: float
    answers: dict[str, dict[str, float]]  # kind -> verdict -> count
    requests: dict[str, float]  # outcome -> count
    parts: tuple[str, ...] = PARTS  # the parts of the set that were asked


async def _nothing() -> dict[str, Result]:
    return {}


def _candidates(case: DecisionCase) -> list[Candidate]:
    return [Candidate(str(i), text, 0.0) for i, text in enumerate(case.existing)]


def _predicted(result: Result | None, candidates: list[Candidate]) -> Predicted:
    if not isinstance(result, dict):
        return Predicted(FAILED)
    decision = decision_from_answer(result, candidates)
    target = int(decision.target) if decision.target is not None else None
    return Predicted(decision.action, target, decision.by)


async def run_quality(
    settings: Settings,
    decisions: list[DecisionCase] | None = None,
    memories: list[MemoryCase] | None = None,
    parts: tuple[str, ...] = PARTS,
) -> QualityRun:
    """Facts, importance and decisions for the whole set, the three processors at once
    as in the worker; ``parts`` (of :data:`PARTS`) limits it to some (a slow endpoint
    spends most of a run on facts and importance)."""
    unknown = set(parts) - set(PARTS)
    if unknown or not parts:
        raise ValueError(f"quality parts must be among {', '.join(PARTS)}")
    decisions = decision_cases() if decisions is None else decisions
    memories = memory_cases() if memories is None else memories
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    breaker = CircuitBreaker(window=1000, min_calls=1000, failure_ratio=1.0)  # never opens
    client, endpoint = clients.llm_endpoint(settings, breaker, metrics)
    processors = clients.llm_processors(settings, endpoint, MemoryCache(), metrics)
    got: dict[str, Predicted] = {}
    asked: dict[str, dict[str, Any]] = {}
    for case in decisions:
        rule = local_decision(case.memory, _candidates(case))
        if rule is None:
            asked[case.id] = decision_item(case.memory, _candidates(case))
        else:
            target = int(rule.target) if rule.target is not None else None
            got[case.id] = Predicted(rule.action, target, rule.by)
    if "decisions" not in parts:
        decisions, got, asked = [], {}, {}
    if "facts" not in parts and "importance" not in parts:
        memories = []
    texts = {case.id: {"memory": case.memory} for case in memories}
    kinds = {
        PromptKind.FACTS: "facts",
        PromptKind.IMPORTANCE: "importance",
        PromptKind.DECISION: "decisions",
    }
    versions = ", ".join(processors[k].prompt.version for k, part in kinds.items() if part in parts)
    started = time.perf_counter()
    try:
        facts, importance, answered = await asyncio.gather(
            processors[PromptKind.FACTS].run(texts) if "facts" in parts else _nothing(),
            processors[PromptKind.IMPORTANCE].run(texts) if "importance" in parts else _nothing(),
            processors[PromptKind.DECISION].run(asked),
        )
    finally:
        await client.close()
    seconds = time.perf_counter() - started
    by_id = {case.id: case for case in decisions}
    for case_id, result in answered.items():
        got[case_id] = _predicted(result, _candidates(by_id[case_id]))
    facts_got = {
        i: [str(f) for f in r.get("facts", [])] if isinstance(r, dict) else None
        for i, r in facts.items()
    }
    importance_got = {
        i: float(r["importance"]) if isinstance(r, dict) else None for i, r in importance.items()
    }
    return QualityRun(
        settings.llm_base_url,
        settings.llm_model,
        settings.llm_batch_size,
        versions,
        endpoint.mode.value,
        score_decisions(decisions, got),
        score_facts(memories if "facts" in parts else [], facts_got),
        score_importance(memories if "importance" in parts else [], importance_got),
        seconds,
        _samples(registry, "agentmem_llm_answers_total", "kind", "verdict"),
        {
            k: sum(v.values())
            for k, v in _samples(registry, "agentmem_llm_requests_total", "outcome", "kind").items()
        },
        tuple(p for p in PARTS if p in parts),
    )


def _samples(
    registry: CollectorRegistry, name: str, outer: str, inner: str
) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                labels = sample.labels
                found.setdefault(labels[outer], {})[labels[inner]] = sample.value
    return found
