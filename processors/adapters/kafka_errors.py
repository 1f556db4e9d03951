"""How aiokafka's errors are judged: fatal for the producer, or refused for good.

Adapter code (imports aiokafka). **Fatal**: the producer is in a state it never leaves
(aiokafka issue #1017) and only a new one can send again
(:class:`~processors.adapters.kafka_sink.ResilientProducer` makes it);
:func:`kafka_permanent_reason` names the dead-letter reason of a Kafka refusal that no
retry can change. Whether an error is worth waiting out is
:func:`processors.core.errors.is_retriable`.
"""

from __future__ import annotations

from aiokafka import errors as kafka_errors

from processors.core.errors import KAFKA_SENDER_DIED, is_retriable
from processors.core.reasons import Reason

__all__ = ["KAFKA_FATAL", "KAFKA_TRANSIENT", "kafka_fatal", "kafka_permanent_reason"]

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
#: answer in time or could not be reached: waiting can help (core knows them by name).
KAFKA_TRANSIENT: tuple[type[Exception], ...] = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.BrokerNotAvailableError,
)

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
    return str(exc.args[0]).startswith(KAFKA_SENDER_DIED)


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
