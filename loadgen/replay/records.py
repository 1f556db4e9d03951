"""The records of a replay file and their send schedule. Pure."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


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
