"""Batches taken straight from an agent's channel buffer (streams/service/event_batches.py),
against small stand-ins for faust's stream, channel, consumer and flow control: the
rules it keeps from faust's per-event iterator (stale events acked and skipped, events
tracked before processing, acks only when asked) and how a batch is cut."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.service.event_batches import EventBatches

TOPIC = "memory.events"


@dataclass
class Message:
    offset: int
    generation_id: int = 1
    topic: str = TOPIC
    tracked: bool = False


@dataclass
class Event:
    message: Message


@dataclass
class Flow:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class Consumer:
    tracked: list[int] = field(default_factory=list)

    def track_message(self, message: Message) -> None:
        self.tracked.append(message.offset)


@dataclass
class Topics:
    acking_topics: set[str] = field(default_factory=lambda: {TOPIC})


@dataclass
class App:
    consumer: Consumer = field(default_factory=Consumer)
    consumer_generation_id: int = 1
    flow_control: Flow = field(default_factory=Flow)
    topics: Topics = field(default_factory=Topics)


class Channel:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.iterated = False

    def __aiter__(self) -> Channel:
        self.iterated = True  # faust registers the topic with its conductor here
        return self

    async def __anext__(self) -> Event:
        return await self.queue.get()


class Stream:
    def __init__(self) -> None:
        self.app = App()
        self.channel = Channel()
        self.acked: list[int] = []

    async def ack(self, event: Event) -> bool:
        self.acked.append(event.message.offset)
        return True


def put(stream: Stream, *offsets: int, generation: int = 1) -> None:
    for offset in offsets:
        stream.channel.queue.put_nowait(Event(Message(offset, generation)))


def offsets(events: list[Any]) -> list[int]:
    return [e.message.offset for e in events]


async def test_what_is_buffered_comes_at_once_cut_at_the_batch_size() -> None:
    stream = Stream()
    batches = EventBatches(stream, max_batch=3, linger_s=5.0)
    assert stream.channel.iterated
    put(stream, *range(7))
    # a full batch never waits for the linger
    first = await asyncio.wait_for(batches.next_batch(), 1.0)
    second = await asyncio.wait_for(batches.next_batch(), 1.0)
    assert offsets(first) == [0, 1, 2] and offsets(second) == [3, 4, 5]
    # taken events are tracked as pending acks, and nothing is acked until asked
    assert stream.app.consumer.tracked == [0, 1, 2, 3, 4, 5]
    assert stream.acked == []
    await batches.ack(first)
    assert stream.acked == [0, 1, 2]


async def test_a_short_batch_waits_the_linger_from_its_first_event() -> None:
    stream = Stream()
    batches = EventBatches(stream, max_batch=10, linger_s=0.2)
    put(stream, 1)

    async def later() -> None:
        await asyncio.sleep(0.05)
        put(stream, 2)

    task = asyncio.ensure_future(later())
    batch = await asyncio.wait_for(batches.next_batch(), 2.0)
    await task
    assert offsets(batch) == [1, 2]
    # nothing more arrives: the next batch is what the buffer holds after the linger
    put(stream, 3)
    assert offsets(await asyncio.wait_for(batches.next_batch(), 2.0)) == [3]


async def test_events_of_an_earlier_generation_are_acked_and_skipped() -> None:
    stream = Stream()
    stream.app.consumer_generation_id = 2
    batches = EventBatches(stream, max_batch=10, linger_s=0.0)
    put(stream, 1, 2, generation=1)  # fetched before the rebalance
    put(stream, 3, 4, generation=2)
    batch = await batches.next_batch()
    assert offsets(batch) == [3, 4]
    assert stream.acked == [1, 2]
    assert stream.app.consumer.tracked == [3, 4]


async def test_nothing_is_processed_while_flow_control_is_suspended() -> None:
    stream = Stream()
    stream.app.flow_control.active = False  # a rebalance is under way
    batches = EventBatches(stream, max_batch=10, linger_s=0.0)
    put(stream, 1, 2)
    assert await batches.next_batch() == []
    assert stream.acked == [1, 2] and stream.app.consumer.tracked == []


class StoppingQueue(asyncio.Queue[Event]):
    """What faust's channel does when its stream stops: the next get raises."""

    async def get(self) -> Event:
        if self.empty():
            raise StopAsyncIteration
        return await super().get()


async def test_a_stopping_channel_ends_the_iteration() -> None:
    stream = Stream()
    stream.channel.queue = StoppingQueue()
    batches = EventBatches(stream, max_batch=2, linger_s=0.0)
    put(stream, 1)
    assert [offsets(batch) async for batch in batches] == [[1]]


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EventBatches(Stream(), max_batch=0, linger_s=0.0)
