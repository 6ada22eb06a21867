"""Retry timing: how long a failed record waits before its next attempt. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass

from parafka.core.deserializers import DeserializationError
from parafka.core.errors import ConfigError, HandlerMistake, RecordParked


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and when a failed record is tried again.

    The wait before attempt n+1 is `initial_backoff * multiplier**(n-1)`, capped at
    `max_backoff`, then scaled by a random factor in [1 - jitter, 1]. Exceptions of the
    types in `no_retry` (and values that fail to deserialize, and records parked by
    on_stuck="park") are not worth retrying: the record gives up at once (to the
    dead-letter topic, or the failure policy).
    """

    max_attempts: int = 5
    initial_backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 30.0
    jitter: float = 0.2
    no_retry: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(
                f"max_attempts={self.max_attempts} is invalid: use 1 or more (1 means no retry)"
            )
        for name in ("initial_backoff", "max_backoff"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} is invalid: use seconds >= 0")
        if self.multiplier < 1:
            raise ConfigError(f"retry multiplier={self.multiplier} is invalid: use >= 1")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"retry jitter={self.jitter} is invalid: use a value in [0, 1]")
        for kind in self.no_retry:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigError(
                    f"no_retry holds {kind!r}, not an exception class: pass classes such as "
                    "(ValueError, KeyError)"
                )

    def retryable(self, error: BaseException) -> bool:
        """False for errors no retry can fix."""
        return not isinstance(
            error, (DeserializationError, HandlerMistake, RecordParked, *self.no_retry)
        )

    def should_retry(self, attempt: int, error: BaseException | None = None) -> bool:
        """True when a record that failed on `attempt` (with `error`) gets another one."""
        return attempt < self.max_attempts and (error is None or self.retryable(error))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        if self.jitter and base:
            base *= 1 - self.jitter * (rng or random).random()
        return base
