"""Synthetic memory events: varied domains and phrasing, many tenants and agents,
adds/updates/deletes/erases with tunable duplicate and invalid ratios. Seeded and pure.

Tenants are picked with a Zipf-like skew (a few busy users, a long tail); each tenant
talks mostly to its own "home" agent. Duplicates are exact re-publications of an
earlier event (same ``event_id``, as an at-least-once producer would send), which
the worker acknowledges as ``noop:duplicate_event``. Invalid events cover the
rejection reasons of the validator and one refusal of the planner
(``memory_not_found``); they are yielded as ``{"_raw": <text>}``.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from loadgen.vocabulary import (
    AGENT_ROLES,
    AGENTS,
    APPS,
    CITIES,
    DAYS,
    DOMAINS,
    FOODS,
    HOBBIES,
    JOBS,
    LANGUAGES,
    MONTHS,
    NAMES,
    PETS,
    PREFIXES,
    SOURCES,
    SUFFIXES,
    TEMPLATES,
)

RECENT = 1000  # duplicates re-send one of the last RECENT events


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        name=rng.choice(NAMES),
        city=rng.choice(CITIES),
        food=rng.choice(FOODS),
        hobby=rng.choice(HOBBIES),
        job=rng.choice(JOBS),
        day=rng.choice(DAYS),
        month=rng.choice(MONTHS),
        language=rng.choice(LANGUAGES),
        pet=rng.choice(PETS),
        app=rng.choice(APPS),
        source=rng.choice(SOURCES),
        n=rng.randint(2, 12),
    )


def memory_text(rng: random.Random) -> str:
    """One memory: a fact from a random domain, sometimes wrapped as a note."""
    domain = rng.choice(DOMAINS)
    fact = _fill(rng.choice(TEMPLATES[domain]), rng)
    return _fill(rng.choice(PREFIXES), rng) + fact + _fill(rng.choice(SUFFIXES), rng)


def random_vector(rng: random.Random, dim: int) -> list[float]:
    """A unit vector with 6 decimals (a stand-in for a precomputed embedding)."""
    raw = [rng.random() - 0.5 for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 6) for v in raw]


@dataclass(frozen=True)
class SynthConfig:
    count: int = 1000
    tenants: int = 50
    seed: int = 1
    update_ratio: float = 0.15
    delete_ratio: float = 0.05
    duplicate_ratio: float = 0.0
    invalid_ratio: float = 0.0
    mode: str = "fast"
    start: datetime | None = None  # occurred_at of the first event; None: now
    spacing_ms: float = 0.0  # occurred_at step between events (the mean with poisson)
    agents: int = len(AGENTS)
    erase_ratio: float = 0.0
    tenant_skew: float = 0.0  # Zipf exponent of tenant activity; 0 is uniform
    arrival: str = "even"  # "even" or "poisson" gaps between occurred_at
    vector_dim: int = 0  # > 0: valid adds and updates carry a precomputed vector

    def __post_init__(self) -> None:
        ratios = (
            self.update_ratio,
            self.delete_ratio,
            self.duplicate_ratio,
            self.invalid_ratio,
            self.erase_ratio,
        )
        if any(r < 0 for r in ratios) or sum(ratios) > 1:
            raise ValueError("ratios must be >= 0 and add up to at most 1")
        if self.count < 0 or self.tenants < 1 or self.agents < 1:
            raise ValueError("count must be >= 0, tenants and agents >= 1")
        if self.arrival not in ("even", "poisson"):
            raise ValueError("arrival is 'even' or 'poisson'")
        if self.mode not in ("fast", "intelligent"):
            raise ValueError("mode is 'fast' or 'intelligent'")
        if self.spacing_ms < 0 or self.tenant_skew < 0 or self.vector_dim < 0:
            raise ValueError("spacing, skew and vector size must not be negative")


def agent_names(count: int) -> list[str]:
    """``count`` agent ids: the roles first, then numbered copies of them."""
    return [
        AGENT_ROLES[i % len(AGENT_ROLES)]
        + ("" if i < len(AGENT_ROLES) else f"-{i // len(AGENT_ROLES)}")
        for i in range(count)
    ]


def _invalid_payload(
    rng: random.Random, base: dict[str, object], tenant_memories: list[str]
) -> str:
    """One event the worker must dead-letter (with its reason in the comment)."""
    kind = rng.randrange(9)
    if kind == 0:  # invalid_json
        return '{"schema": "agentmem.memory/v1", "type": "memory.add", "tenant": '
    if kind == 1:  # unknown_type
        return json.dumps({**base, "type": "memory.teleport", "content": "x"})
    if kind == 2:  # invalid_field
        return json.dumps({**base, "type": "memory.add", "content": 42})
    if kind == 3:  # missing_tenant
        return json.dumps({**base, "type": "memory.add", "tenant": "", "content": "no tenant"})
    if kind == 4:  # vector_dimension
        return json.dumps({**base, "type": "memory.add", "content": "short", "vector": [0.1] * 3})
    if kind == 5:  # missing_memory_id
        return json.dumps({**base, "type": "memory.update", "content": "no id"})
    if kind == 6:  # missing_content
        return json.dumps({**base, "type": "memory.add", "content": "   "})
    if kind == 7:  # not_an_object
        return json.dumps([base["event_id"], "memory.add"])
    # memory_not_found: an update of a memory that never existed (refused when applied)
    missing = f"ghost-{rng.getrandbits(32):08x}"
    while missing in tenant_memories:
        missing += "x"
    return json.dumps({**base, "type": "memory.update", "memory_id": missing, "content": "?"})


def _change(
    rng: random.Random,
    config: SynthConfig,
    base: dict[str, object],
    memories: list[str],
    new_id: str,
    roll: float,
) -> dict[str, object]:
    """A delete, erase, update or add of one of the tenant's live ``memories`` (kept
    up to date), chosen by ``roll`` against the config's ratios."""
    if memories and roll < config.delete_ratio + config.erase_ratio:
        mid = memories.pop(rng.randrange(len(memories)))
        kind = "memory.delete" if roll < config.delete_ratio else "memory.erase"
        return {**base, "type": kind, "memory_id": mid}
    if memories and roll < config.delete_ratio + config.erase_ratio + config.update_ratio:
        mid = rng.choice(memories)
        return {
            **base,
            "type": "memory.update",
            "memory_id": mid,
            "content": f"{memory_text(rng)} (updated)",
        }
    memories.append(new_id)
    return {**base, "type": "memory.add", "memory_id": new_id, "content": memory_text(rng)}


def synth_events(config: SynthConfig) -> Iterator[dict[str, object]]:
    """Event documents in publish order (invalid ones are dicts with a ``_raw`` payload)."""
    rng = random.Random(config.seed)
    tenants = [f"user-{i:04d}" for i in range(config.tenants)]
    cum_weights = list(accumulate(1.0 / (r + 1) ** config.tenant_skew for r in range(len(tenants))))
    agents = agent_names(config.agents)
    home_agent = {t: agents[i % len(agents)] for i, t in enumerate(tenants)}
    live: dict[str, list[str]] = {t: [] for t in tenants}
    published: list[dict[str, object]] = []
    start = config.start or datetime.now(UTC)
    offset_ms = 0.0
    for i in range(config.count):
        if i and config.spacing_ms:
            gap = config.spacing_ms
            offset_ms += rng.expovariate(1.0 / gap) if config.arrival == "poisson" else gap
        tenant = rng.choices(tenants, cum_weights=cum_weights)[0]
        occurred = (start + timedelta(milliseconds=offset_ms)).isoformat()
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        agent = home_agent[tenant] if rng.random() < 0.7 else rng.choice(agents)
        base: dict[str, object] = {
            "schema": "agentmem.memory/v1",
            "event_id": event_id,
            "tenant": tenant,
            "agent_id": agent,
            "run_id": f"run-{rng.randint(1, 400)}",
            "metadata": {"source": rng.choice(SOURCES)},
            "mode": config.mode,
            "occurred_at": occurred,
        }
        roll = rng.random()
        memories = live[tenant]
        if roll < config.invalid_ratio:
            yield {"_raw": _invalid_payload(rng, base, memories)}
            continue
        roll -= config.invalid_ratio
        if published and roll < config.duplicate_ratio:
            # a retry re-sends something recent
            yield published[rng.randrange(max(0, len(published) - RECENT), len(published))]
            continue
        roll -= config.duplicate_ratio
        doc = _change(rng, config, base, memories, f"m-{i:07d}", roll)
        if config.vector_dim and "content" in doc:
            doc["vector"] = random_vector(rng, config.vector_dim)
        if config.duplicate_ratio:
            published.append(doc)
        yield doc


def encode(doc: dict[str, object]) -> tuple[bytes, bytes]:
    """(key, value) bytes of one synthesized document, as published to memory.events."""
    if "_raw" in doc:
        return b"invalid", str(doc["_raw"]).encode()
    return str(doc["tenant"]).encode(), json.dumps(doc, ensure_ascii=False).encode()


def to_line(doc: dict[str, object]) -> str:
    """One JSONL line (without the newline): the bytes replay publishes."""
    return encode(doc)[1].decode()
