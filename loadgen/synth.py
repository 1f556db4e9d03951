"""Synthetic memory events: varied domains and phrasing, many tenants and agents,
adds/updates/deletes with tunable duplicate and invalid ratios. Seeded and pure."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

NAMES = [
    "Ana",
    "Ben",
    "Chloé",
    "Dmitri",
    "Emeka",
    "Fatima",
    "Giulia",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
]
CITIES = [
    "Lisbon",
    "Osaka",
    "Nairobi",
    "Montréal",
    "Bergen",
    "Valparaíso",
    "Tbilisi",
    "Austin",
    "Kraków",
    "Hanoi",
    "Edinburgh",
    "Porto Alegre",
    "Seville",
    "Tallinn",
    "Perth",
]
FOODS = [
    "ramen",
    "sourdough",
    "tacos al pastor",
    "dark chocolate",
    "oat milk lattes",
    "kimchi",
    "falafel",
    "green curry",
    "blueberry pancakes",
    "espresso",
    "sushi",
    "lentil soup",
]
HOBBIES = [
    "bouldering",
    "playing the cello",
    "trail running",
    "pottery",
    "chess",
    "birdwatching",
    "film photography",
    "sailing",
    "salsa dancing",
    "woodworking",
    "bread baking",
    "go",
]
JOBS = [
    "nurse",
    "backend engineer",
    "high-school teacher",
    "architect",
    "paramedic",
    "product designer",
    "data analyst",
    "carpenter",
    "pharmacist",
    "translator",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
AGENTS = ["planner", "coach", "assistant", "support", "travel-agent", "health-bot"]

TEMPLATES: dict[str, list[str]] = {
    "preference": [
        "{name} prefers {food} over anything else for breakfast.",
        "User says they can't stand {food} and would rather skip the meal.",
        "Prefers window seats and always books an early flight.",
        "Likes to get summaries as bullet points, not long paragraphs.",
    ],
    "health": [
        "{name} is allergic to peanuts and carries an epinephrine pen.",
        "Has been training for a half marathon, running {n} km a week.",
        "Mentioned trouble sleeping since starting night shifts as a {job}.",
        "Takes vitamin D in winter on the doctor's advice.",
    ],
    "work": [
        "{name} works as a {job} in {city}.",
        "Started a new role as {job} and is nervous about the first review in {n} weeks.",
        "Their team ships a release every {day}; Thursdays are for planning.",
        "Is preparing a talk about resilient systems for a conference in {city}.",
    ],
    "travel": [
        "Planning a trip to {city} in the spring, budget around {n}00 euros.",
        "{name} just came back from {city} and loved the street food.",
        "Wants to visit {city} by train rather than flying.",
        "Their passport expires in {n} months; remind them before booking.",
    ],
    "family": [
        "{name}'s daughter practises {hobby} every {day} evening.",
        "Has two cats and a dog; the dog is afraid of thunderstorms.",
        "Their mother lives in {city} and they call her every {day}.",
        "Celebrating a wedding anniversary next {day} with dinner out.",
    ],
    "schedule": [
        "Dentist appointment on {day} at {n}:30.",
        "Blocks {day} mornings for deep work and declines meetings then.",
        "Weekly call with {name} every {day} at {n} pm.",
        "Needs to renew the car insurance before the end of the month.",
    ],
    "hobby": [
        "{name} has been getting into {hobby} and goes twice a week.",
        "Is learning {hobby} from online videos and a local club in {city}.",
        "Gave up {hobby} after an injury but wants to start again.",
        "Collects vintage fountain pens and restores them on weekends.",
    ],
}


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        name=rng.choice(NAMES),
        city=rng.choice(CITIES),
        food=rng.choice(FOODS),
        hobby=rng.choice(HOBBIES),
        job=rng.choice(JOBS),
        day=rng.choice(DAYS),
        n=rng.randint(2, 12),
    )


def memory_text(rng: random.Random) -> str:
    domain = rng.choice(sorted(TEMPLATES))
    return _fill(rng.choice(TEMPLATES[domain]), rng)


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
    spacing_ms: float = 0.0  # occurred_at step between events


def synth_events(config: SynthConfig) -> Iterator[dict[str, object]]:
    """Event documents in publish order (invalid ones are dicts with a ``_raw`` payload)."""
    rng = random.Random(config.seed)
    tenants = [f"user-{i:04d}" for i in range(config.tenants)]
    live: dict[str, list[str]] = {t: [] for t in tenants}
    contents: dict[tuple[str, str], str] = {}
    start = config.start or datetime.now(UTC)
    for i in range(config.count):
        tenant = rng.choice(tenants)
        occurred = (start + timedelta(milliseconds=i * config.spacing_ms)).isoformat()
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        base: dict[str, object] = {
            "schema": "agentmem.memory/v1",
            "event_id": event_id,
            "tenant": tenant,
            "agent_id": rng.choice(AGENTS),
            "run_id": f"run-{rng.randint(1, 400)}",
            "metadata": {"source": rng.choice(["chat", "email", "voice", "calendar"])},
            "mode": config.mode,
            "occurred_at": occurred,
        }
        roll = rng.random()
        if roll < config.invalid_ratio:
            yield {
                "_raw": rng.choice(
                    [
                        '{"schema": "agentmem.memory/v1", "type": "memory.add", "tenant": ',
                        json.dumps({**base, "type": "memory.teleport", "content": "x"}),
                        json.dumps({**base, "type": "memory.add", "content": 42}),
                        json.dumps(
                            {**base, "type": "memory.add", "tenant": "", "content": "no tenant"}
                        ),
                    ]
                )
            }
            continue
        roll -= config.invalid_ratio
        memories = live[tenant]
        if memories and roll < config.duplicate_ratio:
            mid = rng.choice(memories)
            yield {
                **base,
                "type": "memory.add",
                "memory_id": mid,
                "content": contents[(tenant, mid)],
            }
            continue
        roll -= config.duplicate_ratio
        if memories and roll < config.delete_ratio:
            mid = memories.pop(rng.randrange(len(memories)))
            yield {**base, "type": "memory.delete", "memory_id": mid}
            continue
        roll -= config.delete_ratio
        if memories and roll < config.update_ratio:
            mid = rng.choice(memories)
            contents[(tenant, mid)] = f"{memory_text(rng)} (updated)"
            yield {
                **base,
                "type": "memory.update",
                "memory_id": mid,
                "content": contents[(tenant, mid)],
            }
            continue
        mid = f"m-{i:07d}"
        memories.append(mid)
        contents[(tenant, mid)] = memory_text(rng)
        yield {**base, "type": "memory.add", "memory_id": mid, "content": contents[(tenant, mid)]}


def encode(doc: dict[str, object]) -> tuple[bytes, bytes]:
    """(key, value) bytes of one synthesized document, as published to memory.events."""
    if "_raw" in doc:
        return b"invalid", str(doc["_raw"]).encode()
    return str(doc["tenant"]).encode(), json.dumps(doc, ensure_ascii=False).encode()
