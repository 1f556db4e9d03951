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
and only a new producer can send again. That judgement, and the dead-letter reason of
a Kafka refusal no retry can change, are the Kafka adapter's (``adapters.kafka_errors``):
core imports no client library, so the few aiokafka errors that say "not now" although
they are marked not retriable are recognised here by their class names.
"""

from __future__ import annotations


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


class LlmError(Exception):
    """An LLM request that did not give an answer; ``outcome`` is the metrics label.

    What a :class:`processors.ports.Completer` raises: ``retriable`` says whether
    asking again may help, ``retry_after_s`` how long there is no point in trying
    (an open circuit)."""

    def __init__(
        self, outcome: str, detail: str, retriable: bool, retry_after_s: float = 0.0
    ) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome, self.detail, self.retriable = outcome, detail, retriable
        self.retry_after_s = retry_after_s


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


# -- Kafka (aiokafka), by name ------------------------------------------------------------

#: aiokafka marks these ``retriable = False``, yet each only says that a broker did not
#: answer in time or could not be reached: waiting can help. (By name: core imports no
#: client library; ``adapters.kafka_errors`` checks this list against aiokafka.)
KAFKA_TRANSIENT_NAMES = frozenset(
    {"KafkaTimeoutError", "KafkaUnavailableError", "BrokerNotAvailableError"}
)

#: aiokafka's background sender died; from then on every send raises a copy of this.
KAFKA_SENDER_DIED = "Unexpected error during batch delivery"


def _aiokafka_classes(exc: BaseException) -> list[type]:
    return [c for c in type(exc).__mro__ if c.__module__.startswith("aiokafka")]


def _kafka_transient(exc: BaseException) -> bool:
    classes = _aiokafka_classes(exc)
    if any(c.__name__ in KAFKA_TRANSIENT_NAMES for c in classes):
        return True
    # The bare base class is what aiokafka raises when no broker answers metadata
    # ("Unable to get cluster metadata over all known brokers"), unless its sender died.
    bare = type(exc).__name__ == "KafkaError" and type(exc).__module__.startswith("aiokafka")
    return bare and not (exc.args and str(exc.args[0]).startswith(KAFKA_SENDER_DIED))
