"""The last few records sent to the dead-letter topic, for the web dashboard.

The control thread adds an event when it gives a record up to the dead-letter topic; other
threads read a copy. Bounded, so memory stays flat however many records fail.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from parafka.core.deadletter import PREFIX
from parafka.core.record import Record

KEEP = 50  # events kept
_TEXT = 200  # characters of an error message or key kept


@dataclass(frozen=True, slots=True)
class DeadLetterEvent:
    """One record given up to the dead-letter topic (`at`: wall-clock seconds)."""

    at: float
    topic: str
    partition: int
    offset: int
    key: str | None
    attempts: int
    error: str
    # The dead letter's provenance headers (parafka.dlq.*) as text, in order
    headers: tuple[tuple[str, str], ...] = ()


class RecentDeadLetters:
    """A ring of the last `keep` dead-letter events; `add` is cheap and thread-safe."""

    def __init__(self, keep: int = KEEP) -> None:
        self._events: deque[DeadLetterEvent] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(
        self,
        record: Record,
        error: BaseException,
        headers: Iterable[tuple[str, bytes | str | None]] | None = None,
    ) -> None:
        key = record.key
        event = DeadLetterEvent(
            time.time(),
            record.topic,
            record.partition,
            record.offset,
            None if key is None else _short(key.decode("utf-8", errors="replace")),
            record.attempt,
            _short(f"{type(error).__name__}: {error}"),
            tuple(
                (name, _short(_text(value)))
                for name, value in headers or ()
                if name.startswith(PREFIX) and value is not None
            ),
        )
        with self._lock:
            self._events.append(event)

    def snapshot(self) -> tuple[DeadLetterEvent, ...]:
        """The events kept, oldest first."""
        with self._lock:
            return tuple(self._events)


def _short(text: str) -> str:
    return text if len(text) <= _TEXT else text[: _TEXT - 1] + "…"


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")
