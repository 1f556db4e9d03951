"""memory_state follows its partition: restored from the changelog topic by whoever
owns the partition next, whatever its local copy holds (real Kafka)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.core.state import MemoryState, content_hash
from processors.metrics import build_metrics
from processors.ports import StateWrite
from streams import clients
from streams.service.state import PartitionedState
from streams.settings import Settings


def state(version: int, content: str, position: int) -> MemoryState:
    return MemoryState(version, content, content_hash(content), position=position)


@pytest.fixture
async def make_store(
    stack: Settings, topic_factory: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Callable[[str], PartitionedState]]:
    topic = await topic_factory(4, **{"cleanup.policy": "compact"})
    producer = clients.resilient_producer(stack, delivery_timeout_s=30)
    await producer.start()
    stores: list[PartitionedState] = []

    def make(name: str) -> PartitionedState:
        store = PartitionedState(
            tmp_path / name / "memory_state",
            topic,
            lambda: producer,
            lambda: clients.follower_consumer(stack, from_beginning=True),
            build_metrics(CollectorRegistry()),
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    await producer.stop()


async def test_a_new_owner_restores_the_partition_from_the_changelog(
    make_store: Callable[[str], PartitionedState], tmp_path: Path
) -> None:
    first = make_store("first")
    await first.ready([1, 2])
    assert first.restores == [(1, 0, first.restores[0][2]), (2, 0, first.restores[1][2])]
    for round_ in range(3):  # three batches: the changelog holds older versions too
        writes = [
            StateWrite(1, f"t/m{i}", state(round_ + 1, f"v{round_}", round_)) for i in range(50)
        ]
        await first.commit(writes, {1: round_, 2: 10 + round_})
    assert first.get(1, "t/m7") == state(3, "v2", 2)
    assert (first.applied_through(1), first.applied_through(2)) == (2, 12)

    # a new host, or a wiped disk: nothing local, everything from the changelog
    second = make_store("second")
    await second.ready([1, 2])
    assert {p: n for p, n, _ in second.restores} == {1: 3 * 51, 2: 3}
    for i in range(50):
        assert second.get(1, f"t/m{i}") == state(3, "v2", 2)
    assert (second.applied_through(1), second.applied_through(2)) == (2, 12)
    assert second.get(2, "t/m7") is None  # states are per partition
    again = len(second.restores)
    await second.ready([1, 2])
    assert len(second.restores) == again  # ready already: no second restore


async def test_a_partition_that_comes_back_reads_only_what_changed_meanwhile(
    make_store: Callable[[str], PartitionedState],
) -> None:
    a, b = make_store("a"), make_store("b")
    await a.ready([0])
    await a.commit(
        [StateWrite(0, "t/x", state(1, "old", 0)), StateWrite(0, "t/y", state(1, "y", 1))], {0: 1}
    )
    a.revoke([0])  # the partition moves to b
    await b.ready([0])
    assert b.get(0, "t/x") == state(1, "old", 0)
    await b.commit([StateWrite(0, "t/x", state(2, "new", 2))], {0: 2})
    b.revoke([0])  # and comes back to a, whose copy is stale
    assert a.get(0, "t/x") == state(1, "old", 0)
    await a.ready([0])
    assert a.get(0, "t/x") == state(2, "new", 2)
    assert a.get(0, "t/y") == state(1, "y", 1)
    assert a.applied_through(0) == 2
    assert a.restores[-1][1] == 2  # b's state record and its applied offset, nothing more


async def test_a_local_copy_the_changelog_does_not_back_is_discarded(
    make_store: Callable[[str], PartitionedState],
) -> None:
    """A copy further along than the changelog (the topic was deleted and made again)
    is not trusted: the partition is restored from the changelog alone."""
    store = make_store("ahead")
    await store.ready([3])
    await store.commit([StateWrite(3, "t/z", state(1, "z", 0))], {3: 0})
    store._db.put(b"c" + (3).to_bytes(4, "big"), b"999")  # as if the topic had been longer
    store._db.put(b"m" + (3).to_bytes(4, "big") + b"t/ghost", b"{}")
    store.revoke([3])
    await store.ready([3])
    assert store.get(3, "t/ghost") is None
    assert store.get(3, "t/z") == state(1, "z", 0)
