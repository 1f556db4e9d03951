"""Intelligent mode against a real model: Qwen2.5-Coder-0.5B-Instruct served by
llama-cpp-python (built into the cache by ``make setup``), a real worker, Kafka and
Weaviate. The model's answers are whatever they are: the test holds that each
memory ends enriched, partial or dead-lettered with a reason (none lost, none
stuck), that every answer is counted as valid, repaired or invalid, and that the
server's refusal of ``json_schema`` is detected without opening the circuit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from loadgen.quality.dataset import decision_cases, memory_cases
from processors.core.events import MemoryEvent, new_event
from streams.settings import Settings
from streams.stack import launcher
from streams.stack.llm_model import MODELS, ensure_llm_model
from streams.stack.llm_runtime import ensure_llm_runtime
from streams.stack.llm_server import LOCAL_TUNING, server_argv
from tests.integration.harness import WorkerProcess, isolated_settings
from tests.integration.intelligent import fetch_enriched, indexed_and_enriched, records
from tests.integration.test_pipeline import publish

SIZE: Literal["0.5b"] = "0.5b"
TENANTS = 22  # two quality-set memories a tenant: decisions mostly by the pairs below
PAIRS = 3  # decision pairs: an older memory, then one that updates, deletes or repeats it


@pytest.fixture(scope="module")
def llama(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The model server on a free port; yields its base URL."""
    ensure_llm_runtime(stack.cache_dir)  # `make setup` built it; minutes if not
    ensure_llm_model(stack.cache_dir, SIZE)
    served = Settings(
        cache_dir=stack.cache_dir, llm_local_size=SIZE, llm_local_port=launcher.free_port()
    )
    log = tmp_path_factory.mktemp("llama") / "llama.log"
    with launcher.spawn(server_argv(served), log, what="the LLM server") as child:
        base_url = f"http://127.0.0.1:{served.llm_local_port}/v1"
        child.wait_http(f"{base_url}/models", 120)
        yield base_url


def memories() -> list[MemoryEvent]:
    """50 intelligent memories: quality-set texts over a few tenants, and decision pairs
    (the older memory first) in tenants of their own."""
    pairs = [c for c in decision_cases() if c.expected != "ADD"][:PAIRS]
    texts = [c.memory for c in memory_cases()][: 50 - 2 * PAIRS]
    events = [
        new_event("memory.add", f"real-{i % TENANTS}", content=text, mode="intelligent")
        for i, text in enumerate(texts)
    ]
    for n, case in enumerate(pairs):
        older = case.existing[case.target or 0]
        events += [
            new_event("memory.add", f"pair-{n}", content=text, mode="intelligent")
            for text in (older, case.memory)
        ]
    return events


def check_outcomes(
    events: list[MemoryEvent], enriched: dict[str, dict[str, Any]], dead: list[dict[str, Any]]
) -> Counter[str]:
    """Each memory has one outcome; a partial or failed one has its dead letter with a
    reason, and the raw answer when the model answered unusably."""
    letters = {d["event_id"]: d for d in dead if d.get("stage") == "enrich"}
    outcomes: Counter[str] = Counter()
    for e in events:
        ack = enriched[e.event_id]
        outcomes[ack["outcome"]] += 1
        assert ack["outcome"] in ("enriched", "partial", "failed", "stale"), ack
        if ack["outcome"] in ("partial", "failed"):
            letter = letters[e.event_id]
            assert letter["reason"] and letter["detail"], letter
            assert set(ack["failures"]) <= {"facts", "importance", "decision", "write"}
            for kind, why in ack["failures"].items():
                if why.startswith("invalid_answer"):
                    assert letter["context"][f"{kind}_answer"] is not None, letter
        else:
            assert e.event_id not in letters, letters.get(e.event_id)
    assert not [d for d in dead if d.get("reason") == "rejected"], "a request was refused"
    return outcomes


def check_answers_accounted(worker: WorkerProcess) -> None:
    """Every answer that came back is counted once as valid, repaired or invalid."""
    answered = worker.metric("agentmem_llm_requests_total", {"outcome": "ok"}) + worker.metric(
        "agentmem_llm_requests_total", {"outcome": "invalid_answer"}
    )
    verdicts = sum(
        worker.metric("agentmem_llm_answers_total", {"verdict": v})
        for v in ("valid", "repaired", "invalid")
    )
    assert answered > 0
    assert verdicts == answered
    items = sum(
        worker.metric("agentmem_llm_answer_items_total", {"result": r})
        for r in ("valid", "repaired", "missing")
    )
    assert items >= 2 * 50  # facts and importance of every memory, at least once
    # llama-cpp-python refuses json_schema: a refusal per processor at most, and no outage
    assert 1 <= worker.metric("agentmem_llm_requests_total", {"outcome": "rejected"}) <= 3
    assert worker.metric("agentmem_llm_circuit_state") == 0
    for outage in ("server_error", "timeout", "connection_error", "circuit_open"):
        assert worker.metric("agentmem_llm_requests_total", {"outcome": outage}) == 0, outage


async def test_fifty_memories_through_a_real_model(
    stack: Settings, llama: str, tmp_path: Path
) -> None:
    settings = isolated_settings(
        stack,
        tmp_path,
        llm_base_url=llama,
        llm_model=MODELS[SIZE].alias,
        enrich_linger_ms=300,
        decision_candidates=3,
        **LOCAL_TUNING,
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        events = memories()
        assert len(events) == 50
        await publish(settings, records(events))
        indexed, enriched, dead = await indexed_and_enriched(settings, worker, events, 540)
        assert all(indexed[e.event_id]["outcome"] == "applied" for e in events)
        outcomes = check_outcomes(events, enriched, dead)
        check_answers_accounted(worker)
        # enriched memories carry what the model said about them
        state = fetch_enriched(settings)
        for e in events:
            obj = state.get(e.tenant, {}).get(e.resolved_memory_id)
            if enriched[e.event_id]["outcome"] == "enriched" and obj is not None:
                assert obj["importance"] is not None and 0.0 <= obj["importance"] <= 1.0
                assert obj["facts"] is not None
        assert outcomes["enriched"] >= 25, outcomes  # a working model, not a broken path
    finally:
        worker.stop()
    assert worker.exited
