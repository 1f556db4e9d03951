"""A seeded stream of memory events (adds, updates, deletes, invalid ones) and the state
it must produce, computed independently of the worker's code."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

SUBJECTS = [
    "prefers window seats on long flights",
    "is allergic to peanuts",
    "runs a marathon every spring",
    "works as a nurse on night shifts",
    "keeps a vegetable garden with tomatoes",
    "learns Japanese on weekday mornings",
    "drives an electric hatchback",
    "has two cats called Miso and Tofu",
    "takes the train to work in Lyon",
    "plays bass in a jazz trio",
    "reads science fiction before bed",
    "is saving for a sailboat",
    "likes oat milk in coffee",
    "volunteers at the food bank on Saturdays",
    "has a meeting with the dentist next Tuesday",
    "supports the local football club",
    "bakes sourdough bread every weekend",
    "is planning a trip to Patagonia",
    "uses a standing desk at home",
    "collects vintage fountain pens",
]
AGENTS = ["planner", "coach", "assistant", "support"]

INVALID_KINDS = {
    "bad_json": "invalid_json",
    "wrong_type": "invalid_field",
    "unknown_type": "unknown_type",
    "oversize": "content_too_large",
    "bad_utf8": "invalid_utf8",
    "missing_tenant": "missing_tenant",
    "wrong_vector": "vector_dimension",
}


@dataclass
class Expected:
    live: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    history_keys: set[str] = field(default_factory=set)
    applied_event_ids: set[str] = field(default_factory=set)
    invalid: dict[bytes, str] = field(default_factory=dict)  # raw value -> reason
    # history keys an erase tombstoned (their latest record is None)
    erased_history_keys: set[str] = field(default_factory=set)
    # events published a second time (same bytes): acknowledged as duplicates
    resent_event_ids: set[str] = field(default_factory=set)


@dataclass
class Scenario:
    events: list[tuple[bytes, bytes]]  # (key, value) in publish order
    expected: Expected


def _event(
    type_: str, tenant: str, memory_id: str, content: str | None, rng: random.Random
) -> dict[str, object]:
    doc: dict[str, object] = {
        "schema": "agentmem.memory/v1",
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "type": type_,
        "tenant": tenant,
        "agent_id": rng.choice(AGENTS),
        "memory_id": memory_id,
        "metadata": {"source": "chat"},
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    if content is not None:
        doc["content"] = content
    return doc


def _invalid(kind: str, tenant: str, rng: random.Random) -> bytes:
    base = _event("memory.add", tenant, f"bad-{rng.getrandbits(40)}", "fine text", rng)
    if kind == "bad_json":
        return (
            b'{"schema": "agentmem.memory/v1", "type": "memory.add", '
            + str(rng.getrandbits(30)).encode()
        )
    if kind == "wrong_type":
        base["content"] = rng.getrandbits(20)
    elif kind == "unknown_type":
        base["type"] = "memory.rename"
    elif kind == "oversize":
        base["content"] = "x" * (33 * 1024)
    elif kind == "bad_utf8":
        return (
            b'{"tenant": "'
            + tenant.encode()
            + b'", "content": "\xff\xfe'
            + str(rng.getrandbits(30)).encode()
            + b'"}'
        )
    elif kind == "missing_tenant":
        del base["tenant"]
    elif kind == "wrong_vector":
        base["vector"] = [0.1] * 17
    return json.dumps(base).encode()


def generate(
    n: int,
    tenants: int,
    seed: int,
    invalid_ratio: float = 0.05,
    *,
    erase_ratio: float = 0.0,
    resend_ratio: float = 0.0,
) -> Scenario:
    """``n`` events over ``tenants`` tenants: adds, updates, deletes and, with the
    ratios, erases (of a live or deleted memory) and valid events sent once more."""
    rng = random.Random(seed)
    names = [f"tenant-{seed}-{i:03d}" for i in range(tenants)]
    live: dict[str, dict[str, tuple[str, int]]] = {t: {} for t in names}
    gone: dict[str, dict[str, int]] = {t: {} for t in names}  # deleted, not erased
    exp = Expected()
    events: list[tuple[bytes, bytes]] = []
    sent: list[tuple[bytes, bytes, str]] = []
    counter = 0
    kinds = list(INVALID_KINDS)
    for i in range(n):
        tenant = rng.choice(names)
        if rng.random() < invalid_ratio:
            kind = kinds[i % len(kinds)]
            raw = _invalid(kind, tenant, rng)
            exp.invalid[raw] = INVALID_KINDS[kind]
            events.append((tenant.encode(), raw))
            continue
        if sent and rng.random() < resend_ratio:
            key, value, event_id = rng.choice(sent)
            exp.resent_event_ids.add(event_id)
            events.append((key, value))
            continue
        memories = live[tenant]
        roll = rng.random()
        if erase_ratio and roll < erase_ratio and (memories or gone[tenant]):
            pool = sorted(memories) + sorted(gone[tenant])
            mid = rng.choice(pool)
            before = memories.pop(mid)[1] if mid in memories else gone[tenant].pop(mid)
            version = before + 1
            doc = _event("memory.erase", tenant, mid, None, rng)
            for v in range(1, version):
                exp.history_keys.discard(f"{tenant}/{mid}/{v}")
                exp.erased_history_keys.add(f"{tenant}/{mid}/{v}")
        elif not memories or roll < 0.55:
            counter += 1
            mid = f"mem-{counter}"
            content = f"{rng.choice(SUBJECTS)} (note {counter})"
            version = 1
            doc = _event("memory.add", tenant, mid, content, rng)
            memories[mid] = (content, version)
        elif roll < 0.85:
            mid = rng.choice(sorted(memories))
            version = memories[mid][1] + 1
            content = f"{rng.choice(SUBJECTS)} (note {mid} v{version})"
            doc = _event("memory.update", tenant, mid, content, rng)
            memories[mid] = (content, version)
        else:
            mid = rng.choice(sorted(memories))
            version = memories.pop(mid)[1] + 1
            gone[tenant][mid] = version
            doc = _event("memory.delete", tenant, mid, None, rng)
        exp.versions[(tenant, mid)] = version
        exp.history_keys.add(f"{tenant}/{mid}/{version}")
        exp.applied_event_ids.add(str(doc["event_id"]))
        value = json.dumps(doc).encode()
        events.append((tenant.encode(), value))
        sent.append((tenant.encode(), value, str(doc["event_id"])))
    exp.live = {t: m for t, m in live.items() if m}
    return Scenario(events, exp)


def long_lived(tenant: str, memory_id: str, changes: int, seed: int) -> Scenario:
    """One memory changed ``changes`` times (an add, then updates), then erased."""
    rng = random.Random(seed)
    exp = Expected()
    events: list[tuple[bytes, bytes]] = []
    for version in range(1, changes + 2):
        if version == 1:
            doc = _event("memory.add", tenant, memory_id, "first words", rng)
        elif version <= changes:
            doc = _event("memory.update", tenant, memory_id, f"words, take {version}", rng)
        else:
            doc = _event("memory.erase", tenant, memory_id, None, rng)
        exp.applied_event_ids.add(str(doc["event_id"]))
        exp.versions[(tenant, memory_id)] = version
        events.append((tenant.encode(), json.dumps(doc).encode()))
    exp.erased_history_keys = {f"{tenant}/{memory_id}/{v}" for v in range(1, changes + 1)}
    exp.history_keys = {f"{tenant}/{memory_id}/{changes + 1}"}
    return Scenario(events, exp)
