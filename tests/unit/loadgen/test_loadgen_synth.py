"""loadgen synth: seeded, varied, consistent event streams."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.synth import SynthConfig, agent_names, encode, synth_events, to_line
from processors.core.events import MemoryEvent
from processors.core.validation import Limits, Rejection, parse_event

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def docs_of(**kw: object) -> list[dict[str, object]]:
    return list(synth_events(SynthConfig(start=T0, **kw)))  # type: ignore[arg-type]


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    a = [to_line(d) for d in docs_of(count=300, seed=5, invalid_ratio=0.1, duplicate_ratio=0.1)]
    b = [to_line(d) for d in docs_of(count=300, seed=5, invalid_ratio=0.1, duplicate_ratio=0.1)]
    c = [to_line(d) for d in docs_of(count=300, seed=6, invalid_ratio=0.1, duplicate_ratio=0.1)]
    assert a == b
    assert a != c


def test_valid_events_validate_and_follow_the_memories_lifecycle() -> None:
    docs = docs_of(
        count=3000, tenants=20, update_ratio=0.2, delete_ratio=0.1, erase_ratio=0.05, seed=2
    )
    live: dict[tuple[str, str], bool] = {}
    types: Counter[str] = Counter()
    for doc in docs:
        event = parse_event(encode(doc)[1], Limits())
        assert isinstance(event, MemoryEvent), event
        key = (event.tenant, event.memory_id or "")
        types[event.type.value] += 1
        if event.type.value == "memory.add":
            assert key not in live, "adds create new memories"
            live[key] = True
        else:
            assert live.get(key), f"{event.type} of a memory that is not live: {key}"
            if event.type.value in ("memory.delete", "memory.erase"):
                live[key] = False
    assert set(types) == {"memory.add", "memory.update", "memory.delete", "memory.erase"}
    assert 0.15 < types["memory.update"] / len(docs) < 0.25


def test_invalid_events_are_rejected_for_many_reasons() -> None:
    docs = docs_of(count=4000, invalid_ratio=0.1, seed=3)
    raws = [d for d in docs if "_raw" in d]
    assert 0.08 < len(raws) / len(docs) < 0.12
    reasons: Counter[str] = Counter()
    for doc in raws:
        outcome = parse_event(str(doc["_raw"]).encode(), Limits())
        if isinstance(outcome, Rejection):
            reasons[outcome.reason] += 1
        else:  # a well-formed update of a memory that never existed: refused when applied
            assert outcome.type.value == "memory.update"
            assert str(outcome.memory_id).startswith("ghost-")
            reasons["memory_not_found"] += 1
    assert len(reasons) >= 8, reasons


def test_duplicates_resend_an_earlier_event_exactly() -> None:
    docs = docs_of(count=2000, duplicate_ratio=0.1, seed=4)
    seen: dict[str, str] = {}
    repeats = 0
    for doc in docs:
        line = to_line(doc)
        event_id = str(doc["event_id"])
        if event_id in seen:
            assert seen[event_id] == line
            repeats += 1
        seen[event_id] = line
    assert 0.07 < repeats / len(docs) < 0.13


def test_many_tenants_skewed_and_many_agents() -> None:
    docs = docs_of(count=5000, tenants=100, agents=30, tenant_skew=1.0, seed=8)
    tenants = Counter(str(d["tenant"]) for d in docs)
    agents = {str(d["agent_id"]) for d in docs}
    ranked = [n for _, n in tenants.most_common()]
    assert len(tenants) > 60
    assert ranked[0] > 5 * ranked[len(ranked) // 2]  # a few busy users, a long tail
    assert agents == set(agent_names(30))
    assert len(set(agent_names(30))) == 30
    uniform = Counter(str(d["tenant"]) for d in docs_of(count=5000, tenants=100, seed=8))
    assert max(uniform.values()) < 3 * (5000 / 100)


def test_phrasing_is_varied() -> None:
    contents = [str(d["content"]) for d in docs_of(count=2000, seed=9) if "content" in d]
    assert len(set(contents)) > 0.8 * len(contents)
    first_words = {c.split()[0] for c in contents}
    assert len(first_words) > 40


def test_recorded_spacing_even_and_poisson() -> None:
    even = docs_of(count=100, spacing_ms=50)
    times = [datetime.fromisoformat(str(d["occurred_at"])) for d in even]
    assert times[0] == T0
    assert all((b - a).total_seconds() == pytest.approx(0.05) for a, b in pairwise(times))
    poisson = docs_of(count=4000, spacing_ms=20, arrival="poisson", seed=1)
    stamps = [datetime.fromisoformat(str(d["occurred_at"])).timestamp() for d in poisson]
    gaps = [b - a for a, b in pairwise(stamps)]
    assert all(g >= 0 for g in gaps)
    assert sum(gaps) / len(gaps) == pytest.approx(0.02, rel=0.1)
    assert max(gaps) > 3 * 0.02  # bursty, not even


def test_vectors_are_unit_vectors_of_the_asked_size() -> None:
    docs = docs_of(count=50, vector_dim=384, update_ratio=0.3, delete_ratio=0.1)
    with_content = [d for d in docs if "content" in d]
    assert with_content and all("vector" in d for d in with_content)
    for doc in with_content:
        vector = doc["vector"]
        assert isinstance(vector, list) and len(vector) == 384
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-3)
        assert isinstance(parse_event(encode(doc)[1], Limits()), MemoryEvent)


@pytest.mark.parametrize(
    "bad",
    [
        {"invalid_ratio": 0.6, "duplicate_ratio": 0.6},
        {"update_ratio": -0.1},
        {"tenants": 0},
        {"arrival": "bursty"},
        {"mode": "slow"},
    ],
)
def test_nonsense_configs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SynthConfig(**bad)  # type: ignore[arg-type]


def test_cli_writes_jsonl_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    argv = ["synth", "--count", "250", "--agents", "20", "--invalid-ratio", "0.1", "--out"]
    assert main([*argv, str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 250
    parsed = 0
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        parsed += isinstance(doc, dict) and "tenant" in doc
    assert 200 <= parsed < 250
