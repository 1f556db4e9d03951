"""Durable writes to Kafka with aiokafka, made to outlive a broker restart.

- :func:`durable_producer`: an idempotent aiokafka producer that waits for all in-sync
  replicas (acks=all); the one producer configuration of the project.
- :class:`ResilientProducer`: owns one such producer, made by a factory. When the producer
  is broken for good (:func:`processors.adapters.kafka_errors.kafka_fatal`: aiokafka issue #1017,
  ``OutOfOrderSequenceNumber`` after a broker restart, and its kin) it is stopped and
  replaced, and the records of the failed call that the broker had not acknowledged are
  sent again through the new one. Retriable errors propagate unchanged (the caller backs
  off and retries); a refusal no retry can change becomes
  :class:`processors.core.errors.PermanentError`.
- :class:`KafkaRecordSink`: the stages' record sink (history, acks, dead letters, enrich
  requests) on top of a :class:`ResilientProducer`.

Delivery is at least once: a record re-sent after a re-creation or a timeout can appear
twice in its topic; everything we write is idempotent for its readers.

An adapter, not pure (network I/O; implements ``ports.RecordSink``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, NoReturn, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from processors.adapters.kafka_errors import kafka_fatal, kafka_permanent_reason
from processors.core.errors import PermanentError, TransientError, is_retriable
from processors.core.records import OutRecord

log = logging.getLogger(__name__)

#: One record to send: (key, value); a None value is a tombstone.
Record = tuple[bytes | None, bytes | None]


def durable_producer(*, request_timeout_ms: int = 40_000, **connection: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas (acks=all).

    ``connection``: aiokafka's ``bootstrap_servers`` and security options (the caller's
    one connection config, ``streams/kafka_connection.py``).

    ``request_timeout_ms`` bounds one produce request and, when a batch is full, the wait
    for room in it. An idempotent aiokafka producer never expires a batch: while the
    broker is away it retries until the broker is back (bound the wait with
    :class:`ResilientProducer`'s ``delivery_timeout_s``)."""
    return AIOKafkaProducer(
        **connection,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        request_timeout_ms=request_timeout_ms,
    )


class Producer(Protocol):
    """What :class:`ResilientProducer` uses of an ``AIOKafkaProducer``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Any]: ...


class ProducerStoppedError(RuntimeError):
    """A send on a :class:`ResilientProducer` that was stopped (or never started)."""

    retriable = False


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a delivery future's exception as seen: we judge it ourselves, later or never."""
    if not future.cancelled():
        future.exception()


def _acked(future: asyncio.Future[Any] | None) -> bool:
    return (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception() is None
    )


def _highest_offset(
    highest: int | None, futures: Sequence[asyncio.Future[Any] | None]
) -> int | None:
    """``highest`` raised to the offsets of the acknowledged ``futures``."""
    for future in futures:
        if future is not None and _acked(future):
            offset = getattr(future.result(), "offset", None)
            if isinstance(offset, int) and (highest is None or offset > highest):
                highest = offset
    return highest


def _raise_judged(exc: BaseException) -> NoReturn:
    """Raise what a caller gets for a non-fatal failure: retriable errors as they are, a
    Kafka refusal as PermanentError, anything else (a bug) as it is."""
    reason = None if is_retriable(exc) else kafka_permanent_reason(exc)
    if reason is not None:
        raise PermanentError(reason, repr(exc)) from exc
    raise exc


class ResilientProducer:
    """An aiokafka producer that is replaced when it breaks for good.

    ``factory`` makes a new, unstarted producer (e.g. ``lambda: durable_producer(**options)``).
    :meth:`send_all` sends records and waits until the broker acknowledged all of them:

    - fatal producer error (:func:`processors.adapters.kafka_errors.kafka_fatal`): the producer is
      stopped (errors ignored, at most ``stop_timeout_s``), a new one is made, and the
      records not yet acknowledged are sent again; at most ``max_recreations_per_call``
      times per call, then :class:`processors.core.errors.TransientError`;
    - retriable error (``KafkaError.retriable``, timeouts): raised unchanged;
    - a refusal no retry can change: :class:`processors.core.errors.PermanentError` with
      reason ``record_too_large``, ``kafka_unauthorized`` or ``kafka_refused``;
    - the whole call takes at most ``delivery_timeout_s`` (None: as long as the broker
      takes to come back), then ``KafkaTimeoutError`` (retriable); the records already
      handed to aiokafka may still arrive later.

    If no producer can be made (the broker is down), the call raises the retriable error
    and the next call tries again. ``recreations`` counts the producers made to replace
    a broken (or unstartable) one; ``on_recreate(cause)`` is called for each.
    Concurrent calls share the producer; one broken producer is replaced once.
    """

    def __init__(
        self,
        factory: Callable[[], Producer],
        *,
        delivery_timeout_s: float | None = None,
        stop_timeout_s: float = 10.0,
        max_recreations_per_call: int = 3,
        on_recreate: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._factory = factory
        self.delivery_timeout_s = delivery_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.max_recreations_per_call = max_recreations_per_call
        self.on_recreate = on_recreate
        self.recreations = 0
        self._producer: Producer | None = None
        self._cause: BaseException | None = None  # why the last producer was retired
        self._state = "new"  # new -> started -> stopped
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._state == "started"

    async def start(self) -> None:
        """Make and start the first producer; errors (broker down) propagate."""
        if self._state == "stopped":
            raise ProducerStoppedError("this ResilientProducer was stopped; make a new one")
        if self._state == "started":
            return
        async with self._lock:
            self._producer = await self._new_producer()
        self._state = "started"

    async def stop(self) -> None:
        """Flush and stop the producer (at most ``stop_timeout_s``). Idempotent."""
        if self._state == "stopped":
            return
        self._state = "stopped"
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await self._close(producer, "stop")

    async def __aenter__(self) -> ResilientProducer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- sending -------------------------------------------------------------------

    async def send_all(
        self, topic: str, records: Sequence[Record], *, partition: int | None = None
    ) -> int | None:
        """Send every record to ``topic`` (to ``partition``, or where its key hashes);
        return once the broker acknowledged all, with the highest offset it gave one
        (None when there was nothing to send)."""
        if not records:
            return None
        loop = asyncio.get_running_loop()
        deadline = (
            None if self.delivery_timeout_s is None else loop.time() + self.delivery_timeout_s
        )
        pending = list(records)
        replaced = 0
        highest: int | None = None
        while True:
            producer = await self._current()
            entries, error = await self._attempt(producer, topic, pending, deadline, partition)
            highest = _highest_offset(highest, [f for _, f in entries])
            if error is None:
                return highest
            if not kafka_fatal(error):
                _raise_judged(error)
            if self._state == "stopped":
                raise ProducerStoppedError("send after stop()") from error
            if replaced >= self.max_recreations_per_call:
                raise TransientError(
                    f"Kafka producer still broken after {replaced} re-creations: {error!r}"
                ) from error
            await self._retire(producer, error)  # flushes it: some futures may complete now
            pending = [record for record, future in entries if not _acked(future)]
            replaced += 1
            log.warning(
                "Kafka producer broken (%r); re-sending %d record(s) to %s on a new one",
                error,
                len(pending),
                topic,
            )
            if not pending:
                return _highest_offset(highest, [f for _, f in entries])

    async def _attempt(
        self,
        producer: Producer,
        topic: str,
        records: Sequence[Record],
        deadline: float | None,
        partition: int | None = None,
    ) -> tuple[list[tuple[Record, asyncio.Future[Any] | None]], BaseException | None]:
        """One pass over ``records`` with one producer: each record with its delivery
        future (None if it was never handed over), and the error that matters, if any."""
        entries: list[tuple[Record, asyncio.Future[Any] | None]] = [(r, None) for r in records]
        error: BaseException | None = None
        try:
            async with asyncio.timeout_at(deadline):
                for i, (key, value) in enumerate(records):
                    future = await producer.send(topic, value, key=key, partition=partition)
                    future.add_done_callback(_retrieve)
                    entries[i] = (entries[i][0], future)
        except TimeoutError:
            error = KafkaTimeoutError(
                f"could not hand records to the Kafka producer within {self.delivery_timeout_s}s"
            )
        except Exception as exc:  # noqa: BLE001 - judged below, with the delivery errors
            error = exc
        if error is not None and (kafka_fatal(error) or not is_retriable(error)):
            return entries, error  # no point waiting for the rest
        futures = [f for _, f in entries if f is not None]
        if futures:
            loop = asyncio.get_running_loop()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            _, not_done = await asyncio.wait(futures, timeout=timeout)
            failures = [f.exception() for f in futures if f.done() and not f.cancelled()]
            found = [e for e in failures if e is not None]
            fatal = [e for e in found if kafka_fatal(e)]
            retriable = [e for e in found if is_retriable(e)]
            if fatal:
                return entries, fatal[0]
            if error is None and retriable:
                error = retriable[0]
            if error is None and found:
                error = found[0]
            if error is None and not_done:
                error = KafkaTimeoutError(
                    f"{len(not_done)} of {len(records)} records not acknowledged by Kafka "
                    f"within {self.delivery_timeout_s}s"
                )
        return entries, error

    # -- the producer behind it ----------------------------------------------------

    async def _current(self) -> Producer:
        producer = self._producer
        if producer is not None and self._state == "started":
            return producer
        if self._state != "started":
            raise ProducerStoppedError(
                "send on a ResilientProducer that was stopped"
                if self._state == "stopped"
                else "send on a ResilientProducer before start()"
            )
        async with self._lock:
            if self._state != "started":
                raise ProducerStoppedError("send on a ResilientProducer that was stopped")
            if self._producer is None:
                try:
                    self._producer = await self._new_producer()
                except Exception as exc:  # noqa: BLE001 - re-raised, judged
                    _raise_judged(exc)
                self.recreations += 1
                cause = self._cause or RuntimeError("unknown cause")
                log.warning(
                    "Kafka producer re-created (%d so far) after %r", self.recreations, cause
                )
                if self.on_recreate is not None:
                    self.on_recreate(cause)
            return self._producer

    async def _retire(self, broken: Producer, cause: BaseException) -> None:
        """Stop ``broken`` unless another call replaced it already; the next
        :meth:`_current` makes its successor."""
        async with self._lock:
            if self._producer is not broken:
                return
            self._producer = None
            self._cause = cause
            await self._close(broken, "retire")

    async def _new_producer(self) -> Producer:
        producer = self._factory()
        try:
            await producer.start()
        except BaseException:
            await self._close(producer, "failed start")
            raise
        return producer

    async def _close(self, producer: Producer, why: str) -> None:
        """Stop a producer, ignoring its errors, waiting at most ``stop_timeout_s``."""
        try:
            async with asyncio.timeout(self.stop_timeout_s):
                await producer.stop()
        except TimeoutError:
            log.warning(
                "Kafka producer did not stop within %.1fs (%s); records it still held may "
                "arrive later or not at all",
                self.stop_timeout_s,
                why,
            )
        except Exception as exc:  # noqa: BLE001 - a broken producer may fail to stop; it goes anyway
            log.info("ignored error stopping a Kafka producer (%s): %r", why, exc)


class KafkaRecordSink:
    """Sends records and waits until the broker has them all (acks=all, idempotent)."""

    def __init__(self, producer: ResilientProducer) -> None:
        self.producer = producer

    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None:
        """Records with a partition go there, the others where their key hashes; the
        order of the records bound for one partition is kept."""
        if not records:
            return
        by_partition: dict[int | None, list[Record]] = {}
        for r in records:
            by_partition.setdefault(r.partition, []).append((r.key, r.value))
        await asyncio.gather(
            *(
                self.producer.send_all(topic, group, partition=partition)
                for partition, group in by_partition.items()
            )
        )
