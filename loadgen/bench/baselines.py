"""The naive baselines a benchmark is a ratio against, measured in the same run:
fastembed alone on the same texts, and the best of plain batched imports of the same
objects with the Weaviate python client into a collection of the project's own
schema (:mod:`loadgen.bench.imports`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from loadgen.bench.imports import BASELINE_WAYS, import_seconds
from processors.core.objects import UpsertItem, object_properties, object_uuid
from processors.core.state import MemoryState
from streams import clients
from streams.settings import Settings


def model_dir(settings: Settings) -> Path:
    """The offline model pack the worker loads."""
    return clients.model_pack_dir(settings.cache_dir)


def embed_rate(texts: list[str], batch: int, model_dir: Path) -> float:
    """fastembed alone on the texts, in this process (the baseline): the same model
    pack and batch size as the worker, called directly, without our code around it."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = "bench/all-MiniLM-L6-v2-int8"
    if name not in {m["model"] for m in TextEmbedding.list_supported_models()}:
        TextEmbedding.add_custom_model(
            model=name,
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"),
            dim=384,
            model_file="model.onnx",
        )
    model = TextEmbedding(name, specific_model_path=str(model_dir))
    list(model.embed(texts[:batch], batch_size=batch))  # warm-up
    started = time.perf_counter()
    list(model.embed(texts, batch_size=batch))
    return len(texts) / (time.perf_counter() - started)


def import_objects(docs: Sequence[dict[str, object]]) -> list[UpsertItem]:
    """The objects the worker would store for these adds (same ids and properties),
    as a plain import writes them."""
    out = []
    for d in docs:
        tenant, memory_id = str(d["tenant"]), str(d["memory_id"])
        vector = d.get("vector")
        if not isinstance(vector, list):
            raise ValueError(f"event {d.get('event_id')} carries no vector")
        occurred = datetime.fromisoformat(str(d["occurred_at"]))
        metadata = d.get("metadata")
        state = MemoryState(
            version=1,
            content=str(d["content"]),
            content_hash=None,
            created_at=occurred.isoformat(),
            agent_id=str(d["agent_id"]),
            run_id=str(d["run_id"]),
            metadata=dict(metadata) if isinstance(metadata, dict) else {},
        )
        properties = object_properties(memory_id, state, str(d["event_id"]), occurred, occurred)
        out.append(
            UpsertItem(
                tenant, object_uuid(tenant, memory_id), properties, [float(v) for v in vector]
            )
        )
    return out


def weaviate_import_rate(
    base: Settings,
    objects: Sequence[UpsertItem],
    batch_size: int,
    ways: Sequence[str] = BASELINE_WAYS,
) -> dict[str, Any]:
    """The best of plain imports of ``objects`` (:mod:`loadgen.bench.imports`), each
    into a fresh collection of the project's schema: ``per_s`` is the best rate,
    ``best`` its way, ``per_s_by_way`` every rate."""
    rates = {way: len(objects) / import_seconds(base, objects, batch_size, way) for way in ways}
    best = max(rates, key=rates.__getitem__)
    return {
        "objects": len(objects),
        "seconds": len(objects) / rates[best],
        "per_s": rates[best],
        "best": best,
        "per_s_by_way": rates,
    }
