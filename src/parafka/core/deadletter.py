"""The dead-letter record: what parafka writes when a record fails for good. Pure.

The dead-lettered record keeps the source record's key, value and headers, and adds
headers (all UTF-8 text) that say where it came from and why it failed. `dlq replay`
strips those headers again and counts the replays in `REPLAY_COUNT`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from parafka.core.errors import pinned_name
from parafka.core.record import Headers, Produced, Record

PREFIX = "parafka.dlq."
TOPIC = PREFIX + "topic"
PARTITION = PREFIX + "partition"
OFFSET = PREFIX + "offset"
GROUP = PREFIX + "group"
ATTEMPTS = PREFIX + "attempts"
STAGE = PREFIX + "stage"  # "handler" or "deserializer"
EXCEPTION = PREFIX + "exception"  # the exception's qualified type name
MESSAGE = PREFIX + "message"
FIRST_FAILURE = PREFIX + "first-failure"  # ISO 8601, UTC, milliseconds
LAST_FAILURE = PREFIX + "last-failure"
RETRY_PREFIX = "parafka.retry."  # parking.PREFIX: headers of a record parked on a retry topic
REPLAY_COUNT = "parafka.replay.count"  # added by `dlq replay`; not a dead-letter header

MAX_MESSAGE_BYTES = 4096  # exception messages longer than this are cut


class Failure(NamedTuple):
    """Why and when a record failed for good."""

    error: BaseException
    attempts: int
    first_failure: float  # seconds since the epoch
    last_failure: float
    stage: str = "handler"


def exception_name(error: BaseException) -> str:
    """The error's type as the headers name it: a built-in by its name, parafka's own by
    the name pinned on it (`errors.wire_name`), anything else as module.QualifiedName."""
    cls = type(error)
    pinned = pinned_name(cls)
    if pinned is not None:
        return pinned
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def iso_time(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dead_letter(
    record: Record,
    topic: str,
    group: str,
    failure: Failure,
    source: tuple[str, int, int] | None = None,
) -> Produced:
    """The record to write to the dead-letter `topic` for `record`; `source`: the topic,
    partition and offset it first came from, when not its own (a parked record's)."""
    message = str(failure.error).encode("utf-8", "replace")[:MAX_MESSAGE_BYTES]
    origin = source or (record.topic, record.partition, record.offset)
    added: Headers = [
        (TOPIC, origin[0].encode()),
        (PARTITION, str(origin[1]).encode()),
        (OFFSET, str(origin[2]).encode()),
        (GROUP, group.encode()),
        (ATTEMPTS, str(failure.attempts).encode()),
        (STAGE, failure.stage.encode()),
        (EXCEPTION, exception_name(failure.error).encode()),
        (MESSAGE, message),
        (FIRST_FAILURE, iso_time(failure.first_failure).encode()),
        (LAST_FAILURE, iso_time(failure.last_failure).encode()),
    ]
    headers: list[tuple[str, bytes | str | None]] = [
        h for h in record.headers or () if not h[0].startswith(PREFIX)
    ]
    headers.extend(added)
    return topic, record.value, record.key, headers


def header_text(headers: Headers | None, name: str) -> str | None:
    """The last value of header `name` as text, or None."""
    found = None
    for key, value in headers or ():
        if key == name:
            found = None if value is None else value.decode("utf-8", "replace")
    return found


def replayed_headers(headers: Headers | None) -> Headers:
    """A dead-lettered record's headers as they go back to a source topic: the
    dead-letter (and retry-topic) headers removed, the replay count raised by one."""
    previous = header_text(headers, REPLAY_COUNT)
    count = int(previous) + 1 if previous is not None and previous.isdigit() else 1
    # A parked record's parafka.retry.* headers (its time on the retry topic) go too.
    kept = [
        h
        for h in headers or ()
        if not h[0].startswith((PREFIX, RETRY_PREFIX)) and h[0] != REPLAY_COUNT
    ]
    return [*kept, (REPLAY_COUNT, str(count).encode())]
