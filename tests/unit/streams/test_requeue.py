"""Which dead letters `agentmem requeue --stage index|enrich` sends again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.service.requeue import requeueable


def dead(
    offset: int,
    stage: str = "enrich",
    reason: str = "circuit_open",
    failed_at: str = "2026-11-24T01:00:00+00:00",
    encoding: str = "utf-8",
) -> dict[str, Any]:
    return {
        "stage": stage,
        "reason": reason,
        "key": "tenant-a",
        "value": f'{{"n": {offset}}}',
        "value_encoding": encoding,
        "failed_at": failed_at,
        "source": {"topic": "x.memory.enrich", "partition": 0, "offset": offset},
    }


def test_only_enrich_failures_that_a_retry_can_fix_each_once() -> None:
    docs = [
        dead(1),
        dead(1, reason="timeout"),  # the same request failed twice: sent once
        dead(2, stage="validate", reason="invalid_json"),
        dead(3, reason="invalid_request"),
        dead(4, encoding="base64"),
        dead(5, reason="connection_error"),
    ]
    assert requeueable(docs).records == [(b"tenant-a", b'{"n": 1}'), (b"tenant-a", b'{"n": 5}')]


def test_since_keeps_later_failures_and_reads_naive_times_as_utc() -> None:
    docs = [dead(1, failed_at="2026-11-24T00:59:59+00:00"), dead(2)]
    later = requeueable(docs, since=datetime(2026, 11, 24, 1, 0))
    assert later.records == [(b"tenant-a", b'{"n": 2}')]
    assert len(requeueable(docs, since=datetime(2026, 11, 24, 0, 0, tzinfo=UTC)).records) == 2


def test_index_stage_failures_go_back_with_their_key_and_bytes() -> None:
    docs = [
        dead(1, stage="index", reason="internal_error"),
        dead(2, stage="index", reason="weaviate_unavailable"),
        dead(3, stage="validate", reason="invalid_json"),  # a retry cannot fix it
        dead(4, stage="apply", reason="memory_not_found"),
        dead(5, stage="enrich"),
        {**dead(6, stage="index"), "value": "AAEC", "value_encoding": "base64"},
        {**dead(7, stage="index"), "truncated": True},
    ]
    chosen = requeueable(docs, "index")
    assert chosen.records == [
        (b"tenant-a", b'{"n": 1}'),
        (b"tenant-a", b'{"n": 2}'),
        (b"tenant-a", b"\x00\x01\x02"),
    ]
    assert chosen.truncated == 1


def test_a_dead_letter_tombstoned_by_an_erase_is_not_requeued() -> None:
    from aiokafka import ConsumerRecord

    from streams.service.requeue import _DeadLetters
    from streams.settings import Settings

    reader = _DeadLetters(Settings(topic_prefix="u."))

    def arrive(key: bytes | None, value: bytes | None) -> None:
        reader.on_record(ConsumerRecord("dl", 0, 0, 0, 0, key, value, None, 0, 0, []))

    arrive(b"t\x1fm1\x1fe/0/1", b'{"n": 1}')
    arrive(None, b'{"n": 2}')
    arrive(b"t\x1fm2\x1fe/0/2", b'{"n": 3}')
    arrive(b"t\x1fm1\x1fe/0/1", None)  # the erase of m1
    assert reader.docs == [{"n": 2}, {"n": 3}]
