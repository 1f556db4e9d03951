"""Batches of texts of near length, for an embedder that pads each batch to its
longest text. Pure.

fastembed's tokenizer pads every text of a call to the longest of that call, so one
long text in a batch of short ones makes the model compute the padding of all the
others. Sorted by length and cut in runs, a batch pays for little padding; the
vectors go back to the texts' own order (:func:`in_order`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["by_length", "in_order"]


def by_length(lengths: Sequence[int], size: int) -> list[list[int]]:
    """The indices of ``lengths`` sorted by length (ties keep their order), cut into
    runs of at most ``size``."""
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + size] for start in range(0, len(order), size)]


def in_order(runs: Sequence[Sequence[int]], results: Sequence[Sequence[T]]) -> list[T]:
    """The results of each run (``results[k][j]`` belongs to index ``runs[k][j]``) put
    back in index order; each index from 0 to the count of results - 1 must appear
    exactly once (so every slot is filled)."""
    total = sum(len(run) for run in runs)
    out: list[T] = [None] * total  # type: ignore[list-item]  # every slot is filled below
    filled = [False] * total
    for run, values in zip(runs, results, strict=True):
        if len(run) != len(values):
            raise ValueError(f"a run of {len(run)} indices has {len(values)} results")
        for index, value in zip(run, values, strict=True):
            if not 0 <= index < total or filled[index]:
                raise ValueError(f"index {index} is out of range or appears twice")
            out[index], filled[index] = value, True
    return out
