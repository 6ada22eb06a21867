"""Exceptions a user of parafka can meet. Each message names the value and the fix."""

from __future__ import annotations


class ParafkaError(Exception):
    """Base class of every error parafka raises on purpose."""


class ConfigError(ParafkaError):
    """A setting is invalid; the message says which value and what to use instead."""


class BrokerUnreachable(ParafkaError):
    """The Kafka cluster did not answer within the connection timeout."""


class TopicNotFound(ParafkaError):
    """A topic to consume still did not exist when `until_idle` ran out."""


class RecordFailed(ParafkaError):
    """A record kept failing after its last attempt; it was not committed.

    Carries the coordinates so an operator can find the record again.
    """

    def __init__(
        self, topic: str, partition: int, offset: int, attempts: int, error: BaseException
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.attempts = attempts
        self.error = error
        from parafka.failures import describe  # failures.py imports this module

        super().__init__(
            f"record {topic}[{partition}]@{offset} failed after {attempts} attempt(s): "
            f"{describe(error)}; it was not committed and will be "
            "redelivered when the consumer restarts"
        )


class HandlerMistake(ParafkaError, ValueError):
    """The handler did something that fails for every record, whatever the data (such as
    returning an output with no topic to send it to): the consumer stops at once instead
    of retrying. A ValueError too, for code that caught the ValueError raised before."""


class NoOutputTopic(HandlerMistake):
    """The handler returned an output, but neither `output_topic` nor `Output.topic` is set."""


class NotAssigned(ParafkaError):
    """The consumer never got an assignment from its group within the join grace."""


class Overloaded(ParafkaError):
    """Raised by a handler when the downstream says it is overloaded (an HTTP 429 or 503,
    a database refusing connections). With `concurrency="auto"` it shrinks the limit at
    once; like any exception, the record is then retried by the retry policy."""


class RecordStuck(ParafkaError):
    """A record's handler ran longer than stuck_after and its worker was replaced
    (on_stuck="restart-worker"): retried like any failure."""


class RecordParked(RecordStuck):
    """A stuck record given up at once (on_stuck="park"): not retried, it goes to the
    failure policy (the dead-letter topic when one is set)."""


class ActionRefused(ParafkaError):
    """An operator's action (pause, skip, park, replay) that cannot be applied: the
    message says why, with the partition or record it named."""


class ParkedByOperator(ParafkaError):
    """The failure written into the dead letter of a record an operator parked from the
    control plane (never raised by parafka; its type names the cause in the headers)."""
