"""What a Kafka failure means, in words a user can act on; and whether it may pass."""

from __future__ import annotations

from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFenced,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from cdcd.errors import FencedError, SinkError
from cdcd.sinks.base import SinkUnavailableError

TRANSACTION_TIMEOUT_MS = 60_000


def explain_kafka_error(exc: BaseException, bootstrap: str) -> SinkError:
    """A ``SinkError`` that says what went wrong with Kafka in words a user can act on.

    ``SinkUnavailableError`` when the failure may pass (a broker restarting, a leader
    moving): the daemon then starts over from its last committed offset.
    """
    if isinstance(exc, SinkError):
        return exc
    if isinstance(exc, ProducerFenced):
        return FencedError(
            "the Kafka producer was fenced: another cdcd instance with the same name started "
            "(two active instances must not share a name), or a Kafka transaction stayed open "
            f"longer than {TRANSACTION_TIMEOUT_MS // 1000} s; this one stops"
        )
    if isinstance(exc, KafkaConnectionError):
        return SinkUnavailableError(
            f"cannot reach Kafka at {bootstrap}: no broker answered; check sink.bootstrap_servers"
        )
    if isinstance(exc, TopicAuthorizationFailedError):
        return SinkError(f"Kafka refused access to a topic: grant WRITE/CREATE on it ({exc})")
    if isinstance(exc, TransactionalIdAuthorizationFailed):
        return SinkError(
            "Kafka refused the transactional id cdcd-<name>: grant WRITE and DESCRIBE on "
            'TransactionalId cdcd-<name> (or set delivery = "at-least-once")'
        )
    if isinstance(exc, GroupAuthorizationFailedError):
        return SinkError(
            "Kafka refused the consumer group cdcd-<name> (a running daemon is a member, "
            "so that cdcd offsets can tell it runs): grant READ on Group cdcd-<name>"
        )
    if isinstance(exc, TimeoutError | KafkaTimeoutError):
        return SinkUnavailableError(f"Kafka at {bootstrap} did not answer in time")
    if isinstance(exc, KafkaError) and _caused_by_unavailability(exc):
        # e.g. aiokafka's sender task dies on a coordinator lookup while the broker is
        # down: the producer is lost, a new one (after starting over) will do.
        return SinkUnavailableError(f"Kafka error: {exc.__class__.__name__}: {exc}")
    return SinkError(f"Kafka error: {exc.__class__.__name__}: {exc}")


def _caused_by_unavailability(exc: BaseException) -> bool:
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 10:
        if isinstance(cause, KafkaConnectionError | KafkaTimeoutError | TimeoutError | OSError):
            return True
        if isinstance(cause, KafkaError) and getattr(cause, "retriable", False):
            return True
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return False
