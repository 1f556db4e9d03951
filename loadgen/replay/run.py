"""One replay against Kafka: publish on the schedule, follow the acks, show progress."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from loadgen.replay.records import Pace, ReplayRecord, planned_count, schedule
from loadgen.replay.sender import LATE_TOLERANCE_S, Lateness, OpenLoopSender, RateWindow
from streams import clients
from streams.client.topic_follower import TopicFollower
from streams.client.topics import ensure_topics
from streams.settings import Settings


class AckFollower(TopicFollower):
    """Records on a topic (``memory.indexed`` or ``memory.enriched``) for the wanted event
    ids, from the moment it starts."""

    from_beginning = False

    def __init__(
        self, bootstrap: clients.KafkaTarget, topic: str, wanted: set[str], expected: int
    ) -> None:
        super().__init__(bootstrap, topic)
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
    pace: Pace = field(default_factory=Pace)
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


async def _await_acks(follower: AckFollower, options: ReplayOptions) -> None:
    """Until every expected ack arrived, ``wait_s`` passed, or none came for ``stall_s``."""
    deadline = time.monotonic() + options.wait_s
    last_count, last_change = follower.count, time.monotonic()
    while not follower.complete() and time.monotonic() < deadline:
        await follower.wait_progress(0.25)
        if follower.count != last_count:
            last_count, last_change = follower.count, time.monotonic()
        elif options.stall_s is not None and time.monotonic() - last_change > options.stall_s:
            return


def _result(
    options: ReplayOptions,
    offsets: Sequence[float],
    expected: int,
    sender: OpenLoopSender,
    follower: AckFollower | None,
) -> ReplayResult:
    send_s = max(sender.last_send_at - sender.started_at, 0.0)
    drain_s = None
    if follower is not None and follower.last_record_ms is not None:
        drain_s = (follower.last_record_ms - sender.started_wall_ms) / 1000
    return ReplayResult(
        pace=options.pace.describe(),
        planned=len(offsets),
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
        follower = AckFollower(settings, settings.topic(options.follow), wanted, expected)
    producer = clients.kafka_producer(settings)
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

    def show() -> None:
        display.update(sender.sent, None if follower is None else follower.count)

    refresher: asyncio.Task[None] | None = None
    try:
        if follower is not None:
            await follower.start()  # before the first send: no ack is missed
        await producer.start()
        display.progress.start()
        refresher = asyncio.create_task(_every(0.25, show), name="replay progress")
        await sender.run()
        if follower is not None:
            await _await_acks(follower, options)
    finally:
        if refresher is not None:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
            show()
        display.progress.stop()
        await producer.stop()
        if follower is not None:
            await follower.stop()
    return _result(options, offsets, expected, sender, follower)


async def _every(interval_s: float, action: Callable[[], None]) -> None:
    while True:
        action()
        await asyncio.sleep(interval_s)


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
