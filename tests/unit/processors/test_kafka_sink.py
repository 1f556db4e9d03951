"""ResilientProducer and KafkaRecordSink against fake producers: a broken producer is
replaced and the unacknowledged records re-sent, retriable errors pass unchanged, Kafka
refusals become PermanentError, stop is idempotent. No services."""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import errors as ke

from processors.adapters.kafka_errors import KAFKA_TRANSIENT, kafka_fatal, kafka_permanent_reason
from processors.adapters.kafka_sink import (
    KafkaRecordSink,
    ProducerStoppedError,
    Record,
    ResilientProducer,
)
from processors.core.errors import (
    KAFKA_TRANSIENT_NAMES,
    PermanentError,
    TransientError,
    is_retriable,
)
from processors.core.records import OutRecord
from streams.client.publisher import EventPublisher
from streams.settings import Settings


class FakeBroker:
    """Where fake producers deliver: topic -> records, in arrival order."""

    def __init__(self) -> None:
        self.topics: dict[str, list[Record]] = defaultdict(list)


@dataclass
class Plan:
    """How one fake producer behaves.

    ``ok`` sends are acknowledged, then every later delivery future fails with ``fail``
    (or, with ``raise_on_send``, ``send`` itself raises it); ``hold`` leaves futures
    pending forever; ``start_error`` makes ``start`` fail; ``stop_error`` makes ``stop``
    fail (it still stops)."""

    ok: int = 1_000_000
    fail: BaseException | None = None
    raise_on_send: bool = False
    hold: bool = False
    start_error: BaseException | None = None
    stop_error: BaseException | None = None


@dataclass
class FakeProducer:
    broker: FakeBroker
    plan: Plan
    started: bool = False
    stop_calls: int = 0
    sent: int = 0
    held: list[asyncio.Future[Any]] = field(default_factory=list)

    async def start(self) -> None:
        if self.plan.start_error is not None:
            raise self.plan.start_error
        self.started = True

    async def stop(self) -> None:
        self.stop_calls += 1
        self.started = False
        if self.plan.stop_error is not None:
            raise self.plan.stop_error

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Any]:
        if not self.started:
            raise ke.ProducerClosed()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.plan.hold:
            self.held.append(future)
            return future
        if self.sent >= self.plan.ok and self.plan.fail is not None:
            if self.plan.raise_on_send:
                raise copy.copy(self.plan.fail)
            future.set_exception(copy.copy(self.plan.fail))
            return future
        self.sent += 1
        log = self.broker.topics[topic if partition is None else f"{topic}/{partition}"]
        log.append((key, value))
        future.set_result(SimpleNamespace(offset=len(log) - 1))
        return future


class Factory:
    """Makes one fake producer per call, following ``plans`` (then healthy ones)."""

    def __init__(self, broker: FakeBroker, *plans: Plan) -> None:
        self.broker = broker
        self.plans = list(plans)
        self.made: list[FakeProducer] = []

    def __call__(self) -> FakeProducer:
        plan = self.plans.pop(0) if self.plans else Plan()
        producer = FakeProducer(self.broker, plan)
        self.made.append(producer)
        return producer


def records(n: int, tag: str = "r") -> list[Record]:
    return [(f"k{i % 3}".encode(), f"{tag}{i}".encode()) for i in range(n)]


def sender_died() -> ke.KafkaError:
    return ke.KafkaError("Unexpected error during batch delivery")


FATAL: list[Callable[[], BaseException]] = [
    ke.OutOfOrderSequenceNumber,
    ke.UnknownProducerId,
    ke.InvalidProducerEpoch,
    ke.ProducerFenced,
    ke.ProducerClosed,
    ke.IllegalStateError,
    sender_died,
]


@pytest.mark.parametrize("make_error", FATAL, ids=lambda f: getattr(f, "__name__", str(f)))
@pytest.mark.parametrize("raise_on_send", [False, True], ids=["future", "send"])
async def test_fatal_error_recreates_the_producer_and_resends_the_rest(
    make_error: Callable[[], BaseException], raise_on_send: bool
) -> None:
    broker = FakeBroker()
    factory = Factory(broker, Plan(ok=2, fail=make_error(), raise_on_send=raise_on_send))
    causes: list[BaseException] = []
    producer = ResilientProducer(factory, on_recreate=causes.append)
    await producer.start()

    batch = records(5)
    await producer.send_all("t", batch)

    assert broker.topics["t"] == batch  # the two acknowledged ones are not sent twice
    assert len(factory.made) == 2
    broken, fresh = factory.made
    assert broken.stop_calls == 1 and fresh.started
    assert producer.recreations == 1
    assert [type(c) for c in causes] == [type(make_error())]
    await producer.send_all("t", records(2, "after"))  # the new producer stays in use
    assert len(factory.made) == 2
    await producer.stop()


async def test_errors_while_stopping_a_broken_producer_are_ignored() -> None:
    broker = FakeBroker()
    factory = Factory(
        broker,
        Plan(ok=0, fail=ke.OutOfOrderSequenceNumber(), stop_error=ke.KafkaError("boom")),
    )
    producer = ResilientProducer(factory)
    await producer.start()
    await producer.send_all("t", records(3))
    assert broker.topics["t"] == records(3)
    assert producer.recreations == 1
    await producer.stop()


async def test_a_broken_producer_that_does_not_stop_in_time_is_left_behind() -> None:
    class Stuck(FakeProducer):
        async def stop(self) -> None:
            self.stop_calls += 1
            await asyncio.sleep(3600)

    broker = FakeBroker()
    made: list[FakeProducer] = []

    def factory() -> FakeProducer:
        plan = Plan(ok=0, fail=ke.UnknownProducerId()) if not made else Plan()
        producer = (Stuck if not made else FakeProducer)(broker, plan)
        made.append(producer)
        return producer

    producer = ResilientProducer(factory, stop_timeout_s=0.05)
    await producer.start()
    await producer.send_all("t", records(2))
    assert broker.topics["t"] == records(2)
    assert producer.recreations == 1
    await producer.stop()


@pytest.mark.parametrize(
    "error",
    [
        ke.NotLeaderForPartitionError(),
        ke.KafkaConnectionError("connection refused"),
        ke.RequestTimedOutError(),
        ke.NotEnoughReplicasError(),
        ke.UnknownTopicOrPartitionError(),
        ke.KafkaTimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("raise_on_send", [False, True], ids=["future", "send"])
async def test_retriable_error_propagates_unchanged(
    error: BaseException, raise_on_send: bool
) -> None:
    broker = FakeBroker()
    plan = Plan(ok=1, fail=error, raise_on_send=raise_on_send)
    factory = Factory(broker, plan)
    producer = ResilientProducer(factory)
    await producer.start()

    with pytest.raises(type(error)) as caught:
        await producer.send_all("t", records(3))

    assert is_retriable(caught.value)
    assert len(factory.made) == 1 and producer.recreations == 0
    plan.fail = None  # the broker is fine again: the same producer sends
    await producer.send_all("t", records(1, "again"))
    assert broker.topics["t"][-1] == (b"k0", b"again0")
    await producer.stop()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ke.MessageSizeTooLargeError(), "record_too_large"),
        (ke.RecordListTooLargeError(), "record_too_large"),
        (ke.TopicAuthorizationFailedError("t"), "kafka_unauthorized"),
        (ke.ClusterAuthorizationFailedError(), "kafka_unauthorized"),
        (ke.InvalidTopicError(), "kafka_refused"),
        (ke.CorruptRecordException(), "kafka_refused"),
        (ke.UnknownError(), "kafka_refused"),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, BaseException) else x,
)
@pytest.mark.parametrize("raise_on_send", [False, True], ids=["future", "send"])
async def test_non_retriable_error_becomes_permanent_with_its_reason(
    error: BaseException, reason: str, raise_on_send: bool
) -> None:
    factory = Factory(FakeBroker(), Plan(ok=0, fail=error, raise_on_send=raise_on_send))
    producer = ResilientProducer(factory)
    await producer.start()

    with pytest.raises(PermanentError) as caught:
        await producer.send_all("t", records(2))

    assert caught.value.reason == reason
    assert type(caught.value.__cause__) is type(error)
    assert not is_retriable(caught.value)
    assert producer.recreations == 0
    await producer.stop()


async def test_a_bug_is_not_dressed_up() -> None:
    factory = Factory(FakeBroker(), Plan(ok=0, fail=TypeError("value must be bytes")))
    producer = ResilientProducer(factory)
    await producer.start()
    with pytest.raises(TypeError):
        await producer.send_all("t", records(1))
    await producer.stop()


async def test_stop_is_idempotent_and_a_send_after_it_says_so() -> None:
    factory = Factory(FakeBroker())
    producer = ResilientProducer(factory)
    await producer.start()
    await producer.stop()
    await producer.stop()
    assert factory.made[0].stop_calls == 1
    assert not producer.started
    with pytest.raises(ProducerStoppedError, match="stopped"):
        await producer.send_all("t", records(1))
    with pytest.raises(ProducerStoppedError):
        await producer.start()
    await producer.send_all("t", [])  # nothing to send: nothing to complain about


async def test_send_before_start_says_so() -> None:
    producer = ResilientProducer(Factory(FakeBroker()))
    with pytest.raises(ProducerStoppedError, match="before start"):
        await producer.send_all("t", records(1))
    await producer.stop()  # stopping one never started is fine


async def test_context_manager_starts_and_stops() -> None:
    factory = Factory(FakeBroker())
    async with ResilientProducer(factory) as producer:
        await producer.send_all("t", records(2))
    assert factory.made[0].stop_calls == 1
    assert factory.broker.topics["t"] == records(2)


async def test_delivery_timeout_raises_a_retriable_timeout() -> None:
    factory = Factory(FakeBroker(), Plan(hold=True))
    producer = ResilientProducer(factory, delivery_timeout_s=0.05, stop_timeout_s=0.05)
    await producer.start()
    with pytest.raises(ke.KafkaTimeoutError, match="not acknowledged") as caught:
        await producer.send_all("t", records(3))
    assert is_retriable(caught.value)
    assert producer.recreations == 0
    await producer.stop()


async def test_no_new_producer_while_the_broker_is_down_then_one_when_it_is_back() -> None:
    broker = FakeBroker()
    down = ke.KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")
    factory = Factory(
        broker,
        Plan(ok=0, fail=ke.OutOfOrderSequenceNumber()),
        Plan(start_error=down),
        Plan(start_error=ke.KafkaError("Unable to get cluster metadata over all known brokers")),
    )
    producer = ResilientProducer(factory)
    await producer.start()

    with pytest.raises(ke.KafkaConnectionError) as first:
        await producer.send_all("t", records(2))
    assert first.value is down and is_retriable(first.value)
    with pytest.raises(ke.KafkaError) as second:
        await producer.send_all("t", records(2))
    assert is_retriable(second.value)
    assert producer.recreations == 0
    assert all(p.stop_calls == 1 for p in factory.made)  # failed starts are cleaned up

    await producer.send_all("t", records(2))
    assert broker.topics["t"] == records(2)
    assert producer.recreations == 1
    await producer.stop()


async def test_a_producer_that_stays_broken_ends_in_a_transient_error() -> None:
    plans = [Plan(ok=0, fail=ke.OutOfOrderSequenceNumber()) for _ in range(10)]
    factory = Factory(FakeBroker(), *plans)
    producer = ResilientProducer(factory, max_recreations_per_call=2)
    await producer.start()
    with pytest.raises(TransientError) as caught:
        await producer.send_all("t", records(1))
    assert isinstance(caught.value.__cause__, ke.OutOfOrderSequenceNumber)
    assert is_retriable(caught.value)
    assert producer.recreations == 2
    await producer.stop()


async def test_concurrent_calls_replace_a_broken_producer_once() -> None:
    broker = FakeBroker()
    factory = Factory(broker, Plan(ok=0, fail=ke.OutOfOrderSequenceNumber()))
    producer = ResilientProducer(factory)
    await producer.start()
    batches = [records(4, f"c{n}-") for n in range(5)]
    await asyncio.gather(*(producer.send_all("t", b) for b in batches))
    assert sorted(broker.topics["t"]) == sorted(r for b in batches for r in b)
    assert len(factory.made) == 2 and producer.recreations == 1
    await producer.stop()


async def test_record_sink_sends_out_records_through_the_resilient_producer() -> None:
    broker = FakeBroker()
    factory = Factory(broker, Plan(ok=1, fail=ke.UnknownProducerId()))
    producer = ResilientProducer(factory)
    await producer.start()
    sink = KafkaRecordSink(producer)
    out = [OutRecord(b"a", b"1"), OutRecord(b"b", None), OutRecord(b"c", b"3")]
    await sink.send_all("history", out)
    await sink.send_all("history", [])
    assert broker.topics["history"] == [(b"a", b"1"), (b"b", None), (b"c", b"3")]
    assert producer.recreations == 1
    await producer.stop()


async def test_record_sink_sends_records_with_a_partition_there_in_order() -> None:
    broker = FakeBroker()
    producer = ResilientProducer(Factory(broker))
    await producer.start()
    out = [
        OutRecord(b"t", b"1", 2),
        OutRecord(b"u", b"2"),
        OutRecord(b"t", b"3", 2),
        OutRecord(b"t", b"4", 0),
    ]
    await KafkaRecordSink(producer).send_all("enrich", out)
    assert broker.topics["enrich/2"] == [(b"t", b"1"), (b"t", b"3")]
    assert broker.topics["enrich/0"] == [(b"t", b"4")]
    assert broker.topics["enrich"] == [(b"u", b"2")]
    await producer.stop()


async def test_event_publisher_publishes_through_a_resilient_producer() -> None:
    publisher = EventPublisher(Settings(topic_prefix="unit."), delivery_timeout_s=2.0)
    assert publisher.producer.delivery_timeout_s == 2.0
    broker = FakeBroker()
    publisher.producer = ResilientProducer(
        Factory(broker, Plan(ok=0, fail=ke.OutOfOrderSequenceNumber()))
    )
    async with publisher:
        await publisher.publish_raw(b"tenant-a", b"{}")
        await publisher.publish_many_raw([(b"tenant-b", b"[]"), (b"tenant-a", b"1")])
    assert broker.topics["unit.memory.events"] == [
        (b"tenant-a", b"{}"),
        (b"tenant-b", b"[]"),
        (b"tenant-a", b"1"),
    ]
    assert publisher.producer.recreations == 1


@pytest.mark.parametrize(
    ("error", "fatal", "retriable", "reason"),
    [
        (ke.OutOfOrderSequenceNumber(), True, False, None),
        (ke.UnknownProducerId(), True, False, None),
        (ke.ProducerFenced(), True, False, None),
        (ke.ProducerClosed(), True, False, None),
        (copy.copy(sender_died()), True, False, None),
        (ke.KafkaTimeoutError(), False, True, None),
        (ke.KafkaError("Unable to get cluster metadata over all known brokers"), False, True, None),
        (ke.KafkaConnectionError(), False, True, None),
        (ke.NotLeaderForPartitionError(), False, True, None),
        (ke.MessageSizeTooLargeError(), False, False, "record_too_large"),
        (ke.TopicAuthorizationFailedError("t"), False, False, "kafka_unauthorized"),
        (ke.InvalidTopicError(), False, False, "kafka_refused"),
        (ValueError("not kafka"), False, False, None),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, BaseException) else str(x),
)
def test_kafka_error_classes(
    error: BaseException, fatal: bool, retriable: bool, reason: str | None
) -> None:
    assert kafka_fatal(error) is fatal
    assert is_retriable(error) is retriable
    assert kafka_permanent_reason(error) == reason


def test_core_knows_the_transient_kafka_errors_by_their_names() -> None:
    assert {c.__name__ for c in KAFKA_TRANSIENT} == KAFKA_TRANSIENT_NAMES
    assert all(is_retriable(c()) for c in KAFKA_TRANSIENT)


async def test_send_all_to_a_partition_returns_the_highest_offset() -> None:
    broker = FakeBroker()
    producer = ResilientProducer(Factory(broker))
    await producer.start()
    assert await producer.send_all("t", records(3), partition=2) == 2
    assert await producer.send_all("t", records(2), partition=2) == 4
    assert await producer.send_all("t", []) is None
    assert len(broker.topics["t/2"]) == 5 and "t" not in broker.topics
    await producer.stop()


async def test_the_highest_offset_counts_records_acknowledged_before_a_replacement() -> None:
    broker = FakeBroker()
    factory = Factory(broker, Plan(ok=2, fail=ke.OutOfOrderSequenceNumber()))
    producer = ResilientProducer(factory)
    await producer.start()
    assert await producer.send_all("t", records(5), partition=0) == 4
    assert len(factory.made) == 2
    await producer.stop()
