"""Text embeddings with fastembed, from the offline model pack or fastembed's own catalogue.

An adapter, not pure (loads model files; implements ``ports.TextEmbedder``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType

from processors.core.text_batches import by_length, in_order

log = logging.getLogger(__name__)

# all-MiniLM-L6-v2 as int8 ONNX, registered with fastembed as a custom model and
# loaded from a local directory (the model pack) instead of a hub download.
MODEL_PACK_NAME = "agentmem/all-MiniLM-L6-v2-int8"
MODEL_PACK_DIM = 384

_register_lock = threading.Lock()


def _register_model_pack() -> None:
    with _register_lock:
        known = {m["model"].lower() for m in TextEmbedding.list_supported_models()}
        if MODEL_PACK_NAME.lower() in known:
            return
        TextEmbedding.add_custom_model(
            model=MODEL_PACK_NAME,
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"),
            dim=MODEL_PACK_DIM,
            model_file="model.onnx",
            description="all-MiniLM-L6-v2, int8 ONNX, from the offline model pack",
            license="apache-2.0",
            size_in_gb=0.03,
        )


class Embedder:
    """Embeds batches of texts to unit vectors; safe to call from a worker thread.

    A batch is embedded in runs of at most ``run_size`` texts of near length
    (:mod:`processors.core.text_batches`): the model computes every text of a call
    padded to the call's longest, so sorted runs spend little on padding."""

    def __init__(
        self,
        model_name: str,
        model_dir: Path | None,
        threads: int | None = None,
        run_size: int = 64,
    ) -> None:
        if run_size < 1:
            raise ValueError(f"run_size must be at least 1, not {run_size}")
        self.run_size = run_size
        kwargs: dict[str, str] = {}
        if model_name == MODEL_PACK_NAME:
            if model_dir is None or not (model_dir / "model.onnx").is_file():
                raise FileNotFoundError(
                    f"model pack not found at {model_dir}; run `make setup` (agentmem stack build)"
                )
            _register_model_pack()
            kwargs["specific_model_path"] = str(model_dir)
        self.model_name = model_name
        # specific_model_path goes through TextEmbedding's **kwargs to the ONNX loader
        self._model = TextEmbedding(model_name, threads=threads, **kwargs)  # type: ignore[arg-type]
        self.dim = int(self._model.embedding_size)
        log.debug("embedding model %s loaded (%d dimensions)", model_name, self.dim)

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> list[list[float]]:
        """The texts' vectors in their order; at most ``batch_size`` (and the run size)
        texts go to the model at a time."""
        if not texts:
            return []
        runs = by_length([len(text) for text in texts], min(batch_size, self.run_size))
        return in_order(runs, [self._vectors([texts[i] for i in run]) for run in runs])

    def _vectors(self, texts: list[str]) -> list[list[float]]:
        vectors = np.stack(list(self._model.embed(texts, batch_size=len(texts))))
        return [row.tolist() for row in vectors.astype(np.float32)]
