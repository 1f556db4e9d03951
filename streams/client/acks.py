"""Watch ``memory.indexed`` so that a writer can wait until its events are searchable.

Not pure (follows a topic); the bookkeeping (:meth:`AckWatcher.on_record`) is plain
code that unit tests feed records directly.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord

from streams.client.topic_follower import TopicFollower

KEEP_ACKS = 200_000


class AckWatcher(TopicFollower):
    """Acks seen since start(), by event id (the newest ``KEEP_ACKS``)."""

    from_beginning = False

    def init_state(self) -> None:
        self.acks: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def on_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        ack = json.loads(record.value or b"{}")
        self.acks[str(ack["event_id"])] = ack
        while len(self.acks) > KEEP_ACKS:
            self.acks.popitem(last=False)

    async def wait(self, event_ids: Sequence[str], timeout_s: float) -> dict[str, dict[str, Any]]:
        """The acks of all the events; TimeoutError names how many are missing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            missing = [e for e in event_ids if e not in self.acks]
            if not missing:
                return {e: self.acks[e] for e in event_ids}
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"{len(missing)} of {len(event_ids)} events not indexed yet")
            await self.wait_progress(min(left, 0.5))
