"""Where the time went while a benchmark measured: the CPU share of the worker, the
stack and the load generator (:class:`~loadgen.bench.harness.CpuShare`) and the
worker's own per-stage times and batch sizes (:class:`~loadgen.bench.stage_times.StageTimes`),
over the same block. A goal a run misses is explained by this, not by a guess."""

from __future__ import annotations

import os
from types import TracebackType

from loadgen.bench.harness import CpuShare, PrivateWorker, stack_pids
from loadgen.bench.stage_times import StageTimes
from streams.settings import Settings

__all__ = ["Breakdown"]


class Breakdown:
    """``with Breakdown(base, worker) as where: ...`` then ``where.summary()``."""

    def __init__(self, base: Settings, worker: PrivateWorker) -> None:
        groups = {"worker": [worker.pid], **stack_pids(base), "load generator": [os.getpid()]}
        self.cpu = CpuShare(groups)
        self.stages = StageTimes(worker.settings.worker_metrics_port)

    def __enter__(self) -> Breakdown:
        self.stages.__enter__()
        self.cpu.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cpu.__exit__(et, e, tb)
        self.stages.__exit__(et, e, tb)

    def summary(self) -> str:
        return f"{self.cpu.summary()}; {self.stages.summary()}"
