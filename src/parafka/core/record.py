"""The two types a handler meets: the `Record` it receives and the `Output` it may return."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Final

from mypy_extensions import mypyc_attr

from parafka.core.errors import NoOutputTopic

Headers = list[tuple[str, bytes | None]]
_RAW: Any = object()  # Record.data before a deserializer set it: the value itself


@mypyc_attr(allow_interpreted_subclasses=True)  # users' and tests' records subclass it
class Record:
    """One Kafka record, as given to a handler.

    `attempt` starts at 1 and grows each time the record is retried. The coordinates
    (topic, partition, offset) travel with the record from poll to completion.
    """

    __slots__ = (
        "_data",
        "_headers",
        "_key",
        "_timestamp",
        "_value",
        "attempt",
        "offset",
        "partition",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: Headers | None = None,
        timestamp: int | None = None,
        attempt: int = 1,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self._key = key
        self._value = value
        self._headers = headers
        self._timestamp = timestamp
        self.attempt = attempt
        self._data = _RAW

    @property
    def key(self) -> bytes | None:
        return self._key

    @property
    def value(self) -> bytes | None:
        return self._value

    @property
    def headers(self) -> Headers | None:
        """Headers as (name, value) pairs, in the order they were produced."""
        return self._headers

    @property
    def timestamp(self) -> int | None:
        """Milliseconds since the epoch, or None when the record has none."""
        return self._timestamp

    @property
    def data(self) -> Any:
        """The value as the configured deserializer decoded it (`deserializer="json"`:
        the parsed object); the raw value bytes when no deserializer is set."""
        data = self._data
        return self.value if data is _RAW else data

    @data.setter
    def data(self, decoded: Any) -> None:
        self._data = decoded

    def text(self, encoding: str = "utf-8") -> str:
        """The value decoded as text ('' for a null value)."""
        return "" if self.value is None else self.value.decode(encoding)

    def json(self) -> Any:
        """The value parsed as JSON (None for a null value)."""
        return None if self.value is None else json.loads(self.value)

    def header(self, name: str) -> bytes | None:
        """The last value of header `name`, or None."""
        found = None
        for key, value in self.headers or ():
            if key == name:
                found = value
        return found

    def __repr__(self) -> str:
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, attempt={self.attempt})"
        )


@mypyc_attr(allow_interpreted_subclasses=True)
class MessageRecord(Record):
    """A Record backed by a confluent_kafka.Message: key, value, headers and timestamp are
    read from the message only when used, which keeps the poll loop cheap."""

    __slots__ = ("_msg",)

    def __init__(self, message: Any, topic: str, partition: int, offset: int) -> None:
        self._msg = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.attempt = 1
        self._data = _RAW

    @property
    def key(self) -> bytes | None:
        return self._msg.key()  # type: ignore[no-any-return]

    @property
    def value(self) -> bytes | None:
        return self._msg.value()  # type: ignore[no-any-return]

    @property
    def headers(self) -> Headers | None:
        return self._msg.headers()  # type: ignore[no-any-return]

    @property
    def timestamp(self) -> int | None:
        ts_type, ts = self._msg.timestamp()
        return ts if ts_type else None


# What an Output may carry (mypyc checks none of these unions when one is built).
Value = bytes | bytearray | memoryview | str | dict[str, Any] | list[Any] | None
Key = bytes | bytearray | memoryview | str | None
OutputHeaders = Sequence[tuple[str, bytes | str | None]] | dict[str, bytes | str] | None


class Output:
    """A record to produce. `topic=None` means the consumer's `output_topic`.

    The value is sent as it is when bytes, encoded as UTF-8 when str, as compact JSON when
    a dict or a list; the key as it is, or UTF-8. Immutable (compiled, setup.py) and cheap
    to build, since a handler may build one per record: a compiled class, not a tuple
    (docs/architecture.md, "The engine's output as a plain tuple, and `Output` as a compiled
    class"). It unpacks as
    (value, key, headers, topic), compares by those fields and pickles."""

    __slots__ = ("headers", "key", "topic", "value")

    def __init__(
        self,
        value: Value,
        key: Key = None,
        headers: OutputHeaders = None,
        topic: str | None = None,
    ) -> None:
        self.value: Final = value
        self.key: Final = key
        self.headers: Final = headers
        self.topic: Final = topic

    def _fields(self) -> tuple[Value, Key, OutputHeaders, str | None]:
        return self.value, self.key, self.headers, self.topic

    def __iter__(self) -> Iterator[Value | Key | OutputHeaders]:
        return iter(self._fields())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Output):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[type[Output], tuple[Value, Key, OutputHeaders, str | None]]:
        return Output, self._fields()

    def __repr__(self) -> str:
        return (
            f"Output(value={self.value!r}, key={self.key!r}, headers={self.headers!r}, "
            f"topic={self.topic!r})"
        )


def _to_bytes(data: object) -> bytes | None:
    # `object`: a handler may give any bytes-like value, and compiled (setup.py) a narrower
    # parameter type would be checked on the call
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    return json.dumps(data, separators=(",", ":")).encode()


# An output ready for the producer: (topic, value, key, headers), its value and key as
# bytes and its topic resolved. A plain tuple, read by position: a tuple subclass (the
# NamedTuple it was) costs a second object for each output, about 0.4 us a record on the
# per-record path (docs/architecture.md, "The engine's output as a plain tuple, ...").
Produced = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes | str | None]] | None]


def normalize_outputs(result: object, default_topic: str | None) -> list[Produced]:
    """Turn what a handler returned into outputs to produce.

    Accepted: None, Output, bytes, str, dict (JSON-encoded), or a list of those.
    Raises TypeError/ValueError with a message naming the fix for anything else.
    """
    if result is None:
        return []
    if (plain := plain_output(result, default_topic)) is not None:
        return [plain]  # the common case: one output of bytes
    if isinstance(result, bytes | str) and default_topic is not None:
        return [(default_topic, _to_bytes(result), None, None)]
    if isinstance(result, Output):
        items: Sequence[object] = (result,)
    else:
        items = result if isinstance(result, list | tuple) else [result]
    produced = []
    for item in items:
        if item is None:
            continue
        if (plain := plain_output(item, default_topic)) is not None:
            produced.append(plain)
            continue
        out = item if isinstance(item, Output) else Output(_check_value(item))
        topic = out.topic or default_topic
        if topic is None:
            raise NoOutputTopic(
                "the handler returned an output but no topic is set for it: pass "
                "output_topic= (CLI --output-topic) or Output(..., topic=...)"
            )
        headers = out.headers
        if isinstance(headers, dict):
            headers = list(headers.items())
        produced.append(
            (
                topic,
                _to_bytes(out.value),
                _to_bytes(out.key),
                list(headers) if headers is not None else None,
            )
        )
    return produced


def plain_output(result: object, default_topic: str | None) -> Produced | None:
    """The fast path: a handler's result that is one output of bytes (bytes, or an Output
    of bytes with no headers) and has a topic needs no conversion (None: take the general
    path, `normalize_outputs`)."""
    if type(result) is bytes:
        return None if default_topic is None else (default_topic, result, None, None)
    if type(result) is not Output:
        return None
    value, key, topic = result.value, result.key, result.topic or default_topic
    if (
        type(value) is bytes
        and (key is None or type(key) is bytes)
        and result.headers is None
        and topic is not None
    ):
        return (topic, value, key, None)
    return None


def _check_value(item: object) -> bytes | str | dict[str, Any]:
    if isinstance(item, bytes | str | dict):
        return item
    raise TypeError(
        f"handler returned {type(item).__name__!r}; return None, bytes, str, dict, "
        "parafka.Output or a list of them"
    )
