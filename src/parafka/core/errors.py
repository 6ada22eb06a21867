"""Exceptions a user of parafka can meet. Each message names the value and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

# The exit codes of the `parafka` command and its worker processes: 0 clean, 1 a runtime
# failure, 2 a usage or configuration mistake, 130 interrupted.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_E = TypeVar("_E", bound=type[BaseException])
_WIRE_NAMES: dict[type[BaseException], str] = {}
_WIRE_CLASSES: dict[str, type[BaseException]] = {}


def wire_name(name: str) -> Callable[[_E], _E]:
    """Pin the name a dead letter's or a parked record's headers give this exception class.

    The headers are read by other programs (`--exception` filters, dashboards, replays), so
    parafka's own exceptions keep the name they first went out under, wherever their module
    moves (issue 17 moved them into floors). `loader.load_exception` accepts the name too.
    """

    def pin(cls: _E) -> _E:
        _WIRE_NAMES[cls] = name
        _WIRE_CLASSES[name] = cls
        return cls

    return pin


def pinned_name(cls: type[BaseException]) -> str | None:
    """The name pinned with `wire_name` for exactly this class (not for its subclasses)."""
    return _WIRE_NAMES.get(cls)


def pinned_class(name: str) -> type[BaseException] | None:
    return _WIRE_CLASSES.get(name)


@wire_name("parafka.errors.ParafkaError")
class ParafkaError(Exception):
    """Base class of every error parafka raises on purpose."""


@wire_name("parafka.errors.ConfigError")
class ConfigError(ParafkaError):
    """A setting is invalid; the message says which value and what to use instead."""


@wire_name("parafka.errors.BrokerUnreachable")
class BrokerUnreachable(ParafkaError):
    """The Kafka cluster did not answer within the connection timeout."""


@wire_name("parafka.errors.TopicNotFound")
class TopicNotFound(ParafkaError):
    """A topic to consume still did not exist when `until_idle` ran out."""


@wire_name("parafka.errors.RecordFailed")
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
        from parafka.core.failures import describe  # failures.py imports this module

        super().__init__(
            f"record {topic}[{partition}]@{offset} failed after {attempts} attempt(s): "
            f"{describe(error)}; it was not committed and will be "
            "redelivered when the consumer restarts"
        )


@wire_name("parafka.errors.HandlerMistake")
class HandlerMistake(ParafkaError, ValueError):
    """The handler did something that fails for every record, whatever the data (such as
    returning an output with no topic to send it to): the consumer stops at once instead
    of retrying. A ValueError too, for code that caught the ValueError raised before."""


@wire_name("parafka.errors.NoOutputTopic")
class NoOutputTopic(HandlerMistake):
    """The handler returned an output, but neither `output_topic` nor `Output.topic` is set."""


@wire_name("parafka.errors.NotAssigned")
class NotAssigned(ParafkaError):
    """The consumer never got an assignment from its group within the join grace."""


@wire_name("parafka.errors.Overloaded")
class Overloaded(ParafkaError):
    """Raised by a handler when the downstream says it is overloaded (an HTTP 429 or 503,
    a database refusing connections). With `concurrency="auto"` it shrinks the limit at
    once; like any exception, the record is then retried by the retry policy."""


@wire_name("parafka.errors.RecordStuck")
class RecordStuck(ParafkaError):
    """A record's handler ran longer than stuck_after and its worker was replaced
    (on_stuck="restart-worker"): retried like any failure."""


@wire_name("parafka.errors.RecordParked")
class RecordParked(RecordStuck):
    """A stuck record given up at once (on_stuck="park"): not retried, it goes to the
    failure policy (the dead-letter topic when one is set)."""


@wire_name("parafka.errors.ActionRefused")
class ActionRefused(ParafkaError):
    """An operator's action (pause, skip, park, replay) that cannot be applied: the
    message says why, with the partition or record it named."""


@wire_name("parafka.errors.ParkedByOperator")
class ParkedByOperator(ParafkaError):
    """The failure written into the dead letter of a record an operator parked from the
    control plane (never raised by parafka; its type names the cause in the headers)."""
