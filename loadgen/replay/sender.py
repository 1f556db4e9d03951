"""The open-loop sender: records go out at their scheduled offsets whatever the broker
does; how far behind its schedule the producer fell is measured, not hidden."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError

from loadgen.replay.records import ReplayRecord
from loadgen.stats import nearest_rank

LATE_TOLERANCE_S = 0.1  # a send later than this behind its schedule counts as late


@dataclass(frozen=True)
class Lateness:
    """How far behind its schedule the producer sent (seconds; <= 0 is on time)."""

    max_s: float
    p99_s: float
    late: int  # sends more than LATE_TOLERANCE_S behind

    @classmethod
    def of(cls, lateness_s: Sequence[float], tolerance_s: float = LATE_TOLERANCE_S) -> Lateness:
        if not lateness_s:
            return cls(0.0, 0.0, 0)
        ordered = sorted(lateness_s)
        return cls(ordered[-1], nearest_rank(ordered, 0.99), sum(v > tolerance_s for v in ordered))

    @property
    def fell_behind(self) -> bool:
        return self.late > 0


class RateWindow:
    """Rates of monotonic counters over the last ``window_s`` seconds (progress display)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int, int]] = deque()

    def add(self, now: float, sent: int, acked: int) -> tuple[float, float]:
        """Record a sample; return (sent/s, acked/s) over the window."""
        self._samples.append((now, sent, acked))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        t0, s0, a0 = self._samples[0]
        span = now - t0
        if span <= 0:
            return 0.0, 0.0
        return (sent - s0) / span, (acked - a0) / span


# ---------------------------------------------------------------- the open-loop sender

SendFn = Callable[[bytes | None, bytes, int | None], Awaitable["asyncio.Future[Any]"]]


@dataclass
class OpenLoopSender:
    """Sends records at their scheduled offsets; the state is readable while it runs.

    ``send(key, value, timestamp_ms)`` hands one record to the producer and returns
    the future of its broker acknowledgement. ``clock``/``sleep``/``wall_ms`` are
    injectable for tests.
    """

    records: Sequence[ReplayRecord]
    offsets: Sequence[float]
    send: SendFn
    max_inflight: int = 10_000
    duration_s: float | None = None
    stamp_scheduled: bool = True
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    wall_ms: Callable[[], float] = lambda: time.time() * 1000
    sent: int = 0
    errors: int = 0
    first_error: str | None = None
    lateness_s: list[float] = field(default_factory=list)
    started_at: float = 0.0
    started_wall_ms: float = 0.0
    last_send_at: float = 0.0
    flushed_at: float = 0.0
    _inflight: deque[asyncio.Future[Any]] = field(default_factory=deque)

    async def _settle(self, future: asyncio.Future[Any]) -> None:
        try:
            await future
        except (KafkaError, OSError) as exc:
            self.errors += 1
            if self.first_error is None:
                self.first_error = repr(exc)

    async def run(self) -> OpenLoopSender:
        n = min(len(self.records), len(self.offsets))
        self.started_at, self.started_wall_ms = self.clock(), self.wall_ms()
        for record, offset in zip(self.records[:n], self.offsets[:n], strict=True):
            target = self.started_at + offset
            now = self.clock()
            if self.duration_s is not None and now - self.started_at >= self.duration_s:
                break
            if target > now:
                await self.sleep(target - now)
            while self._inflight and self._inflight[0].done():
                await self._settle(self._inflight.popleft())
            while len(self._inflight) >= self.max_inflight:
                await self._settle(self._inflight.popleft())
            self.lateness_s.append(self.clock() - target)
            stamp = int(self.started_wall_ms + offset * 1000) if self.stamp_scheduled else None
            self._inflight.append(await self.send(record.key, record.value, stamp))
            self.sent += 1
            self.last_send_at = self.clock()
        while self._inflight:
            await self._settle(self._inflight.popleft())
        self.flushed_at = self.clock()
        return self
