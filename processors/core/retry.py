"""Retry with exponential backoff and full jitter, with an injectable sleep for tests.

Pure but for the sleep it awaits (injected; ``Sleep`` is defined here).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.1
    cap_s: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)], within [base/2, cap]."""
        ceiling = min(self.cap_s, self.base_s * (2.0 ** min(attempt, 62)))
        return min(self.cap_s, max(self.base_s / 2, rng.uniform(0, ceiling)))


async def retry_forever(
    operation: str,
    call: Callable[[], Awaitable[T]],
    *,
    retriable: Callable[[BaseException], bool] = lambda exc: isinstance(exc, Exception),
    backoff: Backoff | None = None,
    sleep: Sleep = asyncio.sleep,
    on_retry: Callable[[str, int, BaseException], None] | None = None,
    rng: random.Random | None = None,
) -> T:
    """Call until it succeeds; a non-retriable exception propagates at once.

    Holding on here is the backpressure: the batch loop does not move on, so the
    partition's offsets do not move either.
    """
    policy = backoff or Backoff()
    jitter = rng or random.Random()
    attempt = 0
    while True:
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not retriable(exc):
                raise
            if on_retry is not None:
                on_retry(operation, attempt, exc)
            delay = policy.delay(attempt, jitter)
            log.warning(
                "%s failed (attempt %d), retrying in %.2fs: %r", operation, attempt + 1, delay, exc
            )
            attempt += 1
            await sleep(delay)
