"""How a stage waits on its dependencies: retriable errors retried with backoff while
metrics and readiness say so; everything else raised at once to the batch guard.

One place for what both stages did apart: the retry counter, the in-retry gauge,
the readiness flag, and the rule for records the loop cannot move on without.
Sleep and jitter are injected.

Not pure (awaits I/O), through the calls it is given only.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from processors.core.errors import is_retriable
from processors.core.health import Health
from processors.core.retry import Backoff, retry_forever
from processors.metrics import Metrics
from processors.ports import Sleep

log = logging.getLogger(__name__)

T = TypeVar("T")


class StageRetry:
    """Calls a dependency until it answers, counting and reporting the waits."""

    def __init__(
        self,
        metrics: Metrics,
        health: Health,
        backoff: Backoff,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.metrics, self.health, self.backoff, self.sleep = metrics, health, backoff, sleep
        self.rng = rng or random.Random()

    async def __call__(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Until it succeeds or fails for good: a retriable failure is waited out
        (that wait is the backpressure that holds the partition)."""
        gauge = self.metrics.batches_in_retry.labels(operation)

        def on_retry(op: str, attempt: int, exc: BaseException) -> None:
            gauge.set(1)
            self.metrics.retries.labels(op).inc()
            self.health.set_waiting(op, f"{type(exc).__name__}: {exc}")

        try:
            return await retry_forever(
                operation,
                call,
                retriable=is_retriable,
                backoff=self.backoff,
                sleep=self.sleep,
                on_retry=on_retry,
                rng=self.rng,
            )
        finally:
            gauge.set(0)
            self.health.set_waiting(operation, None)

    async def must_send(
        self,
        operation: str,
        send: Callable[[], Awaitable[None]],
        smaller: Callable[[], Awaitable[None]],
    ) -> None:
        """Records without which the loop may not move on (dead letters of the last
        line of defence). Retriable failures are retried; a permanent one is tried once
        more with ``smaller`` records; if the broker refuses even those, the stage is
        stuck: liveness reports it (restarting may help, dropping never does) and the
        send is retried at the backoff's cap until it goes through."""
        try:
            await self(operation, send)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any refusal: try the smaller record
            log.error("%s refused (%s); sending a smaller record", operation, exc)
        attempt = 0
        while True:
            try:
                await self(operation, smaller)
                self.health.set_stuck(operation, None)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - must_send never gives up
                self.health.set_stuck(operation, f"{type(exc).__name__}: {exc}")
                self.metrics.retries.labels(operation).inc()
                log.critical("%s impossible (attempt %d): %r", operation, attempt + 1, exc)
                attempt += 1
                await self.sleep(self.backoff.cap_s)
