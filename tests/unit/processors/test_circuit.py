"""CircuitBreaker with a fake clock: opening, cooldown, the half-open probe, callbacks."""

from __future__ import annotations

import pytest

from processors.core.circuit import CircuitBreaker, CircuitState
from tests.fakes import FakeClock


class Changes:
    def __init__(self) -> None:
        self.seen: list[CircuitState] = []

    def __call__(self, state: CircuitState) -> None:
        self.seen.append(state)


def state(cb: CircuitBreaker) -> CircuitState:
    """The breaker's state (a call, so that mypy does not narrow it between asserts)."""
    return cb.state


def breaker(
    clock: FakeClock,
    changes: Changes | None = None,
    window: int = 4,
    min_calls: int = 3,
    failure_ratio: float = 0.5,
    cooldown_s: float = 10.0,
) -> CircuitBreaker:
    return CircuitBreaker(
        window=window,
        min_calls=min_calls,
        failure_ratio=failure_ratio,
        cooldown_s=cooldown_s,
        clock=clock,
        on_change=changes,
    )


def open_breaker(clock: FakeClock, changes: Changes | None = None) -> CircuitBreaker:
    """A breaker (window 4, min 3, ratio 0.5, cooldown 10) opened by three failures."""
    cb = breaker(clock, changes)
    for _ in range(3):
        assert cb.allow() is True
        cb.record(False)
    assert state(cb) == CircuitState.OPEN
    return cb


def test_state_values_are_the_gauge_values() -> None:
    assert [int(s) for s in (CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN)] == [
        0,
        1,
        2,
    ]


@pytest.mark.parametrize(
    ("window", "min_calls", "failure_ratio"),
    [
        (4, 3, 0.0),
        (4, 3, -0.1),
        (4, 3, 1.01),
        (4, 0, 0.5),
        (2, 3, 0.5),
    ],
)
def test_invalid_parameters_are_refused(window: int, min_calls: int, failure_ratio: float) -> None:
    with pytest.raises(ValueError, match="failure_ratio"):
        CircuitBreaker(window=window, min_calls=min_calls, failure_ratio=failure_ratio)


def test_boundary_parameters_are_accepted() -> None:
    cb = CircuitBreaker(window=1, min_calls=1, failure_ratio=1.0)
    assert state(cb) == CircuitState.CLOSED
    assert cb.allow() is True


def test_starts_closed_and_lets_calls_through() -> None:
    clock = FakeClock(1000.0)
    cb = breaker(clock)
    assert state(cb) == CircuitState.CLOSED
    assert all(cb.allow() for _ in range(10))


def test_failures_below_min_calls_do_not_open() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = breaker(clock, changes, min_calls=3)
    cb.record(False)
    cb.record(False)
    assert state(cb) == CircuitState.CLOSED
    assert cb.allow() is True
    assert changes.seen == []


def test_opens_when_ratio_reached_at_min_calls() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = breaker(clock, changes, min_calls=3, failure_ratio=0.5)
    cb.record(False)
    cb.record(True)
    assert state(cb) == CircuitState.CLOSED
    cb.record(False)  # 2 of 3 failed: 0.67 >= 0.5
    assert state(cb) == CircuitState.OPEN
    assert cb.allow() is False
    assert changes.seen == [CircuitState.OPEN]


def test_ratio_below_threshold_stays_closed() -> None:
    clock = FakeClock(1000.0)
    cb = breaker(clock, window=4, min_calls=4, failure_ratio=0.75)
    for ok in (False, True, False, True):
        cb.record(ok)
    assert state(cb) == CircuitState.CLOSED  # 2 of 4 = 0.5 < 0.75


def test_ratio_exactly_at_threshold_opens() -> None:
    clock = FakeClock(1000.0)
    cb = breaker(clock, window=4, min_calls=4, failure_ratio=0.75)
    for ok in (False, True, False, False):
        cb.record(ok)
    assert state(cb) == CircuitState.OPEN  # 3 of 4 = 0.75


def test_only_the_last_window_calls_count() -> None:
    clock = FakeClock(1000.0)
    cb = breaker(clock, window=4, min_calls=4, failure_ratio=0.75)
    for _ in range(4):
        cb.record(True)
    cb.record(False)  # window: T T T F
    cb.record(False)  # window: T T F F
    assert state(cb) == CircuitState.CLOSED
    cb.record(False)  # window: T F F F -> 0.75 (over all seven calls it would be 3/7)
    assert state(cb) == CircuitState.OPEN


def test_successes_push_old_failures_out_of_the_window() -> None:
    clock = FakeClock(1000.0)
    cb = breaker(clock, window=3, min_calls=3, failure_ratio=0.6)
    cb.record(False)
    cb.record(True)
    cb.record(True)  # F T T: 0.33
    cb.record(False)  # T T F: 0.33
    cb.record(False)  # T F F: 0.67 -> open
    assert state(cb) == CircuitState.OPEN


def test_refuses_until_cooldown_then_half_open() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = open_breaker(clock, changes)
    clock.advance(9.999)
    assert state(cb) == CircuitState.OPEN
    assert cb.allow() is False
    clock.advance(0.001)  # exactly cooldown_s after opening
    assert state(cb) == CircuitState.HALF_OPEN
    assert changes.seen == [CircuitState.OPEN, CircuitState.HALF_OPEN]


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock(1000.0)
    cb = open_breaker(clock)
    clock.advance(10)
    assert cb.allow() is True
    assert cb.allow() is False
    assert cb.allow() is False
    assert state(cb) == CircuitState.HALF_OPEN


def test_probe_success_closes_and_starts_a_fresh_window() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = open_breaker(clock, changes)
    clock.advance(10)
    assert cb.allow() is True
    cb.record(True, probe=True)
    assert state(cb) == CircuitState.CLOSED
    assert cb.allow() is True
    assert changes.seen == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]
    # the failures before the opening are forgotten: two new failures are below min_calls
    cb.record(False)
    cb.record(False)
    assert state(cb) == CircuitState.CLOSED
    cb.record(False)
    assert state(cb) == CircuitState.OPEN


def test_probe_failure_reopens_for_a_new_cooldown() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = open_breaker(clock, changes)
    clock.advance(15)
    assert cb.allow() is True
    cb.record(False, probe=True)
    assert state(cb) == CircuitState.OPEN
    assert cb.allow() is False
    # the cooldown counts from the reopening, not from the first opening
    clock.advance(9.5)
    assert state(cb) == CircuitState.OPEN
    clock.advance(0.5)
    assert state(cb) == CircuitState.HALF_OPEN
    assert cb.allow() is True
    assert changes.seen == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
    ]


def test_results_arriving_while_open_are_ignored() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = open_breaker(clock, changes)
    # calls that went out before the opening report now: neither closes nor reopens
    cb.record(True)
    cb.record(True)
    cb.record(False)
    assert state(cb) == CircuitState.OPEN
    assert changes.seen == [CircuitState.OPEN]
    clock.advance(9)
    cb.record(False)
    assert state(cb) == CircuitState.OPEN
    clock.advance(1)  # the late failure did not restart the cooldown
    assert state(cb) == CircuitState.HALF_OPEN


def test_result_while_half_open_without_probe_is_ignored() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = open_breaker(clock, changes)
    clock.advance(10)
    assert state(cb) == CircuitState.HALF_OPEN
    cb.record(True)  # no probe was sent: this is a late result of an old call
    assert state(cb) == CircuitState.HALF_OPEN
    assert cb.allow() is True  # the probe slot is still free
    assert changes.seen == [CircuitState.OPEN, CircuitState.HALF_OPEN]


def test_late_failure_of_an_old_call_does_not_decide_the_probe() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = breaker(clock, changes)
    for _ in range(4):
        assert cb.allow() is True  # four calls in flight
    for _ in range(3):
        cb.record(False)  # three fail fast: open
    assert state(cb) == CircuitState.OPEN
    clock.advance(10)
    assert cb.allow() is True  # the probe goes out
    cb.record(False)  # the fourth old call finally times out
    assert state(cb) == CircuitState.HALF_OPEN
    assert cb.allow() is False  # the probe is still in flight
    cb.record(True, probe=True)  # the probe succeeds
    assert state(cb) == CircuitState.CLOSED
    assert changes.seen == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_late_success_of_an_old_call_does_not_close_while_probing() -> None:
    clock = FakeClock(1000.0)
    cb = open_breaker(clock)
    clock.advance(10)
    assert cb.allow() is True
    cb.record(True)  # an old call, not the probe
    assert state(cb) == CircuitState.HALF_OPEN
    cb.record(False, probe=True)
    assert state(cb) == CircuitState.OPEN


def test_released_probe_lets_the_next_call_probe() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = open_breaker(clock, changes)
    clock.advance(10)
    assert cb.allow() is True
    assert cb.allow() is False
    cb.release_probe()  # the probe ended without a verdict
    assert state(cb) == CircuitState.HALF_OPEN
    assert cb.allow() is True
    assert cb.allow() is False
    assert changes.seen == [CircuitState.OPEN, CircuitState.HALF_OPEN]


def test_on_change_is_optional() -> None:
    clock = FakeClock(1000.0)
    cb = open_breaker(clock)  # no callback: no error
    clock.advance(10)
    assert cb.allow() is True
    cb.record(True, probe=True)
    assert state(cb) == CircuitState.CLOSED


def test_on_change_not_called_without_a_change() -> None:
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = breaker(clock, changes)
    for _ in range(5):
        cb.record(True)
        assert state(cb) == CircuitState.CLOSED
    assert changes.seen == []


def test_default_clock_is_monotonic() -> None:
    cb = CircuitBreaker(window=2, min_calls=1, failure_ratio=1.0, cooldown_s=3600)
    cb.record(False)
    assert state(cb) == CircuitState.OPEN
    assert cb.allow() is False


def test_retry_after_is_the_rest_of_the_cooldown_then_a_whole_one_while_probing() -> None:
    clock = FakeClock(1000.0)
    cb = breaker(clock)
    assert cb.retry_after() == 0.0  # closed: go ahead
    cb = open_breaker(clock)
    clock.advance(4)
    assert cb.retry_after() == 6.0
    clock.advance(6)
    assert cb.retry_after() == 0.0  # half-open, the probe slot is free
    assert cb.allow() is True
    assert cb.retry_after() == 10.0  # the probe is out: wait for its verdict


def test_closed_is_read_without_moving_the_circuit() -> None:
    """Readiness probes read ``closed``: past the cooldown an open circuit stays open
    (and its gauge says so) until a call is actually let through as a probe."""
    clock = FakeClock(1000.0)
    changes = Changes()
    cb = open_breaker(clock, changes)
    clock.advance(60.0)
    assert cb.closed is False
    assert changes.seen == [CircuitState.OPEN]
    assert state(cb) == CircuitState.HALF_OPEN  # reading state does move it
    assert changes.seen == [CircuitState.OPEN, CircuitState.HALF_OPEN]
