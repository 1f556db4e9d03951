"""retry_forever and Backoff, with a fake sleep: nothing here really waits."""

from __future__ import annotations

import random

import pytest

from processors.core.retry import Backoff, retry_forever
from tests.fakes import FakeSleep


class Flaky:
    """Fails ``failures`` times with ``exc``, then returns ``result``."""

    def __init__(self, failures: int, exc: Exception | None = None, result: str = "ok") -> None:
        self.failures = failures
        self.exc = exc or ConnectionError("down")
        self.result = result
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return self.result


async def test_succeeds_first_time_without_sleeping() -> None:
    sleep = FakeSleep()
    call = Flaky(0)
    assert await retry_forever("op", call, sleep=sleep) == "ok"
    assert call.calls == 1
    assert sleep.delays == []


async def test_succeeds_after_failures() -> None:
    sleep = FakeSleep()
    retries: list[tuple[str, int, str]] = []
    call = Flaky(4)
    result = await retry_forever(
        "weaviate_write",
        call,
        backoff=Backoff(base_s=0.1, cap_s=1.0),
        sleep=sleep,
        on_retry=lambda op, attempt, exc: retries.append((op, attempt, str(exc))),
        rng=random.Random(7),
    )
    assert result == "ok"
    assert call.calls == 5
    assert len(sleep.delays) == 4
    assert retries == [("weaviate_write", n, "down") for n in range(4)]
    assert all(0.05 <= d <= 1.0 for d in sleep.delays)


async def test_delays_follow_backoff_with_seeded_rng() -> None:
    policy = Backoff(base_s=0.1, cap_s=1.0)
    sleep = FakeSleep()
    await retry_forever("op", Flaky(6), backoff=policy, sleep=sleep, rng=random.Random(3))
    expected_rng = random.Random(3)
    assert sleep.delays == [policy.delay(n, expected_rng) for n in range(6)]


async def test_non_retriable_exception_propagates_at_once() -> None:
    sleep = FakeSleep()
    retries: list[int] = []
    call = Flaky(10, exc=ValueError("bug"))
    with pytest.raises(ValueError, match="bug"):
        await retry_forever(
            "op",
            call,
            retriable=lambda exc: isinstance(exc, ConnectionError),
            sleep=sleep,
            on_retry=lambda op, attempt, exc: retries.append(attempt),
        )
    assert call.calls == 1
    assert sleep.delays == []
    assert retries == []


async def test_retriable_predicate_decides_per_exception() -> None:
    sleep = FakeSleep()
    outcomes: list[Exception] = [ConnectionError("a"), ConnectionError("b"), KeyError("c")]

    async def call() -> str:
        raise outcomes.pop(0)

    with pytest.raises(KeyError):
        await retry_forever(
            "op", call, retriable=lambda e: isinstance(e, ConnectionError), sleep=sleep
        )
    assert outcomes == []
    assert len(sleep.delays) == 2


async def test_keeps_retrying_through_a_long_outage() -> None:
    # "forever": a dependency down for more than a thousand attempts must not break the loop
    sleep = FakeSleep()
    call = Flaky(1100)
    result = await retry_forever(
        "op", call, backoff=Backoff(base_s=0.1, cap_s=5.0), sleep=sleep, rng=random.Random(0)
    )
    assert result == "ok"
    assert call.calls == 1101
    assert max(sleep.delays) <= 5.0


def test_backoff_delay_bounds() -> None:
    policy = Backoff(base_s=0.1, cap_s=2.0)
    rng = random.Random(42)
    for attempt in range(30):
        ceiling = min(policy.cap_s, policy.base_s * 2**attempt)
        for _ in range(50):
            d = policy.delay(attempt, rng)
            assert policy.base_s / 2 <= d <= ceiling
            assert d <= policy.cap_s


def test_backoff_delay_grows_then_caps() -> None:
    policy = Backoff(base_s=0.1, cap_s=2.0)
    rng = random.Random(1)
    early = [policy.delay(0, rng) for _ in range(200)]
    late = [policy.delay(10, rng) for _ in range(200)]
    assert max(early) <= 0.1
    assert max(late) > 1.0  # the window widened up to the cap
    assert max(late) <= 2.0


def test_backoff_delay_is_deterministic_with_seed() -> None:
    policy = Backoff()
    a = [policy.delay(n, random.Random(9)) for n in range(8)]
    b = [policy.delay(n, random.Random(9)) for n in range(8)]
    assert a == b
