"""What `with` means for everything parafka starts in the background: start on entry, stop on
exit (the consumer, the live terminal view, the web dashboard, the test brokers)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Background(ABC):
    """Something that runs in the background between `start()` and `stop()`;
    `with thing:` starts it and stops it however the block ends."""

    @abstractmethod
    def start(self) -> Self:
        """Start running in the background; returns once running."""

    @abstractmethod
    def stop(self) -> None:
        """Stop running (safe to call more than once)."""

    def _leave(self) -> None:
        """What leaving the `with` block does: stop (override to also wait)."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
