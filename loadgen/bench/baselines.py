"""The naive baselines a benchmark is a ratio against, measured in the same run:
fastembed alone on the same texts, and a plain batched import of the same objects
with the Weaviate python client into a collection of the project's own schema."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from loadgen.bench.harness import delete_collection, weaviate_client
from processors.adapters.weaviate.schema import ensure_collection_sync
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
    base: Settings, objects: Sequence[UpsertItem], batch_size: int
) -> dict[str, Any]:
    """The weaviate client's batch import into a fresh collection of the project's schema."""
    name = f"BenchImport{uuid.uuid4().hex[:8]}"
    with weaviate_client(base) as client:
        try:
            ensure_collection_sync(client, name)
            started = time.perf_counter()
            with client.batch.fixed_size(batch_size=batch_size, concurrent_requests=2) as batch:
                for o in objects:
                    batch.add_object(
                        collection=name,
                        properties=o.properties,
                        uuid=o.uuid,
                        vector=o.vector,
                        tenant=o.tenant,
                    )
            seconds = time.perf_counter() - started
            failed = len(client.batch.failed_objects)
        finally:
            delete_collection(base, name)
    if failed:
        raise RuntimeError(f"the Weaviate import baseline lost {failed} objects")
    return {"objects": len(objects), "seconds": seconds, "per_s": len(objects) / seconds}
