"""Topic followers on a fake consumer: the ack watcher and the history view."""

from __future__ import annotations

import asyncio
import json

import pytest

from streams.client import acks as acks_module
from streams.client.acks import AckWatcher
from streams.client.history import HistoryView
from streams.kafka_connection import KafkaConnection
from tests.unit.streams.fakes import FakeConsumer, ack

UNUSED = KafkaConnection("unused:9092")


def watcher(consumer: FakeConsumer) -> AckWatcher:
    return AckWatcher(
        UNUSED,
        consumer.topic,
        consumer_factory=lambda: consumer,
        partitions=consumer.partitions,
    )


def view(consumer: FakeConsumer) -> HistoryView:
    return HistoryView(
        UNUSED,
        consumer.topic,
        consumer_factory=lambda: consumer,
        partitions=consumer.partitions,
    )


def change(version: int, **fields: object) -> bytes:
    return json.dumps({"version": version, **fields}).encode()


async def test_acks_before_start_are_not_seen_later_ones_are() -> None:
    consumer = FakeConsumer("memory.indexed")
    consumer.append(0, b"t", ack("old"))
    acks = watcher(consumer)
    await acks.start()
    try:
        consumer.append(1, b"t", ack("new", version=4))
        found = await acks.wait(["new"], timeout_s=2)
        assert found == {"new": {"event_id": "new", "outcome": "applied", "version": 4}}
        with pytest.raises(TimeoutError, match="1 of 1 events not indexed yet"):
            await acks.wait(["old"], timeout_s=0.1)
    finally:
        await acks.stop()
    assert consumer.started and consumer.stopped


async def test_wait_returns_once_the_last_ack_arrives() -> None:
    consumer = FakeConsumer("memory.indexed")
    acks = watcher(consumer)
    await acks.start()
    try:
        waiting = asyncio.create_task(acks.wait(["a", "b"], timeout_s=5))
        consumer.append(0, b"t", ack("a"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        consumer.append(1, b"t", ack("b", outcome="no-op"))
        assert (await waiting)["b"]["outcome"] == "no-op"
    finally:
        await acks.stop()


async def test_an_unreadable_ack_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    consumer = FakeConsumer("memory.indexed")
    acks = watcher(consumer)
    await acks.start()
    try:
        consumer.append(0, b"t", b"not json")
        consumer.append(0, b"t", ack("after"))
        assert "after" in await acks.wait(["after"], timeout_s=2)
    finally:
        await acks.stop()
    assert "skipping unreadable record" in caplog.text


def test_only_the_newest_acks_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acks_module, "KEEP_ACKS", 2)
    acks = AckWatcher(UNUSED, "memory.indexed")
    consumer = FakeConsumer("memory.indexed")
    for n in range(3):
        consumer.append(0, b"t", ack(f"e{n}"))
    for record in consumer.log[0]:
        acks.on_record(record)
    assert list(acks.acks) == ["e1", "e2"]


async def test_a_missing_topic_fails_start() -> None:
    consumer = FakeConsumer("memory.indexed", partitions=0)
    with pytest.raises(RuntimeError, match="does not exist"):
        await watcher(consumer).start()
    assert not consumer.started


async def test_history_reads_from_the_beginning_in_version_order() -> None:
    consumer = FakeConsumer("memory.history")
    consumer.append(0, b"t/m1/2", change(2, content="b"))
    consumer.append(0, b"t/m1/1", change(1, content="a"))
    consumer.append(1, b"t/m2/1", change(1, content="other"))
    consumer.append(1, None, b"{}")  # no key: not a change
    history = view(consumer)
    await history.start()
    try:
        assert [c["content"] for c in await history.history("t", "m1")] == ["a", "b"]
        assert await history.history("t", "nope") == []
        consumer.append(0, b"t/m1/3", change(3, content="c"))
        assert [c["version"] for c in await history.history("t", "m1")] == [1, 2, 3]
    finally:
        await history.stop()


async def test_history_tombstones_remove_a_change() -> None:
    consumer = FakeConsumer("memory.history")
    consumer.append(0, b"t/m1/1", change(1))
    consumer.append(0, b"t/m1/2", change(2))
    consumer.append(0, b"t/m1/1", None)
    history = view(consumer)
    await history.start()
    try:
        assert await history.history("t", "m1") == [{"version": 2}]
    finally:
        await history.stop()


async def test_history_times_out_when_the_topic_cannot_be_read_to_its_end() -> None:
    consumer = FakeConsumer("memory.history")
    consumer.stalled = True
    consumer.append(0, b"t/m1/1", change(1))
    history = view(consumer)
    await history.start()
    try:
        with pytest.raises(TimeoutError, match="not caught up"):
            await history.catch_up(timeout_s=0.05)
    finally:
        await history.stop()


async def test_a_follower_used_before_start_says_so() -> None:
    with pytest.raises(RuntimeError, match="has not been started"):
        await view(FakeConsumer("memory.history")).catch_up()
