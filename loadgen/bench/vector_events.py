"""Adds with precomputed vectors for the growth benchmarks, in exact tenant layouts.

:func:`vector_adds` spreads ``count`` adds round robin over ``tenants`` tenants (so
that each of them exists, unlike the synthesizer's random pick), gives each memory an
id under ``prefix`` (chunks of one run never collide) and a unit vector made with
numpy (the synthesizer's per-float Python loop would cost more than the drain).
Deterministic for a seed; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import orjson

from loadgen.bench.baselines import import_objects
from loadgen.replay.records import ReplayRecord
from loadgen.synth import SynthConfig, synth_events
from processors.core.objects import UpsertItem

__all__ = ["tenant_name", "unit_vectors", "vector_adds", "vector_objects", "vector_records"]


def tenant_name(prefix: str, index: int) -> str:
    """The ``index``-th tenant of a layout."""
    return f"{prefix}{index:05d}"


def unit_vectors(count: int, dim: int, seed: int) -> list[list[float]]:
    """``count`` random unit vectors of ``dim`` floats, rounded to 6 decimals."""
    rng = np.random.default_rng(seed)
    raw = rng.random((count, dim)) - 0.5
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    rows: list[list[float]] = np.round(raw, 6).tolist()
    return rows


def vector_adds(
    count: int,
    tenants: int,
    seed: int,
    *,
    dim: int,
    prefix: str,
    tenant_prefix: str = "t",
) -> list[dict[str, object]]:
    """``count`` adds over tenants ``tenant_prefix00000``... round robin, memory ids
    ``prefix`` + the synthesizer's id, each with a precomputed vector."""
    synth = SynthConfig(count=count, tenants=1, seed=seed, update_ratio=0.0, delete_ratio=0.0)
    vectors = unit_vectors(count, dim, seed)
    return [
        {
            **doc,
            "tenant": tenant_name(tenant_prefix, i % tenants),
            "memory_id": f"{prefix}{doc['memory_id']}",
            "vector": vectors[i],
        }
        for i, doc in enumerate(synth_events(synth))
    ]


def vector_objects(
    count: int, tenants: int, seed: int, *, dim: int, prefix: str, tenant_prefix: str = "t"
) -> list[UpsertItem]:
    """The objects the worker would store for :func:`vector_adds` of the same
    arguments: what a bulk load writes straight into Weaviate."""
    docs = vector_adds(count, tenants, seed, dim=dim, prefix=prefix, tenant_prefix=tenant_prefix)
    return import_objects(docs)


def vector_records(docs: Sequence[dict[str, object]]) -> list[ReplayRecord]:
    """The records replay publishes for valid adds, as
    :func:`loadgen.replay.records.parse_line` would make them of their lines, with
    orjson (the standard json module spends seconds on 20,000 vectors)."""
    return [
        ReplayRecord(
            key=str(d["tenant"]).encode(),
            value=orjson.dumps(d),
            event_id=str(d["event_id"]),
            occurred_at_ms=datetime.fromisoformat(str(d["occurred_at"])).timestamp() * 1000,
        )
        for d in docs
    ]
