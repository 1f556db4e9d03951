"""``memory_state``, which follows its partition. Not pure.

:class:`PartitionedState` is the worker's ``StateStore``: a local rocksdict copy of the
state of each ``memory.events`` partition the worker owns, made durable in the
compacted changelog topic ``memory.state`` (partition p of the changelog holds the
states of the memories of events partition p, key ``tenant/memory``, plus one
``__applied__`` record: how far the partition was applied). Whoever owns a partition
next restores it from the changelog before its first batch:

- from the offset its local copy was current up to, when it has one (a restart, or
  a partition that comes back: only what others wrote since is read);
- from the start of the compacted changelog when it has none (a new host, a wiped
  disk) or when the local copy cannot be trusted (the changelog is shorter than the
  copy thinks, or starts after it).

A commit sends a batch's states to the changelog and waits for the broker, then
writes them and the new changelog position locally in one atomic write batch; reads
see only committed states. Restores are timed (``agentmem_state_restore_seconds``).

Why not faust's changelogged Tables: see ARCHITECTURE.md (their recovery hung twice in
our SIGKILL tests). This store keeps what they promise (state that follows its
partition, a compacted changelog, local RocksDB) with a restore we can test, time and
reason about: it is a plain read of one partition from an offset to the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import Options, Rdict, WriteBatch

from processors.adapters.kafka_sink import Record, ResilientProducer
from processors.core.state import MemoryState
from processors.metrics import Metrics
from processors.ports import StateWrite

__all__ = ["APPLIED_KEY", "LocalState", "PartitionedState"]

log = logging.getLogger(__name__)

#: The changelog key of a partition's applied offset (memory keys always hold a '/').
APPLIED_KEY = b"__applied__"
#: Changelog records read per fetch while restoring.
RESTORE_FETCH = 5000


def _part(partition: int) -> bytes:
    return partition.to_bytes(4, "big")


def _state_key(partition: int, key: bytes) -> bytes:
    return b"m" + _part(partition) + key


def _checkpoint_key(partition: int) -> bytes:
    return b"c" + _part(partition)


def _applied_key(partition: int) -> bytes:
    return b"a" + _part(partition)


#: Recomputes a partition's states from memory.events when the changelog has none of
#: it though the group applied it: (states, applied offset), or None when the group
#: never applied the partition (streams/service/state_rebuild.py).
Recover = Callable[[int], Awaitable[tuple[list[StateWrite], int] | None]]


def encode_state(state: MemoryState) -> bytes:
    return json.dumps(state.to_dict(), separators=(",", ":")).encode()


def decode_state(raw: bytes) -> MemoryState:
    """What :func:`encode_state` wrote (orjson reads it; the standard library what
    orjson refuses, such as an escaped lone surrogate)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = json.loads(raw)
    return MemoryState.from_dict(data)


class _LocalCopy:
    """What both stores keep locally: states and applied offsets by partition, in a
    rocksdict database (write-ahead logged: it survives SIGKILL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), options=Options(raw_mode=True))

    def applied_through(self, partition: int) -> int:
        raw = self._db.get(_applied_key(partition))
        return int(raw) if raw is not None else -1

    def get(self, partition: int, key: str) -> MemoryState | None:
        raw = self._db.get(_state_key(partition, key.encode()))
        return decode_state(raw) if raw is not None else None

    def tenant_keys(self, partition: int, tenant: str) -> list[str]:
        """Keys ``tenant/...`` in ``partition`` ('/' is in no tenant name, so the
        prefix is the tenant's alone)."""
        prefix = _state_key(partition, f"{tenant}/".encode())
        found = []
        for key in self._db.keys(from_key=prefix):
            if not isinstance(key, bytes) or not key.startswith(prefix):
                break
            found.append(key[len(_state_key(partition, b"")) :].decode())
        return found

    def close(self) -> None:
        self._db.close()


class PartitionedState(_LocalCopy):
    """The ``StateStore`` of the worker: local copies of the owned partitions' states,
    restored from and committed to the changelog topic ``changelog``.

    ``producer`` sends the changelog records (the worker's :class:`ResilientProducer`,
    started by its owner); ``consumer`` makes an unstarted consumer without a group for
    restores."""

    def __init__(
        self,
        path: Path,
        changelog: str,
        producer: Callable[[], ResilientProducer],
        consumer: Callable[[], AIOKafkaConsumer],
        metrics: Metrics,
        recover: Recover | None = None,
    ) -> None:
        super().__init__(path)
        self.changelog = changelog
        self._producer, self._consumer = producer, consumer
        self._recover = recover
        self.metrics = metrics
        self._ready: set[int] = set()
        self._lock = asyncio.Lock()
        self.restores: list[tuple[int, int, float]] = []  # (partition, records, seconds)

    # -- ownership ------------------------------------------------------------------

    def revoke(self, partitions: Collection[int]) -> None:
        """Partitions another worker may own now: restored again before their next use."""
        self._ready.difference_update(partitions)

    def assign(self, partitions: Collection[int]) -> None:
        """The worker's whole assignment: the rest is no longer ours."""
        self._ready.intersection_update(partitions)
        self.metrics.partitions_owned.set(len(partitions))

    async def ready(self, partitions: Collection[int]) -> None:
        missing = [p for p in partitions if p not in self._ready]
        if not missing:
            return
        async with self._lock:
            for partition in sorted(missing):
                if partition not in self._ready:
                    await self._restore(partition)
                    if self.applied_through(partition) < 0:
                        await self._recover_from_log(partition)
                    self._ready.add(partition)

    # -- commits ----------------------------------------------------------------------

    async def commit(self, writes: Sequence[StateWrite], applied: Mapping[int, int]) -> None:
        records: dict[int, list[Record]] = defaultdict(list)
        for write in writes:
            records[write.partition].append((write.key.encode(), encode_state(write.state)))
        for partition, offset in applied.items():
            if offset > self.applied_through(partition):
                records[partition].append((APPLIED_KEY, str(offset).encode()))
        if not records:
            return
        producer = self._producer()
        parts = list(records)
        highest = await asyncio.gather(
            *(producer.send_all(self.changelog, records[p], partition=p) for p in parts)
        )
        batch = WriteBatch(raw_mode=True)
        for partition, last in zip(parts, highest, strict=True):
            for key, value in records[partition]:
                self._apply(batch, partition, key or b"", value)
            current = self._checkpoint(partition)
            if last is not None and (current is None or last + 1 > current):
                batch.put(_checkpoint_key(partition), str(last + 1).encode())
        self._db.write(batch)

    # -- restore ----------------------------------------------------------------------

    def _checkpoint(self, partition: int) -> int | None:
        raw = self._db.get(_checkpoint_key(partition))
        return int(raw) if raw is not None else None

    def _apply(self, batch: WriteBatch, partition: int, key: bytes, value: bytes | None) -> None:
        if key == APPLIED_KEY:
            if value is not None:
                batch.put(_applied_key(partition), value)
        elif value is None:
            batch.delete(_state_key(partition, key))
        else:
            batch.put(_state_key(partition, key), value)

    def _wipe(self, partition: int) -> None:
        """Forget the local copy of ``partition``."""
        prefix = b"m" + _part(partition)
        batch = WriteBatch(raw_mode=True)
        for key in self._db.keys(from_key=prefix):
            if not isinstance(key, bytes) or not key.startswith(prefix):
                break
            batch.delete(key)
        batch.delete(_checkpoint_key(partition))
        batch.delete(_applied_key(partition))
        self._db.write(batch)

    async def _restore(self, partition: int) -> None:
        started = time.monotonic()
        tp = TopicPartition(self.changelog, partition)
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign([tp])
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            local = self._checkpoint(partition)
            if local is None or not begin <= local <= end:
                if local is not None:
                    log.warning(
                        "memory_state partition %d: local copy at changelog offset %d, but "
                        "%s[%d] holds %d..%d; restoring it from the start",
                        partition, local, self.changelog, partition, begin, end,
                    )  # fmt: skip
                self._wipe(partition)
                local = begin
            records = await self._read(consumer, tp, local, end)
        finally:
            await consumer.stop()
        seconds = time.monotonic() - started
        self.metrics.state_restore_seconds.observe(seconds)
        self.metrics.state_restored_records.inc(records)
        self.restores.append((partition, records, seconds))
        log.warning(  # WARNING: faust keeps its workers' logs at that level
            "memory_state partition %d ready: %d changelog record(s) read (offsets %d..%d) "
            "in %.3fs",
            partition, records, local, end, seconds,
        )  # fmt: skip

    async def _recover_from_log(self, partition: int) -> None:
        """The changelog knows nothing of ``partition``: if the group applied it all the
        same (the changelog was lost), its states are recomputed from memory.events
        rather than starting empty."""
        if self._recover is None:
            return
        started = time.monotonic()
        recovered = await self._recover(partition)
        if recovered is None:
            return
        writes, applied = recovered
        log.error(
            "memory_state partition %d: the changelog %s holds nothing of it, but the group "
            "applied it up to offset %d; recomputed %d state(s) from memory.events in %.1fs",
            partition, self.changelog, applied, len(writes), time.monotonic() - started,
        )  # fmt: skip
        await self.commit(writes, {partition: applied})

    async def _read(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int
    ) -> int:
        """Apply the changelog records of ``tp`` from ``start`` up to ``end``; how many."""
        if start >= end:
            return 0
        consumer.seek(tp, start)
        count = 0
        while await consumer.position(tp) < end:
            fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=RESTORE_FETCH)
            batch = WriteBatch(raw_mode=True)
            last = None
            for message in fetched.get(tp, []):
                if message.offset >= end:
                    break
                if message.key is not None:
                    self._apply(batch, tp.partition, message.key, message.value)
                    count += 1
                last = message.offset
            if last is not None:
                batch.put(_checkpoint_key(tp.partition), str(last + 1).encode())
                self._db.write(batch)
        self._db.put(_checkpoint_key(tp.partition), str(end).encode())
        return count


class LocalState(_LocalCopy):
    """A ``StateStore`` in a local rocksdict alone, for work that owns every partition
    and keeps no changelog: ``agentmem rebuild``. States and applied offsets of a batch
    are written in one atomic write, so a rebuild killed anywhere resumes exactly."""

    async def ready(self, partitions: Collection[int]) -> None:
        return None

    async def commit(self, writes: Sequence[StateWrite], applied: Mapping[int, int]) -> None:
        batch = WriteBatch(raw_mode=True)
        for write in writes:
            batch.put(_state_key(write.partition, write.key.encode()), encode_state(write.state))
        for partition, offset in applied.items():
            if offset > self.applied_through(partition):
                batch.put(_applied_key(partition), str(offset).encode())
        self._db.write(batch)
