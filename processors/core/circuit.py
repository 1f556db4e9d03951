"""A circuit breaker over a rolling window of calls, with an injectable clock. Pure.

Closed: calls go through; when at least ``min_calls`` of the last ``window`` calls
were made and ``failure_ratio`` of them failed, it opens. Open: calls are refused
until ``cooldown_s`` has passed, then it is half-open. Half-open: one probe call
goes through; its success closes the circuit, its failure opens it again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum


class CircuitState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        window: int = 20,
        min_calls: int = 10,
        failure_ratio: float = 0.8,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        if not 0 < failure_ratio <= 1 or min_calls < 1 or window < min_calls:
            raise ValueError("need 0 < failure_ratio <= 1 and 1 <= min_calls <= window")
        self.window, self.min_calls, self.failure_ratio = window, min_calls, failure_ratio
        self.cooldown_s, self.clock, self.on_change = cooldown_s, clock, on_change
        self._results: deque[bool] = deque(maxlen=window)
        self._state = CircuitState.CLOSED
        self._opened_at = 0.0
        self._probing = False

    @property
    def closed(self) -> bool:
        """Whether calls go out freely, read without side effects (``state`` moves an
        open circuit to half-open once the cooldown is over, and reports the move)."""
        return self._state == CircuitState.CLOSED

    @property
    def state(self) -> CircuitState:
        if self._state == CircuitState.OPEN and self.clock() - self._opened_at >= self.cooldown_s:
            self._set(CircuitState.HALF_OPEN)
        return self._state

    def _set(self, state: CircuitState) -> None:
        if state != self._state:
            self._state = state
            if self.on_change is not None:
                self.on_change(state)

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time."""
        state = self.state
        if state == CircuitState.CLOSED:
            return True
        if state == CircuitState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, success: bool, probe: bool = False) -> None:
        """The result of a call; ``probe`` when it was let out in half-open state.

        Results of calls that went out before the circuit opened are ignored, so a
        late failure never decides the probe's fate.
        """
        if probe:
            self._probing = False
            if success:
                self._results.clear()
                self._set(CircuitState.CLOSED)
            else:
                self._open()
            return
        if self._state != CircuitState.CLOSED:
            return
        self._results.append(success)
        failures = self._results.count(False)
        if (
            len(self._results) >= self.min_calls
            and failures / len(self._results) >= self.failure_ratio
        ):
            self._open()

    def retry_after(self) -> float:
        """Seconds until a refused call could be let through: the rest of the cooldown,
        or a whole cooldown while a probe is out; 0 when calls go through."""
        state = self.state
        if state == CircuitState.OPEN:
            return max(0.0, self._opened_at + self.cooldown_s - self.clock())
        if state == CircuitState.HALF_OPEN and self._probing:
            return self.cooldown_s
        return 0.0

    def release_probe(self) -> None:
        """A probe that ended without a verdict (cancelled): let the next call probe."""
        self._probing = False

    def _open(self) -> None:
        self._opened_at = self.clock()
        self._results.clear()
        self._set(CircuitState.OPEN)
