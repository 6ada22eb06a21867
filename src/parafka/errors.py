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
        super().__init__(
            f"record {topic}[{partition}]@{offset} failed after {attempts} attempt(s): "
            f"{type(error).__name__}: {error}; it was not committed and will be "
            "redelivered when the consumer restarts"
        )
