"""loadgen replay: line parsing, the open-loop schedule and the sender, on a fake clock."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from loadgen.replay.records import (
    Pace,
    ReplayRecord,
    parse_line,
    parse_lines,
    planned_count,
    schedule,
)
from loadgen.replay.sender import Lateness, OpenLoopSender, RateWindow
from loadgen.stats import nearest_rank


def event_line(event_id: str = "e1", tenant: str = "t1", occurred: str | None = None) -> bytes:
    doc: dict[str, Any] = {"event_id": event_id, "tenant": tenant, "type": "memory.add"}
    if occurred:
        doc["occurred_at"] = occurred
    return json.dumps(doc).encode()


def test_a_valid_line_is_keyed_by_tenant_and_expects_an_ack() -> None:
    record = parse_line(event_line("e1", "user-1", "2025-01-01T00:00:01+00:00"))
    assert record.key == b"user-1"
    assert record.event_id == "e1"
    assert record.occurred_at_ms == 1735689601000


@pytest.mark.parametrize(
    "line",
    [
        b'{"schema": "agentmem.memory/v1", "tenant": ',
        b'["e1", "memory.add"]',
        b"\xff\xfe not utf-8",
        json.dumps({"event_id": "e1", "tenant": ""}).encode(),
        json.dumps({"tenant": "t1"}).encode(),
    ],
)
def test_unreadable_or_unowned_lines_go_as_raw_bytes_without_ack(line: bytes) -> None:
    record = parse_line(line)
    assert record.value == line
    assert record.event_id is None
    if b"t1" not in line:
        assert record.key is None


def test_parse_lines_skips_blank_lines_and_tolerates_crlf() -> None:
    data = event_line("a") + b"\r\n\n  \n" + event_line("b") + b"\n"
    assert [r.event_id for r in parse_lines(data)] == ["a", "b"]


def recs(*occurred_ms: float | None) -> list[ReplayRecord]:
    return [ReplayRecord(b"k", b"v", "e", t) for t in occurred_ms]


def test_fixed_rate_schedule() -> None:
    assert schedule(recs(None, None, None, None), Pace(rate=4)) == [0.0, 0.25, 0.5, 0.75]


def test_as_fast_as_possible_schedules_everything_at_zero() -> None:
    assert schedule(recs(5, 1, 9), Pace()) == [0.0, 0.0, 0.0]


def test_recorded_schedule_keeps_gaps_sped_up_and_never_goes_back() -> None:
    offsets = schedule(recs(1000, 1500, None, 3000, 2000, 5000), Pace(recorded=True, speedup=2))
    assert offsets == [0.0, 0.25, 0.25, 1.0, 1.0, 2.0]


def test_recorded_schedule_starts_at_the_first_timestamp() -> None:
    assert schedule(recs(None, 10_000, 11_000), Pace(recorded=True)) == [0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "kwargs", [{"rate": -1}, {"rate": float("inf")}, {"speedup": 0}, {"rate": 5, "recorded": True}]
)
def test_nonsense_paces_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Pace(**kwargs)


def test_planned_count_by_count_and_duration() -> None:
    offsets = [i / 10 for i in range(100)]  # 10/s for 10 s
    assert planned_count(offsets, None, None) == 100
    assert planned_count(offsets, 30, None) == 30
    assert planned_count(offsets, None, 2.0) == 20
    assert planned_count(offsets, 15, 2.0) == 15
    assert planned_count(offsets, 500, None) == 100
    assert planned_count([0.0] * 7, None, 1.0) == 7  # as fast as possible: the sender stops


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 0.5) == 50
    assert nearest_rank(values, 0.95) == 95
    assert nearest_rank(values, 0.99) == 99
    assert nearest_rank(values, 1.0) == 100
    assert nearest_rank([7.0], 0.99) == 7
    assert nearest_rank([1.0, 2.0, 3.0], 0.5) == 2
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 0.5) == 2


def test_lateness_summary() -> None:
    lateness = Lateness.of([0.0, 0.01, 0.2, 0.5, -0.001])
    assert lateness.max_s == 0.5
    assert lateness.late == 2
    assert lateness.fell_behind
    assert not Lateness.of([0.0, 0.05]).fell_behind
    assert Lateness.of([]) == Lateness(0.0, 0.0, 0)


def test_rate_window_over_the_last_seconds() -> None:
    window = RateWindow(window_s=2.0)
    assert window.add(0.0, 0, 0) == (0.0, 0.0)
    assert window.add(1.0, 100, 50) == (100.0, 50.0)
    window.add(2.0, 200, 100)
    sent, acked = window.add(4.0, 200, 300)  # samples older than 2 s drop out
    assert sent == pytest.approx(0.0)
    assert acked == pytest.approx(100.0)


class FakeTime:
    """A clock that moves only when the sender sleeps or a send takes time."""

    def __init__(self, send_cost_s: float = 0.0) -> None:
        self.now = 100.0
        self.send_cost_s = send_cost_s
        self.sent: list[tuple[float, bytes | None, bytes, int | None]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def wall_ms(self) -> float:
        return 1_000_000.0 + self.now * 1000

    async def send(self, key: bytes | None, value: bytes, stamp: int | None) -> asyncio.Future[Any]:
        self.sent.append((self.now, key, value, stamp))
        self.now += self.send_cost_s
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def sender(fake: FakeTime, offsets: list[float], **kw: Any) -> OpenLoopSender:
    records = [ReplayRecord(b"k", str(i).encode(), str(i), None) for i in range(len(offsets))]
    return OpenLoopSender(
        records,
        offsets,
        fake.send,
        clock=fake.clock,
        sleep=fake.sleep,
        wall_ms=fake.wall_ms,
        **kw,
    )


async def test_sends_happen_at_their_scheduled_times() -> None:
    fake = FakeTime(send_cost_s=0.001)
    offsets = [i * 0.1 for i in range(10)]
    done = await sender(fake, offsets).run()
    assert done.sent == 10
    assert [round(t - 100.0, 6) for t, *_ in fake.sent] == pytest.approx(offsets)
    assert not Lateness.of(done.lateness_s).fell_behind
    start_ms = 1_000_000.0 + 100.0 * 1000
    assert [stamp for *_, stamp in fake.sent] == [int(start_ms + o * 1000) for o in offsets]


async def test_a_slow_producer_falls_behind_but_the_schedule_does_not_shift() -> None:
    fake = FakeTime(send_cost_s=0.05)  # each send takes 50 ms: at most 20/s
    offsets = [i * 0.01 for i in range(50)]  # asked: 100/s
    done = await sender(fake, offsets).run()
    # open loop: event i is i*50ms - i*10ms late, the lateness grows; nothing waits for
    # an earlier event's delay to restart its own clock
    assert done.lateness_s[10] == pytest.approx(10 * 0.04)
    assert done.lateness_s[49] == pytest.approx(49 * 0.04)
    lateness = Lateness.of(done.lateness_s)
    assert lateness.fell_behind and lateness.late == sum(1 for i in range(50) if i * 0.04 > 0.1)
    # the Kafka timestamps are the scheduled times, so latency includes the producer's delay
    start_ms = 1_000_000.0 + 100.0 * 1000
    assert [s for *_, s in fake.sent][-1] == int(start_ms + offsets[-1] * 1000)


async def test_unpaced_sends_carry_no_timestamp() -> None:
    fake = FakeTime()
    await sender(fake, [0.0, 0.0, 0.0], stamp_scheduled=False).run()
    assert [s for *_, s in fake.sent] == [None, None, None]


async def test_duration_stops_an_as_fast_as_possible_run() -> None:
    fake = FakeTime(send_cost_s=0.1)
    done = await sender(fake, [0.0] * 20, duration_s=0.35).run()
    assert done.sent == 4


async def test_in_flight_sends_are_bounded_and_failures_counted() -> None:
    loop = asyncio.get_running_loop()
    outstanding: set[asyncio.Future[Any]] = set()
    most = 0
    calls = 0

    async def send(key: bytes | None, value: bytes, stamp: int | None) -> asyncio.Future[Any]:
        nonlocal most, calls
        calls += 1
        future: asyncio.Future[Any] = loop.create_future()
        outstanding.add(future)
        most = max(most, sum(not f.done() for f in outstanding))

        def finish(f: asyncio.Future[Any] = future, n: int = calls) -> None:
            if n % 10 == 0:
                f.set_exception(KafkaTimeoutError("broker away"))
            else:
                f.set_result(None)

        loop.call_later(0.002, finish)
        return future

    records = [ReplayRecord(None, b"x", None, None) for _ in range(60)]
    done = await OpenLoopSender(records, [0.0] * 60, send, max_inflight=5).run()
    assert done.sent == 60
    assert most <= 5
    assert done.errors == 6
    assert done.first_error is not None and "KafkaTimeoutError" in done.first_error
