"""`loadgen replay FILE`: publish JSONL events to ``memory.events`` on an open-loop schedule.

Every event gets a send time computed from the start (fixed rate, recorded
``occurred_at`` gaps, or all at once), independent of how long earlier sends
took: a slow system shows up as latency, never as a lower offered rate. Sends are
not awaited one by one; at most ``max_inflight`` broker acknowledgements are
outstanding, and if the producer itself falls behind its schedule the result
says by how much. Paced records carry their scheduled send time as the Kafka
timestamp, so ``indexed_at_ms - produced_at_ms`` in the acks includes any delay of
the producer (no coordinated omission).

The pure parts (parsing lines, the schedule, lateness and rates) are apart from
the I/O (the producer loop with an injected send, the ack follower, the progress bar).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from streams.client.publisher import durable_producer
from streams.client.topic_follower import TopicFollower
from streams.client.topics import ensure_topics
from streams.settings import Settings

LATE_TOLERANCE_S = 0.1  # a send later than this behind its schedule counts as late


# ---------------------------------------------------------------- pure: records and schedule


@dataclass(frozen=True)
class ReplayRecord:
    """One line of the file as it goes to Kafka."""

    key: bytes | None
    value: bytes
    event_id: str | None  # set when the worker will acknowledge it (event id and tenant)
    occurred_at_ms: float | None


def _occurred_ms(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def parse_line(line: bytes) -> ReplayRecord:
    """A JSONL line: key = tenant as the publisher does; anything unreadable goes as it is.

    A line that is not an event (bad JSON, no tenant) is still sent, as raw bytes with
    no key, so that it reaches the dead-letter topic.
    """
    try:
        doc = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        return ReplayRecord(None, line, None, None)
    if not isinstance(doc, dict):
        return ReplayRecord(None, line, None, None)
    tenant, event_id = doc.get("tenant"), doc.get("event_id")
    key = tenant.encode() if isinstance(tenant, str) and tenant else None
    acked = isinstance(event_id, str) and bool(event_id) and key is not None
    return ReplayRecord(
        key, line, event_id if acked else None, _occurred_ms(doc.get("occurred_at"))
    )


def parse_lines(data: bytes) -> list[ReplayRecord]:
    """Every non-blank line of a JSONL file, in order (CRLF tolerated)."""
    return [parse_line(line.rstrip(b"\r")) for line in data.split(b"\n") if line.strip()]


def read_records(path: Path | str) -> list[ReplayRecord]:
    """A JSONL file, or standard input for ``-``."""
    if str(path) == "-":
        return parse_lines(sys.stdin.buffer.read())
    return parse_lines(Path(path).read_bytes())


@dataclass(frozen=True)
class Pace:
    """How fast: ``rate`` events/s, the recorded gaps sped up ``speedup`` times, or
    (rate 0, not recorded) as fast as possible."""

    rate: float = 0.0
    recorded: bool = False
    speedup: float = 1.0

    def __post_init__(self) -> None:
        if self.rate < 0 or not math.isfinite(self.rate):
            raise ValueError("rate must be a finite number >= 0")
        if self.speedup <= 0:
            raise ValueError("speedup must be > 0")
        if self.recorded and self.rate:
            raise ValueError("choose a fixed rate or the recorded timing, not both")

    @property
    def paced(self) -> bool:
        return self.recorded or self.rate > 0

    def describe(self) -> str:
        if self.recorded:
            return f"recorded timing x{self.speedup:g}"
        return f"{self.rate:g} events/s" if self.rate else "as fast as possible"


def schedule(records: Sequence[ReplayRecord], pace: Pace) -> list[float]:
    """Send offsets in seconds from the start, non-decreasing, one per record.

    Recorded timing uses the gaps between ``occurred_at``; a record without one
    (an invalid line) goes with the record before it, and a timestamp earlier than
    one already seen does not move the schedule back.
    """
    if pace.rate:
        return [i / pace.rate for i in range(len(records))]
    if not pace.recorded:
        return [0.0] * len(records)
    offsets: list[float] = []
    first: float | None = None
    latest = 0.0
    for record in records:
        if record.occurred_at_ms is not None:
            if first is None:
                first = record.occurred_at_ms
            latest = max(latest, (record.occurred_at_ms - first) / 1000 / pace.speedup)
        offsets.append(latest)
    return offsets


def planned_count(offsets: Sequence[float], count: int | None, duration_s: float | None) -> int:
    """How many records to send: at most ``count``, and only those scheduled before
    ``duration_s``. (As fast as possible, every offset is 0: the sender also stops
    when the duration has passed.)"""
    n = len(offsets) if count is None else min(len(offsets), max(0, count))
    if duration_s is not None:
        n = sum(1 for off in offsets[:n] if off < duration_s)
    return n


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) by nearest rank: the smallest value with at least
    q of the values at or below it. NaN for no values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values) - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


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


# ---------------------------------------------------------------- following the acks


class AckFollower(TopicFollower):
    """Records on a topic (``memory.indexed`` or ``memory.enriched``) for the wanted event
    ids, from the moment it starts."""

    def __init__(self, bootstrap: str, topic: str, wanted: set[str], expected: int) -> None:
        super().__init__(bootstrap, topic, from_beginning=False)
        self.wanted, self.expected = wanted, expected
        self.records: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.last_record_ms: int | None = None

    def on_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        doc = json.loads(record.value or b"{}")
        event_id = doc.get("event_id") if isinstance(doc, dict) else None
        if event_id in self.wanted:
            self.records.append(doc)
            self.seen.add(str(event_id))
            self.last_record_ms = max(self.last_record_ms or 0, record.timestamp)

    @property
    def count(self) -> int:
        return len(self.records)

    def complete(self) -> bool:
        return len(self.seen) >= len(self.wanted) and self.count >= self.expected


# ---------------------------------------------------------------- one replay


@dataclass(frozen=True)
class ReplayOptions:
    pace: Pace = Pace()
    count: int | None = None
    duration_s: float | None = None
    max_inflight: int = 10_000
    follow: str | None = "memory.indexed"  # short topic name to follow; None: do not
    wait_s: float = 120.0  # after the last send, how long to wait for every ack
    stall_s: float | None = None  # give up earlier when no ack came for this long
    progress: bool = True


@dataclass(frozen=True)
class ReplayResult:
    pace: str
    planned: int
    sent: int
    errors: int
    first_error: str | None
    send_seconds: float  # first send to the last send handed to the producer
    offered_per_s: float | None  # None when everything went out at one instant
    target_per_s: float | None
    lateness: Lateness
    started_wall_ms: float
    followed: str | None
    expected_acks: int
    acked: int
    complete: bool  # every expected ack arrived within the wait
    drain_seconds: float | None  # first send to the last ack (Kafka timestamps)
    acks: list[dict[str, Any]] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest (without the acks themselves)."""
        return {
            "pace": self.pace,
            "planned": self.planned,
            "sent": self.sent,
            "errors": self.errors,
            "first_error": self.first_error,
            "send_seconds": self.send_seconds,
            "offered_per_s": self.offered_per_s,
            "target_per_s": self.target_per_s,
            "behind_schedule_max_ms": self.lateness.max_s * 1000,
            "behind_schedule_p99_ms": self.lateness.p99_s * 1000,
            "late_sends": self.lateness.late,
            "followed": self.followed,
            "expected_acks": self.expected_acks,
            "acked": self.acked,
            "complete": self.complete,
            "drain_seconds": self.drain_seconds,
        }


def _target_rate(pace: Pace, offsets: Sequence[float]) -> float | None:
    if pace.rate:
        return pace.rate
    if pace.recorded and len(offsets) > 1 and offsets[-1] > 0:
        return (len(offsets) - 1) / offsets[-1]
    return None


class _Display:
    """The live progress bar: sent of planned, offered and acked rates, lag."""

    def __init__(self, enabled: bool, total: int, what: str) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("offered {task.fields[offered]:>7.0f}/s"),
            TextColumn("acked {task.fields[acked]:>7.0f}/s"),
            TextColumn("lag {task.fields[lag]:>6}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self.task: TaskID = self.progress.add_task(what, total=total, offered=0, acked=0, lag=0)
        self.window = RateWindow()

    def update(self, sent: int, acked: int | None) -> None:
        offered, acked_rate = self.window.add(time.monotonic(), sent, acked or 0)
        self.progress.update(
            self.task,
            completed=sent,
            offered=offered,
            acked=acked_rate,
            lag="n/a" if acked is None else sent - acked,
        )


async def replay(
    settings: Settings, records: Sequence[ReplayRecord], options: ReplayOptions
) -> ReplayResult:
    """Publish the records on the options' schedule to ``<prefix>memory.events``,
    following the acks (if asked) until all arrived or ``wait_s`` passed."""
    await ensure_topics(settings)
    offsets_all = schedule(records, options.pace)
    n = planned_count(offsets_all, options.count, options.duration_s)
    chosen, offsets = records[:n], offsets_all[:n]
    wanted = {r.event_id for r in chosen if r.event_id is not None}
    expected = sum(r.event_id is not None for r in chosen)
    follower: AckFollower | None = None
    if options.follow is not None:
        follower = AckFollower(
            settings.kafka_bootstrap_servers, settings.topic(options.follow), wanted, expected
        )
    producer = durable_producer(settings.kafka_bootstrap_servers)
    topic = settings.topic("memory.events")
    display = _Display(options.progress, n, f"replay {options.pace.describe()}")

    async def send(key: bytes | None, value: bytes, stamp: int | None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await producer.send(topic, value, key=key, timestamp_ms=stamp)
        return future

    sender = OpenLoopSender(
        chosen,
        offsets,
        send,
        max_inflight=options.max_inflight,
        duration_s=options.duration_s,
        stamp_scheduled=options.pace.paced,
    )

    def acked() -> int | None:
        return None if follower is None else follower.count

    async def refresh() -> None:
        while True:
            display.update(sender.sent, acked())
            await asyncio.sleep(0.25)

    refresher: asyncio.Task[None] | None = None
    try:
        if follower is not None:
            await follower.start()  # before the first send: no ack is missed
        await producer.start()
        display.progress.start()
        refresher = asyncio.create_task(refresh(), name="replay progress")
        await sender.run()
        if follower is not None:
            deadline = time.monotonic() + options.wait_s
            last_count, last_change = follower.count, time.monotonic()
            while not follower.complete() and time.monotonic() < deadline:
                await follower.wait_progress(0.25)
                if follower.count != last_count:
                    last_count, last_change = follower.count, time.monotonic()
                elif (
                    options.stall_s is not None and time.monotonic() - last_change > options.stall_s
                ):
                    break
    finally:
        if refresher is not None:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
            display.update(sender.sent, acked())
        display.progress.stop()
        await producer.stop()
        if follower is not None:
            await follower.stop()
    send_s = max(sender.last_send_at - sender.started_at, 0.0)
    drain_s = None
    if follower is not None and follower.last_record_ms is not None:
        drain_s = (follower.last_record_ms - sender.started_wall_ms) / 1000
    return ReplayResult(
        pace=options.pace.describe(),
        planned=n,
        sent=sender.sent,
        errors=sender.errors,
        first_error=sender.first_error,
        send_seconds=send_s,
        offered_per_s=sender.sent / send_s if send_s > 0 else None,
        target_per_s=_target_rate(options.pace, offsets),
        lateness=Lateness.of(sender.lateness_s),
        started_wall_ms=sender.started_wall_ms,
        followed=None if follower is None else follower.topic,
        expected_acks=expected,
        acked=0 if follower is None else follower.count,
        complete=follower is not None and follower.complete(),
        drain_seconds=drain_s,
        acks=[] if follower is None else follower.records,
    )


def describe(result: ReplayResult) -> list[str]:
    """Human lines for the command line."""
    lines = [
        f"sent {result.sent} of {result.planned} events ({result.pace}) in "
        f"{result.send_seconds:.1f}s: offered "
        + (f"{result.offered_per_s:.0f} events/s" if result.offered_per_s else "all at once")
        + (f" (target {result.target_per_s:.0f}/s)" if result.target_per_s else ""),
    ]
    if result.lateness.fell_behind:
        lines.append(
            f"the producer fell behind its schedule: {result.lateness.late} sends more than "
            f"{LATE_TOLERANCE_S * 1000:.0f} ms late, up to {result.lateness.max_s * 1000:.0f} ms "
            "(the offered load was lower than asked)"
        )
    if result.errors:
        lines.append(f"{result.errors} sends failed; first: {result.first_error}")
    if result.followed is not None:
        state = "all" if result.complete else "NOT all"
        lines.append(
            f"acks on {result.followed}: {result.acked} of {result.expected_acks} expected "
            f"({state} arrived)"
            + (
                f"; drained {result.drain_seconds:.1f}s after the first send"
                if result.drain_seconds
                else ""
            )
        )
    return lines


def replay_sync(
    settings: Settings, records: Sequence[ReplayRecord], options: ReplayOptions
) -> ReplayResult:
    return asyncio.run(replay(settings, records, options))
