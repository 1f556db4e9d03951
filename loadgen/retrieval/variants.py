"""The search variants the benchmark runs: keyword alone, vectors alone, hybrid at
several weights under both fusion methods, and the SDK's defaults. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from processors.core.search import FUSIONS, check_options


@dataclass(frozen=True)
class Variant:
    name: str
    alpha: float | None  # None: the SDK's default
    fusion: str | None  # None: the SDK's default

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``AgentMem.search`` (none for a default)."""
        given: dict[str, Any] = {}
        if self.alpha is not None:
            given["alpha"] = self.alpha
        if self.fusion is not None:
            given["fusion"] = self.fusion
        return given


def all_variants(alphas: tuple[float, ...] = (0.25, 0.5, 0.6, 0.75, 0.8, 0.9)) -> list[Variant]:
    found = [
        Variant("bm25 (alpha 0)", 0.0, "relative_score"),
        Variant("vector (alpha 1)", 1.0, "relative_score"),
    ]
    for fusion in FUSIONS:
        for alpha in alphas:
            check_options(alpha, fusion)
            found.append(Variant(f"{fusion} alpha {alpha:g}", alpha, fusion))
    found.append(Variant("default", None, None))
    return found


def choose(variants: list[Variant], names: str | None) -> list[Variant]:
    """The variants named in a comma-separated list (substrings), or all of them."""
    if not names:
        return variants
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    chosen = [v for v in variants if any(w in v.name for w in wanted)]
    if not chosen:
        raise ValueError(f"no variant matches {names!r}; known: {[v.name for v in variants]}")
    return chosen
