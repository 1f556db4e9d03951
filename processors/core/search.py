"""Search options: the fusion methods and their defaults, checked. Pure.

``alpha`` weighs the two halves of a hybrid search: 0 is keyword (BM25) alone, 1 the
vector alone. ``fusion`` is how Weaviate joins them: ``relative_score`` scales each
list's scores to [0, 1] before weighing them, ``ranked`` weighs 1/(60 + rank).
The defaults are the measured best of ``loadgen retrieval`` (README, search).
"""

from __future__ import annotations

from typing import Literal, cast, get_args

Fusion = Literal["relative_score", "ranked"]
FUSIONS: tuple[str, ...] = get_args(Fusion)
DEFAULT_ALPHA = 0.5
DEFAULT_FUSION: Fusion = "relative_score"


def check_options(alpha: float, fusion: str) -> Fusion:
    """``fusion`` as a :data:`Fusion`; ``ValueError`` naming what is wrong otherwise."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    return cast(Fusion, fusion)
