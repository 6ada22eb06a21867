"""Logging helpers: keep librdkafka's repeated complaints from drowning what matters."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable


class QuietRepeats(logging.Filter):
    """Show a log line at most once per `window` seconds, with a count of the repeats.

    While a broker is down, librdkafka reports the same connection failure many times a
    second; without this the one line that says what to do drowns in them. Lines below
    `min_level` always pass (state changes such as "assigned ..." must never be hidden).
    """

    _TIMING = re.compile(r" \(after \d+ms in state \w+\)")

    def __init__(
        self,
        window: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        min_level: int = logging.NOTSET,
    ) -> None:
        super().__init__()
        self.window = window
        self.min_level = min_level
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        message = self._TIMING.sub("", record.getMessage())
        key = (record.name, record.levelno, message)
        now = self.clock()
        shown_at, repeats = self._seen.get(key, (None, 0))
        if shown_at is not None and now - shown_at < self.window:
            self._seen[key] = (shown_at, repeats + 1)
            return False
        if len(self._seen) > 1000:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
        self._seen[key] = (now, 0)
        if repeats:
            record.msg, record.args = f"{message} (repeated {repeats} more times)", None
        return True


def client_logger() -> logging.Logger:
    """The logger librdkafka's own messages go to, with repeats folded (once per 30 s)."""
    # Named for its source, not a module: one name to filter the client's own lines by.
    logger = logging.getLogger("parafka.librdkafka")
    if not any(isinstance(f, QuietRepeats) for f in logger.filters):
        logger.addFilter(QuietRepeats())
    return logger
