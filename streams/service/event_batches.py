"""Batches of events taken straight from an agent's channel buffer, in place of
faust's ``Stream.take_events``.

``take_events`` moves every event through faust's per-event stream iterator: a yield
to the event loop, a processor call and a context variable per event, about 50 µs
each here, so a batch of 256 took ~12 ms to gather even with thousands of events
buffered (profiled on the duplicate benchmark: that gathering was a third of each
batch's time). This takes whatever the channel buffer holds, up to the batch size,
at once; it waits only when the buffer is empty: for a first event, then at most
``linger_s`` from that first event for more.

What faust's iterator does per event, and the pipeline relies on, stays:

* an event fetched before the current rebalance (its generation is not the
  consumer's), or while faust's flow control is suspended, is acked and skipped
  (its partition may have another owner now);
* an event of an acking topic is tracked as unacked when taken, so that a
  rebalance waits (``Consumer.wait_empty``) until its batch is processed and acked:
  a revoked partition's batch is durable before the partition goes;
* :meth:`EventBatches.ack` acks through the stream (offsets, sensors), after the
  batch was processed, as ``take_events`` acked it.

Not pure (faust's channel, consumer and flow control).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

__all__ = ["EventBatches"]


class EventBatches:
    """``async for events in EventBatches(stream, 256, 0.01)``: lists of at most
    ``max_batch`` faust events, each to be passed to :meth:`ack` once processed."""

    def __init__(self, stream: Any, max_batch: int, linger_s: float) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.stream = stream
        self.app = stream.app
        self.max_batch = max_batch
        self.linger_s = max(0.0, linger_s)
        # iterating a topic registers it with faust's conductor (and so the consumer's
        # subscription), as take_events does
        self.channel = aiter(stream.channel)
        self.queue = self.channel.queue

    def __aiter__(self) -> AsyncIterator[list[Any]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[Any]]:
        while True:
            try:
                batch = await self.next_batch()
            except StopAsyncIteration:  # faust ends a stopping stream's channel with it
                return
            if batch:
                yield batch

    async def next_batch(self) -> list[Any]:
        """The next events to process (possibly none, when every event taken was
        stale and skipped)."""
        queue, loop = self.queue, asyncio.get_running_loop()
        taken = [await queue.get()]
        deadline = loop.time() + self.linger_s
        while len(taken) < self.max_batch:
            while len(taken) < self.max_batch and not queue.empty():
                taken.append(queue.get_nowait())
            left = deadline - loop.time()
            if len(taken) >= self.max_batch or left <= 0:
                break
            try:
                taken.append(await asyncio.wait_for(queue.get(), left))
            except TimeoutError:
                break
        return await self._admit(taken)

    async def _admit(self, taken: Sequence[Any]) -> list[Any]:
        """The events to process: stale ones acked and left out, the rest tracked."""
        app = self.app
        consumer, generation = app.consumer, app.consumer_generation_id
        flowing = app.flow_control.is_active()
        acking = app.topics.acking_topics
        events: list[Any] = []
        for event in taken:
            message = event.message
            if not flowing or message.generation_id != generation:
                await self.stream.ack(event)
                continue
            if message.topic in acking and not message.tracked:
                message.tracked = True
                consumer.track_message(message)
            events.append(event)
        return events

    async def ack(self, events: Sequence[Any]) -> None:
        """Ack processed events: their offsets may be committed."""
        for event in events:
            await self.stream.ack(event)
