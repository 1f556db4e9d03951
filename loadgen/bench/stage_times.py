"""Where a worker's time went during a block: the growth of its per-stage histograms
(``agentmem_stage_seconds``: embed, weaviate_write, history_append...) and of its
batch sizes, read from its /metrics before and after."""

from __future__ import annotations

import re
from types import TracebackType

import httpx

__all__ = ["StageTimes", "histogram_totals"]

_LINE = re.compile(r'^(\w+)_(sum|count)\{stage="([^"]*)"\} (\S+)$')

Totals = dict[str, tuple[float, float]]


def histogram_totals(text: str, metric: str) -> Totals:
    """stage -> (sum, count) of histogram ``metric`` in a Prometheus text page. Pure."""
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and match.group(1) == metric:
            slot = found.setdefault(match.group(3), [0.0, 0.0])
            slot[0 if match.group(2) == "sum" else 1] += float(match.group(4))
    return {stage: (v[0], v[1]) for stage, v in found.items()}


def _delta(after: Totals, before: Totals) -> Totals:
    zero = (0.0, 0.0)
    return {
        stage: (s - before.get(stage, zero)[0], c - before.get(stage, zero)[1])
        for stage, (s, c) in after.items()
        if c - before.get(stage, zero)[1] > 0
    }


class StageTimes:
    """``seconds``: stage -> (seconds, batches) and ``batch``: stage -> (events, batches)
    over the block, of the worker serving /metrics on ``port``."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.seconds: Totals = {}
        self.batch: Totals = {}

    def _read(self) -> tuple[Totals, Totals]:
        text = httpx.get(self.url, timeout=10).text
        return (
            histogram_totals(text, "agentmem_stage_seconds"),
            histogram_totals(text, "agentmem_batch_size"),
        )

    def __enter__(self) -> StageTimes:
        self._seconds, self._batch = self._read()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            seconds, batch = self._read()
            self.seconds, self.batch = _delta(seconds, self._seconds), _delta(batch, self._batch)

    def summary(self) -> str:
        """``embed 0.0 s, weaviate_write 12.1 s in 80 batches (mean 250 events)...``"""
        parts = [f"{stage} {s:.1f} s/{c:.0f} calls" for stage, (s, c) in self.seconds.items()]
        parts += [f"{stage} batches of {s / c:.0f} events" for stage, (s, c) in self.batch.items()]
        return ", ".join(parts) or "no stage timings"
