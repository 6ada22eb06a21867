"""Saying what the consumer waits for, and when to stop waiting. The deciding classes are pure
(time is an argument); `wait_for_metadata` is their thin shell around the client.

A consumer can wait a long time before its first record: while it connects (librdkafka
retries a refused connection forever) and while its group assigns partitions (about the
session timeout on some brokers). Silence there looks like a hang, so the control loop
asks `WaitReporter` every round and logs what it returns, every `every` seconds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from parafka.core.errors import BrokerUnreachable
from parafka.core.seam import ClientError, Consumer

REPORT_EVERY = 5.0  # seconds between two "still waiting" lines
REFUSED_FOR = 2.0  # seconds of nothing but refused connections before giving up
QUICK_JOIN_MS = 6000  # a session timeout that lets a new group form in seconds
TRY_EVERY = 1.0  # seconds of one metadata request while connecting
_REFUSED = "Connection refused"
_TIMING = re.compile(r" \(after \d+ms in state \w+\)")


@dataclass
class ConnectWatch:
    """Whether the cluster refuses every connection (nothing listens at the address).

    librdkafka retries forever, so without this a typo in the port costs the whole
    connection timeout in silence. A refused connection is answered at once; once
    `refused_for` seconds have seen only refusals, waiting longer will not help.
    """

    refused_for: float = REFUSED_FOR
    first_refused: float | None = None
    last_text: str = ""
    last_error: str = ""  # the client's latest error of any kind, shown while joining

    def client_error(self, text: str, now: float) -> None:
        """An error the client reported while connecting."""
        self.last_error = _TIMING.sub("", text)
        if _REFUSED in text:
            self.last_text = text
            if self.first_refused is None:
                self.first_refused = now

    def refused(self, now: float) -> bool:
        return self.first_refused is not None and now - self.first_refused >= self.refused_for


def refused_message(bootstrap_servers: str, watch: ConnectWatch) -> str:
    said = _TIMING.sub("", watch.last_text.split(": ", 1)[-1])
    return (
        f"connection refused by {bootstrap_servers} (nothing listens there: {said}): check "
        "--bootstrap-servers and that the broker is running (`parafka broker` starts a local one)"
    )


@dataclass
class WaitReporter:
    """Lines saying what the consumer waits for, one per `every` seconds of waiting."""

    group_id: str
    topics: tuple[str, ...]
    kafka_config: Mapping[str, Any] = field(default_factory=dict)
    join_grace: float | None = None  # set with until_idle: the wait ends after this
    watch: ConnectWatch = field(default_factory=ConnectWatch)
    every: float = REPORT_EVERY
    _since: float | None = None
    _told: float | None = None

    def connecting(self, bootstrap_servers: str, now: float, timeout: float) -> str | None:
        """While the first metadata request has no answer."""
        waited = self._waited(now)
        if waited is None:
            return None
        return (
            f"still connecting to {bootstrap_servers} ({waited:.0f} s of --connect-timeout "
            f"{timeout:g} s)"
        )

    def joining(self, now: float, assigned: bool) -> str | None:
        """While the group has not assigned anything to this consumer yet."""
        if assigned:
            self._since = self._told = None
            return None
        waited = self._waited(now)
        if waited is None:
            return None
        line = (
            f"waiting for group {self.group_id!r} to assign partitions of "
            f"{', '.join(self.topics)} ({waited:.0f} s so far)"
        )
        if self.watch.last_error:
            line += f"; last client error: {self.watch.last_error}"
        if self.join_grace is not None:
            line += f"; giving up after --join-grace {self.join_grace:g} s"
        if _slow_join(self.kafka_config):
            line += (
                "; a new group can take up to the session timeout (45 s by default) on some "
                f"brokers: -X session.timeout.ms={QUICK_JOIN_MS} -X heartbeat.interval.ms=500 "
                "shortens it"
            )
        return line

    def join_given_up(self, now: float) -> bool:
        """True once the join grace is over without an assignment (only with a grace)."""
        return (
            self.join_grace is not None
            and self._since is not None
            and now - self._since >= self.join_grace
        )

    def not_assigned_message(self) -> str:
        return (
            f"no partitions assigned by group {self.group_id!r} within --join-grace "
            f"{self.join_grace:g} s: check that the group's other members are healthy "
            "(`parafka lag` shows its offsets), or raise --join-grace"
        )

    def _waited(self, now: float) -> float | None:
        """Seconds waited when a line is due now, else None."""
        if self._since is None:
            self._since = self._told = now
            return None
        assert self._told is not None
        if now - self._told < self.every:
            return None
        self._told = now
        return now - self._since


def _slow_join(config: Mapping[str, Any]) -> bool:
    try:
        return int(config.get("session.timeout.ms", 45000)) > QUICK_JOIN_MS
    except (TypeError, ValueError):
        return False


def wait_for_metadata(
    consumer: Consumer,
    bootstrap_servers: str,
    timeout: float,
    watch: ConnectWatch,
    reporter: WaitReporter,
    log: logging.Logger,
    clock: Callable[[], float],
) -> set[str]:
    """The cluster's metadata, asked for in short tries so the wait can be reported and
    cut short: BrokerUnreachable at once when every connection is refused, ClientError
    (as from one long request) when `timeout` passes. Returns the topic names."""
    deadline = clock() + timeout
    while True:
        left = deadline - clock()
        try:
            return consumer.topics(max(0.05, min(TRY_EVERY, left)))
        except ClientError:
            consumer.consume(1, 0)  # serves the client's error callback (ConnectWatch hears it)
            now = clock()
            if watch.refused(now):
                raise BrokerUnreachable(refused_message(bootstrap_servers, watch)) from None
            if now >= deadline:
                raise
            line = reporter.connecting(bootstrap_servers, now, timeout)
            if line is not None:
                log.info("%s", line)
