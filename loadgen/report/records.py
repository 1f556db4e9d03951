"""The records of a run: acks, dead letters, and the window that says which belong to it.
Pure."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Ack:
    event_id: str
    outcome: str
    produced_at_ms: int | None
    indexed_at_ms: int

    @classmethod
    def from_doc(cls, doc: object) -> Ack | None:
        """An ack from its JSON (see processors/core/records.py ack_record); None if unreadable."""
        if not isinstance(doc, dict):
            return None
        indexed, produced = doc.get("indexed_at_ms"), doc.get("produced_at_ms")
        if not isinstance(indexed, int) or not isinstance(doc.get("event_id"), str):
            return None
        return cls(
            str(doc["event_id"]),
            str(doc.get("outcome", "")),
            produced if isinstance(produced, int) else None,
            indexed,
        )

    @property
    def latency_ms(self) -> int | None:
        return None if self.produced_at_ms is None else self.indexed_at_ms - self.produced_at_ms

    @property
    def start_ms(self) -> int:
        return self.indexed_at_ms if self.produced_at_ms is None else self.produced_at_ms


def dead_letter_raw(doc: dict[str, Any]) -> bytes:
    """The original value bytes a dead letter carries."""
    value = doc.get("value")
    if not isinstance(value, str):
        return b""
    if doc.get("value_encoding") == "base64":
        return base64.b64decode(value)
    return value.encode()


def _dead_letter_ms(doc: dict[str, Any]) -> float | None:
    source = doc.get("source")
    if isinstance(source, dict) and isinstance(source.get("timestamp_ms"), int):
        return float(source["timestamp_ms"])
    failed = doc.get("failed_at")
    if isinstance(failed, str):
        try:
            return datetime.fromisoformat(failed).timestamp() * 1000
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Window:
    """Which acks and dead letters belong to the run: produced within [since, until)
    and, if given, of the events of a replay file."""

    since_ms: float | None = None
    until_ms: float | None = None
    event_ids: frozenset[str] | None = None
    raw_values: frozenset[bytes] | None = None

    def _in_time(self, at_ms: float | None) -> bool:
        if at_ms is None:
            return self.since_ms is None and self.until_ms is None
        if self.since_ms is not None and at_ms < self.since_ms:
            return False
        return self.until_ms is None or at_ms < self.until_ms

    def has_ack(self, ack: Ack) -> bool:
        if self.event_ids is not None and ack.event_id not in self.event_ids:
            return False
        return self._in_time(ack.start_ms)

    def has_dead_letter(self, doc: dict[str, Any]) -> bool:
        if self.event_ids is not None or self.raw_values is not None:
            by_id = self.event_ids is not None and doc.get("event_id") in self.event_ids
            by_raw = self.raw_values is not None and dead_letter_raw(doc) in self.raw_values
            if not (by_id or by_raw):
                return False
        return self._in_time(_dead_letter_ms(doc))

    def describe(self) -> dict[str, Any]:
        return {
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "events": None if self.event_ids is None else len(self.event_ids),
        }


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> float:
    """``90s``, ``10m``, ``2h``, ``1d`` or plain seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return float(text)


def parse_time_ms(text: str) -> float:
    """Epoch milliseconds, or an ISO 8601 time (UTC when it names no zone)."""
    stripped = text.strip()
    if re.fullmatch(r"\d{10,}", stripped):
        return float(stripped)
    parsed = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000
