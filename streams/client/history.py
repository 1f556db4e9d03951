"""A projection of the compacted ``memory.history`` topic: each memory's changes in order.

Not pure (follows a topic from its beginning); the projection itself
(:meth:`HistoryView.on_record`) is plain code.
"""

from __future__ import annotations

import json
from typing import Any

from aiokafka import ConsumerRecord

from streams.client.topic_follower import TopicFollower


class HistoryView(TopicFollower):
    from_beginning = True

    def init_state(self) -> None:
        self._by_memory: dict[str, dict[int, dict[str, Any]]] = {}

    def on_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            return
        memory, _, version = record.key.decode().rpartition("/")
        changes = self._by_memory.setdefault(memory, {})
        if record.value is None:  # tombstone (erase)
            changes.pop(int(version), None)
        else:
            changes[int(version)] = json.loads(record.value)

    async def history(self, tenant: str, memory_id: str) -> list[dict[str, Any]]:
        """Changes of one memory, oldest first, as of now (reads up to the topic's end)."""
        await self.catch_up()
        changes = self._by_memory.get(f"{tenant}/{memory_id}", {})
        return [changes[v] for v in sorted(changes)]
