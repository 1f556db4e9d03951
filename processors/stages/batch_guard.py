"""The last line of defence of a stage's batch loop: never raises, never drops.

faust's ``take_events`` acks a whole batch when the loop body raises, so no exception
may leave it. When a batch fails as a whole for an unexpected reason (a bug, an input
no check foresaw), the guard retries it a few times, then bisects it: each half is
processed on its own, recursively, until the events that fail alone are found. Those
are quarantined (dead-lettered with reason ``internal_error`` and the exception type);
every other event of the batch is applied. A bad event costs exactly itself.

Events keep their order: the left half is done before the right one. Every effect of
a stage is idempotent, so a half that had partly taken effect before failing is
simply done again. Sleep, jitter and backoff are injected.

Not pure only through what it calls: it does no I/O itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from processors.core.retry import Backoff
from processors.ports import Sleep

log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass
class BatchReport:
    """How a batch ended: events received, applied, no-ops and dead-lettered."""

    received: int = 0
    applied: int = 0
    noops: int = 0
    dead_lettered: int = 0

    def __add__(self, other: BatchReport) -> BatchReport:
        return BatchReport(
            self.received + other.received,
            self.applied + other.applied,
            self.noops + other.noops,
            self.dead_lettered + other.dead_lettered,
        )


class BatchGuard(Generic[E]):
    """Runs ``process`` on a batch; isolates and ``quarantine``s what fails alone."""

    def __init__(
        self,
        stage: str,
        process: Callable[[Sequence[E]], Awaitable[BatchReport]],
        quarantine: Callable[[E, Exception], Awaitable[BatchReport]],
        on_isolate: Callable[[int], None],
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.stage, self.process, self.quarantine = stage, process, quarantine
        self.on_isolate = on_isolate  # called with the size of each batch split in two
        self.attempts = attempts
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.rng = rng or random.Random()

    async def run(self, batch: Sequence[E]) -> BatchReport:
        if not batch:
            return BatchReport()
        return await self._isolate(list(batch), self.attempts)

    async def _isolate(self, batch: list[E], attempts: int) -> BatchReport:
        error = await self._attempt(batch, attempts)
        if isinstance(error, BatchReport):
            return error
        if len(batch) == 1:
            return await self.quarantine(batch[0], error)
        self.on_isolate(len(batch))
        middle = len(batch) // 2
        # Halves get one try each; a single event gets the full number again before
        # it is quarantined, since that is the decision that costs the event.
        left = await self._isolate(batch[:middle], 1 if middle > 1 else self.attempts)
        right_len = len(batch) - middle
        right = await self._isolate(batch[middle:], 1 if right_len > 1 else self.attempts)
        return left + right

    async def _attempt(self, batch: list[E], attempts: int) -> BatchReport | Exception:
        error: Exception = RuntimeError("no attempt made")
        for attempt in range(attempts):
            try:
                return await self.process(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
                log.warning(
                    "%s batch of %d failed (attempt %d of %d): %s: %s",
                    self.stage,
                    len(batch),
                    attempt + 1,
                    attempts,
                    type(exc).__name__,
                    str(exc)[:300],
                    exc_info=attempt + 1 == attempts,
                )
                if attempt + 1 < attempts:
                    await self.sleep(self.backoff.delay(attempt, self.rng))
        return error


def error_detail(exc: BaseException) -> str:
    """``Type: message`` of an exception, bounded, for a dead letter's detail."""
    return f"{type(exc).__name__}: {str(exc)[:400]}"
