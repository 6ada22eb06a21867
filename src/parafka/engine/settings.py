"""Validated settings of a ParallelConsumer. Every check names the value and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from parafka.core.errors import ConfigError
from parafka.core.extras import require
from parafka.core.options import AUTO, EXECUTORS, OPTIONS, default
from parafka.core.retry import RetryPolicy
from parafka.core.scheduler import Ordering
from parafka.kafka.config import (
    check_group_id,
    check_not_overridden,
    masked,
    validate_client_config,
)

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str
    group_id: str
    topics: tuple[str, ...]
    ordering: Ordering = default("ordering")
    concurrency: int | str = default("concurrency")  # or "auto": min_ to max_concurrency
    min_concurrency: int = default("min_concurrency")
    max_concurrency: int = default("max_concurrency")
    output_topic: str | None = default("output_topic")
    kafka_config: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # ParallelConsumer resolves its executor=None: "async" for an async def handler.
    executor: str = EXECUTORS[0]
    workers: int | None = default("workers")  # process executor: None, one per usable core
    max_buffered: int | None = default("max_buffered")  # None: see buffer_limit
    thread_placement: str = default("thread_placement")  # one of PLACEMENTS (placement.py)
    commit_interval: float = default("commit_interval")
    shutdown_timeout: float = default("shutdown_timeout")
    revoke_timeout: float = default("revoke_timeout")
    connect_timeout: float = default("connect_timeout")
    join_grace: float = default("join_grace")  # out of the group this long: with until_idle, exit
    max_metadata_bytes: int = default("max_metadata_bytes")
    batch_size: int | None = default("batch_size")  # set: the handler takes a list of records
    batch_wait: float = default("batch_wait")  # seconds a partial batch waits for more records
    dead_letter_topic: str | None = default("dead_letter_topic")
    # After the last attempt: "stop" (never drop a record), "dead-letter", or "skip".
    # None: "dead-letter" when a dead-letter topic is set, else "stop".
    on_failure: str | None = default("on_failure")
    deserializer: Any = default("deserializer")  # None (bytes), a name or a callable
    exactly_once: bool = default("exactly_once")
    group_type: str = default("group_type")
    rate: float | None = default("rate")  # records started per second by this instance, at most
    key_rate: float | None = default("key_rate")  # records started per second per key, at most
    group_rate: float | None = default("group_rate")  # per second by the whole group
    on_stuck: str = default("on_stuck")  # a record over stuck_after: one of ON_STUCK
    # Records that failed their quick attempts are parked here, and retried from it
    # (parking.py); park_attempts tries from there, the first park_backoff seconds later.
    retry_topic: str | None = default("retry_topic")
    park_attempts: int = default("park_attempts")
    park_backoff: float = default("park_backoff")
    tracing: bool = default("tracing")  # OpenTelemetry spans per attempt (tracing.py)

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ConfigError(
                "no bootstrap servers: pass bootstrap_servers='host:9092' (or a settings dict "
                "with bootstrap.servers first; CLI -b or PARAFKA_BOOTSTRAP_SERVERS)"
            )
        check_group_id(self.group_id)
        if not self.topics or not all(self.topics):
            raise ConfigError("no topic to consume: pass topics=['name'] (CLI -t NAME)")
        for topic in self.topics:
            _check_topic(topic)
        self._check_choices()
        self._check_concurrency()
        for name in ("rate", "key_rate", "group_rate"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
            ):
                flag = name.replace("_", "-")
                raise ConfigError(
                    f"{name}={value!r} is invalid: use records per second > 0 (CLI --{flag} N/s)"
                )
        if self.workers is not None:
            _positive_int("workers", self.workers)
        if self.max_buffered is not None:
            _positive_int("max_buffered", self.max_buffered)
        if self.batch_size is not None:
            _positive_int("batch_size", self.batch_size)
        if not isinstance(self.batch_wait, int | float) or self.batch_wait < 0:
            raise ConfigError(f"batch_wait={self.batch_wait!r} is invalid: use seconds >= 0")
        for name in (
            "commit_interval",
            "shutdown_timeout",
            "revoke_timeout",
            "connect_timeout",
            "join_grace",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{name}={value!r} is invalid: use a number of seconds > 0")
        check_not_overridden(self.kafka_config, "bootstrap.servers", self.bootstrap_servers)
        check_not_overridden(self.kafka_config, "group.id", self.group_id)
        validate_client_config(self.kafka_config, share=self.group_type == "share")
        self._check_failure_policy()
        self._check_group_type()
        self._check_on_stuck()
        self._check_retry_topic()
        self._check_tracing()
        if self.max_metadata_bytes < 0:
            raise ConfigError(
                f"max_metadata_bytes={self.max_metadata_bytes} is invalid: use 0 (no metadata) "
                "or the broker's offset.metadata.max.bytes"
            )

    def __repr__(self) -> str:
        """The dataclass repr with secret Kafka settings masked (a repr ends up in logs)."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["kafka_config"] = masked(self.kafka_config)
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def adaptive(self) -> bool:
        """The concurrency limit follows the downstream (concurrency="auto")."""
        return self.concurrency == AUTO

    @property
    def concurrency_cap(self) -> int:
        """The most records in flight: the fixed concurrency, or max_concurrency."""
        if isinstance(self.concurrency, int):
            return self.concurrency
        return self.max_concurrency

    @property
    def buffer_limit(self) -> int:
        """Records held in memory before the consumer stops fetching."""
        c = self.concurrency_cap
        floor = max(1000, 10 * c, 4 * c * (self.batch_size or 1))
        return self.max_buffered or floor

    def _check_tracing(self) -> None:
        if not isinstance(self.tracing, bool):
            raise ConfigError(f"tracing={self.tracing!r} is invalid: use True or False")
        if not self.tracing:
            return  # OpenTelemetry is not even looked for
        for module in ("opentelemetry.trace", "opentelemetry.propagate"):
            require(module, "tracing=True (--trace)")

    def _check_choices(self) -> None:
        """Every setting with a fixed set of values (options.py, kind "choice") holds one
        of them; None stands for the default where that is the default."""
        for option in _CHOICES:
            value = getattr(self, option.name)
            if value not in option.choices and (value is not None or option.default is not None):
                raise ConfigError(
                    f"unknown {option.name} {value!r}: use one of {', '.join(option.choices)}"
                )

    def _check_on_stuck(self) -> None:
        if self.on_stuck != "report" and self.executor not in ("process", "async"):
            raise ConfigError(
                f"on_stuck={self.on_stuck!r} needs executor='process' or 'async' (a "
                f"{self.executor} worker cannot be stopped from outside): use --executor "
                "process, an async def handler, or --on-stuck report"
            )

    @property
    def park_policy(self) -> RetryPolicy:
        """Attempts and delays of parked records, taken from the retry topic."""
        return RetryPolicy(
            max_attempts=self.park_attempts,
            initial_backoff=self.park_backoff,
            multiplier=4.0,
            max_backoff=max(300.0, self.park_backoff),
            jitter=0.1,
        )

    def _check_retry_topic(self) -> None:
        _positive_int("park_attempts", self.park_attempts)
        if (
            isinstance(self.park_backoff, bool)
            or not isinstance(self.park_backoff, int | float)
            or self.park_backoff < 0
        ):
            raise ConfigError(
                f"park_backoff={self.park_backoff!r} is invalid: use seconds >= 0 "
                "(CLI --park-backoff)"
            )
        topic = self.retry_topic
        if topic is None:
            return
        if not topic or topic.startswith("^"):
            raise ConfigError(
                f"retry_topic={topic!r} is invalid: name one topic (CLI --retry-topic NAME)"
            )
        _check_topic(topic)
        if topic in self.topics:
            raise ConfigError(
                f"retry_topic={topic!r} is also a source topic: drop it from topics "
                "(parafka subscribes to the retry topic by itself)"
            )
        if topic == self.dead_letter_topic or topic == self.output_topic:
            raise ConfigError(
                f"retry_topic={topic!r} is also the dead-letter or output topic: use a "
                "topic of its own"
            )
        if self.ordering == "partition":
            raise ConfigError(
                "retry_topic with ordering='partition' would park a whole partition behind "
                "one failed record: use ordering='key' (or 'unordered')"
            )
        if self.exactly_once:
            raise ConfigError(
                "retry_topic cannot be combined with exactly_once=True (parked records are "
                "written outside the transaction): drop one of them"
            )
        if self.group_type == "share":
            raise ConfigError(
                "retry_topic needs group_type='consumer': a share group redelivers failed "
                "records by itself; drop retry_topic"
            )

    def _check_concurrency(self) -> None:
        if self.concurrency != AUTO:
            if isinstance(self.concurrency, str):
                raise ConfigError(
                    f"concurrency={self.concurrency!r} is invalid: use a whole number >= 1 "
                    "or 'auto' (CLI -c N or -c auto)"
                )
            _positive_int("concurrency", self.concurrency)
        _positive_int("min_concurrency", self.min_concurrency)
        _positive_int("max_concurrency", self.max_concurrency)
        if self.min_concurrency > self.max_concurrency:
            raise ConfigError(
                f"min_concurrency={self.min_concurrency} is above max_concurrency="
                f"{self.max_concurrency}: raise --max-concurrency or lower --min-concurrency"
            )

    @property
    def failure_policy(self) -> str:
        """What happens to a record after its last attempt."""
        if self.on_failure is not None:
            return self.on_failure
        return "dead-letter" if self.dead_letter_topic else "stop"

    def _check_failure_policy(self) -> None:
        if self.failure_policy == "dead-letter" and not self.dead_letter_topic:
            raise ConfigError(
                "on_failure='dead-letter' needs a topic: pass dead_letter_topic='name' "
                "(CLI --dead-letter-topic)"
            )
        if self.dead_letter_topic and self.failure_policy != "dead-letter":
            raise ConfigError(
                f"dead_letter_topic={self.dead_letter_topic!r} is set but on_failure is "
                f"{self.on_failure!r}: drop one of them"
            )
        if self.dead_letter_topic in self.topics:
            raise ConfigError(
                f"dead_letter_topic={self.dead_letter_topic!r} is also a source topic: "
                "dead letters would be consumed again; use another topic"
            )
        if self.exactly_once and self.batch_size is not None and self.ordering != "partition":
            raise ConfigError(
                "exactly_once=True with batch_size needs ordering='partition' (a batch's "
                "outputs belong to all its records, which must commit in offset order); "
                "drop batch_size or use ordering='partition'"
            )
        if self.exactly_once and not self.output_topic:
            raise ConfigError(
                "exactly_once=True needs output_topic= (CLI --output-topic): exactly-once "
                "covers what a handler produces together with the offsets it consumed"
            )

    def _check_group_type(self) -> None:
        if self.group_type != "share":
            return
        if self.ordering != "unordered":
            raise ConfigError(
                f"group_type='share' cannot keep ordering={self.ordering!r}: a share group "
                "hands records of one partition to several consumers at once; pass "
                "ordering='unordered' (CLI --ordering unordered)"
            )
        if self.exactly_once:
            raise ConfigError(
                "group_type='share' cannot run exactly_once=True: a share group has no "
                "offsets to commit in a transaction; drop exactly_once (CLI --exactly-once) or use "
                "group_type='consumer' (CLI --group-type consumer)"
            )


# The settings with a fixed set of values (`Settings._check_choices`).
_FIELDS = {f.name for f in fields(Settings)}
_CHOICES = tuple(o for o in OPTIONS if o.kind == "choice" and o.name in _FIELDS)


def _check_topic(name: str) -> None:
    """Kafka topic names are 1-249 of [A-Za-z0-9._-] (a "^" prefix subscribes by regex)."""
    if name.startswith("^"):
        return
    if len(name) > 249 or name in (".", "..") or not _TOPIC_NAME.fullmatch(name):
        raise ConfigError(
            f"topic {name!r} is not a valid Kafka topic name: use 1-249 letters, digits, "
            "'.', '_' or '-' (CLI -t NAME)"
        )


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} is invalid: use a whole number >= 1")
