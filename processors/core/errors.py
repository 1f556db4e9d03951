"""Error classes that say whether a second try can help. Pure.

Every failure a stage meets is one of two kinds:

- **transient** (a dependency is down, slow or busy: a broker restarting, Weaviate
  unreachable, a shard read-only for a while): retried with backoff, holding the
  partition, for as long as it takes (or a stated budget);
- **permanent** (the request itself cannot succeed: a record too large for the
  broker, a schema rejection, a tenant that does not exist): retried a bounded
  number of times at most, then the event is dead-lettered with the reason.

Adapters raise :class:`PermanentError` for what they know to be permanent; anything
else is judged by :func:`is_retriable`.

Kafka (aiokafka) adds a third kind, **fatal**: the producer itself is broken for good
(:func:`kafka_fatal`; aiokafka issue #1017) and only a new producer can send again;
:class:`processors.adapters.kafka_sink.ResilientProducer` does that. :func:`kafka_permanent_reason`
names the dead-letter reason of a Kafka refusal that no retry can change.
"""

from __future__ import annotations

from aiokafka import errors as kafka_errors

from processors.core.reasons import Reason


class PermanentError(Exception):
    """A failure that no retry can fix; ``reason`` is the dead-letter code."""

    retriable = False

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(Exception):
    """A dependency refused for now (read-only shard, tenant activating, broker away)."""

    retriable = True


def is_retriable(exc: BaseException) -> bool:
    """True when waiting and trying again may succeed.

    Errors that carry their own verdict (aiokafka's ``KafkaError.retriable``, ours)
    are taken at their word; connection-level errors and timeouts are transient.
    Anything else is a surprise (a bug, a client in a state we did not foresee): not
    retried here, so that it reaches the stage's last line of defence, which retries
    the batch a few times, then isolates the event that fails and dead-letters it."""
    if _kafka_transient(exc):
        return True
    verdict = getattr(exc, "retriable", None)
    if isinstance(verdict, bool):
        return verdict
    return isinstance(exc, OSError | TimeoutError)


# -- Kafka (aiokafka) -----------------------------------------------------------------

#: The producer is in a state it never leaves; every later send fails alike until it is
#: replaced. An idempotent producer numbers its batches per partition; aiokafka neither
#: bumps the epoch nor resets those numbers when the broker rejects them (after a broker
#: restart: OutOfOrderSequenceNumber, UnknownProducerId), and it turns InvalidProducerEpoch
#: into ProducerFenced. ProducerClosed: the producer was stopped under the caller.
#: IllegalStateError: a client state machine gone wrong.
KAFKA_FATAL: tuple[type[Exception], ...] = (
    kafka_errors.OutOfOrderSequenceNumber,
    kafka_errors.UnknownProducerId,
    kafka_errors.InvalidProducerEpoch,
    kafka_errors.InvalidProducerIdMapping,
    kafka_errors.ProducerFenced,
    kafka_errors.ProducerClosed,
    kafka_errors.IllegalStateError,
)

#: aiokafka marks these ``retriable = False``, yet each only says that a broker did not
#: answer in time or could not be reached: waiting can help.
KAFKA_TRANSIENT: tuple[type[Exception], ...] = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.BrokerNotAvailableError,
)

# aiokafka's background sender died; from then on every send raises a copy of this.
_SENDER_DIED = "Unexpected error during batch delivery"

_TOO_LARGE: tuple[type[Exception], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.RecordTooLargeError,
)
_UNAUTHORIZED: tuple[type[Exception], ...] = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
)


def kafka_fatal(exc: BaseException) -> bool:
    """True when the producer that raised ``exc`` must be replaced to send again."""
    if isinstance(exc, KAFKA_FATAL):
        return True
    if type(exc) is not kafka_errors.KafkaError or not exc.args:
        return False
    return str(exc.args[0]).startswith(_SENDER_DIED)


def _kafka_transient(exc: BaseException) -> bool:
    if isinstance(exc, KAFKA_TRANSIENT):
        return True
    # The bare base class is what aiokafka raises when no broker answers metadata
    # ("Unable to get cluster metadata over all known brokers").
    return type(exc) is kafka_errors.KafkaError and not kafka_fatal(exc)


def kafka_permanent_reason(exc: BaseException) -> str | None:
    """The dead-letter reason of a Kafka refusal no retry can fix; None for anything else
    (not a Kafka error, retriable, or fatal: a new producer may succeed)."""
    if not isinstance(exc, kafka_errors.KafkaError) or kafka_fatal(exc) or is_retriable(exc):
        return None
    if isinstance(exc, _TOO_LARGE):
        return Reason.RECORD_TOO_LARGE
    if isinstance(exc, _UNAUTHORIZED):
        return Reason.KAFKA_UNAUTHORIZED
    return Reason.KAFKA_REFUSED
