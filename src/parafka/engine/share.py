"""The share-group loop (KIP-932, experimental): `group_type="share"`.

A share group hands each record to one member at a time under a lock the broker keeps
(`group.share.record.lock.duration.ms`, 30 s by default), and every member may receive
records of every partition. The broker, not the consumer, tracks each record's state, so
this loop keeps no offsets, no commit metadata and no order: it polls, runs the records
through the same executors and handler calling convention as the consumer-group engine,
and acknowledges each record once its handler returned and its outputs (or its dead
letter) were acknowledged by the broker:

- success: ACCEPT;
- failure with attempts left: RELEASE (the broker delivers it again, perhaps to another
  member; `Record.attempt` is the broker's delivery count);
- failure on the last attempt: dead-letter it, then ACCEPT; with `on_failure="skip"`
  REJECT; with "stop" (the default without a dead-letter topic) RELEASE and stop.

The client refuses a poll while a record of the previous poll is unacknowledged, so a
poll's records (at most about `max_buffered`, sent as `max.poll.records`) must all be
settled before the next poll: the slowest record of a poll holds the next one back.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from parafka.core.deadletter import Failure, dead_letter
from parafka.core.deserializers import DeserializationError
from parafka.core.errors import RecordFailed
from parafka.core.failures import FailureLog, is_mistake, report, report_due
from parafka.core.ledger import Counts
from parafka.core.outcomes import NOT_RUN, Outcome, per_record_outcomes
from parafka.core.recent import RecentDeadLetters
from parafka.core.record import MessageRecord, Produced
from parafka.core.retry import RetryPolicy
from parafka.core.seam import TP, Ack, AckCallback, ClientError, ShareConsumer, ShareMessage
from parafka.core.stats import Stats
from parafka.engine.control import ERROR_LOG_EVERY, Stoppable
from parafka.engine.outputs import Acknowledged, OutputThread
from parafka.engine.settings import Settings
from parafka.executors import ChunkResult, Completions, Executor, Work
from parafka.kafka.config import share_consumer_config
from parafka.kafka.confluent import ConfluentKafka, ConfluentShareConsumer

log = logging.getLogger(__name__)

POLL_WAIT = 0.1  # seconds a poll may block when nothing is running (a stop waits this long)
BUSY_WAIT = 0.05  # seconds to wait for completions (a completion wakes the loop at once)
STATS_EVERY = 0.25

Connect = Callable[[Mapping[str, Any], AckCallback, Callable[[ClientError], None]], ShareConsumer]


class Verdict(enum.Enum):
    """What becomes of a record after its handler (and outputs) finished."""

    ACCEPT = "accept"
    RELEASE = "release"  # for another attempt
    DEAD_LETTER = "dead-letter"  # write the dead letter, then ACCEPT
    REJECT = "reject"  # on_failure="skip": the broker archives it
    STOP = "stop"  # RELEASE it (left to the group) and stop the consumer


def verdict(
    error: BaseException | None, attempt: int, retry: RetryPolicy, failure_policy: str
) -> Verdict:
    """The acknowledgement for a record whose attempt number `attempt` ended with `error`
    (None: success). Pure. A mistake that fails every record stops at once (as in the
    consumer-group engine); attempts left mean a release; then the failure policy."""
    if error is None:
        return Verdict.ACCEPT
    if is_mistake(error):
        return Verdict.STOP
    if retry.should_retry(attempt, error):
        return Verdict.RELEASE
    return {"dead-letter": Verdict.DEAD_LETTER, "skip": Verdict.REJECT}.get(
        failure_policy, Verdict.STOP
    )


class ShareRecord(MessageRecord):
    """A record acquired from a share group; `attempt` is the broker's delivery count."""

    __slots__ = ()

    def __init__(self, message: ShareMessage) -> None:
        super().__init__(message, message.topic(), message.partition(), message.offset())
        self.attempt = message.delivery_count() or 1


def _message(record: ShareRecord) -> ShareMessage:
    """The client's message behind `record` (kept off the handler's view of it)."""
    return cast("ShareMessage", record._msg)


def _where(record: ShareRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


class ShareLoop(Stoppable):
    """The control thread of a share-group member: the only thread touching the share
    consumer. Same public face as `ControlLoop` for `ParallelConsumer`: `run`, `stop`,
    `stats`, `clock`, `executor`, `running`, `recent_dead_letters`."""

    def __init__(
        self,
        settings: Settings,
        work: Work,
        executor: Executor,
        connect: Connect | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.work, self.executor, self.clock = settings, work, executor, clock
        self._connect: Connect = connect or ConfluentShareConsumer
        self.completions = Completions()
        self.outputs = OutputThread(
            ConfluentKafka(), settings.bootstrap_servers, settings.kafka_config, self.completions
        )
        self.running = threading.Event()  # set once subscribed
        self.recent_dead_letters = RecentDeadLetters()
        self.failure_log = FailureLog()
        self.failure: RecordFailed | None = None
        self._consumer: ShareConsumer | None = None
        Stoppable.__init__(self)  # stop(): running records get shutdown_timeout, then release
        self._held: dict[int, ShareRecord] = {}  # acquired, not acknowledged (by id)
        self._queued: deque[ShareRecord] = deque()  # acquired, not handed to the executor
        self._running = 0  # handed to the executor, not reported
        self._letters: set[int] = set()  # records whose dead letter awaits acknowledgement
        self._counts = Counts()  # retried: released; dropped: rejected
        self._acked_since_commit = 0
        self._next_commit_at = 0.0
        self._started_at = clock()
        self._last_record_at: float | None = None
        self._stats = Stats()
        self._stats_at = 0.0
        self._error_logged_at: dict[str, float] = {}

    # -- the loop -------------------------------------------------------------------
    def run(self, until_idle: float | None = None) -> Stats:
        try:
            self._open()
            while not self._stop.is_set():
                self._step()
                if until_idle is not None and self._idle_for(until_idle):
                    log.info("no record for %.1f s and nothing pending: stopping", until_idle)
                    break
            self._drain()
        finally:
            self._close()
        if self.failure is not None:
            raise self.failure
        return self._stats

    def _open(self) -> None:
        s = self.settings
        config = share_consumer_config(s.bootstrap_servers, s.group_id, s.kafka_config)
        config.setdefault("max.poll.records", s.buffer_limit)  # best effort in the client
        self._consumer = self._connect(config, self._on_acknowledged, self._on_error)
        self._consumer.subscribe(s.topics)
        self.executor.start(self.work, self.completions)
        log.info("share group %s (experimental): subscribed to %s", s.group_id, ", ".join(s.topics))
        self.running.set()

    @property
    def consumer(self) -> ShareConsumer:
        assert self._consumer is not None, "_open() first"
        return self._consumer

    def _step(self) -> None:
        now = self.clock()
        if not self._held:  # the client refuses a poll while any record is unacknowledged
            self._accept(self.consumer.poll(POLL_WAIT), now)
        self._dispatch()
        if self._held:  # a completion wakes it at once; acknowledgements may be due sooner
            due = self._next_commit_at - now if self._acked_since_commit else BUSY_WAIT
            self.completions.wait(max(0.0, min(BUSY_WAIT, due)))
        self._handle(self.completions.drain())
        self._commit(now)
        self._refresh_stats(now)

    def _accept(self, messages: Sequence[ShareMessage], now: float) -> None:
        for message in messages:
            record = ShareRecord(message)
            self._held[id(record)] = record
            self._queued.append(record)
        if messages:
            self._last_record_at = now

    def _dispatch(self) -> None:
        room = self.executor.capacity - self._running
        if room <= 0 or not self._queued or self._stop.is_set():
            return
        queued = self._queued
        runs = [[queued.popleft()] for _ in range(min(room, len(queued)))]
        self._running += len(runs)
        self.executor.submit(runs)

    def _commit(self, now: float) -> None:
        """Send the acknowledgements made while records of the poll still run (a poll
        sends them too), so accepted records are settled and released ones go to other
        members without waiting for the slowest record."""
        if self._acked_since_commit and now >= self._next_commit_at:
            self._acked_since_commit = 0
            self._next_commit_at = now + self.settings.commit_interval
            try:
                self.consumer.commit()
            except ClientError as exc:
                log.warning("sending acknowledgements: %s", exc)

    # -- outcomes ---------------------------------------------------------------------
    def _handle(self, chunks: list[ChunkResult]) -> None:
        for chunk in chunks:
            records = cast("list[ShareRecord]", chunk.records)
            outcomes = per_record_outcomes(chunk.outcomes)  # the thread executor may send OneEach
            if not isinstance(chunk, Acknowledged):
                self._running -= len(records)
            held = self._held
            if any(id(record) not in held for record in records):  # released at a stop:
                keep = [i for i, record in enumerate(records) if id(record) in held]
                records = [records[i] for i in keep]  # their late results change nothing
                outcomes = None if outcomes is None else [outcomes[i] for i in keep]
            if isinstance(chunk, Acknowledged):
                self._acknowledged(records, outcomes)
            else:
                self._completed(records, outcomes)

    def _completed(self, records: list[ShareRecord], outcomes: list[Outcome | None] | None) -> None:
        """The executor ran these: accept, send their outputs, or handle the failure."""
        sends: dict[int, tuple[list[ShareRecord], list[Produced]]] = {}
        for index, record in enumerate(records):
            outcome = None if outcomes is None else outcomes[index]
            if outcome is None:
                self._settle(record, Ack.ACCEPT)
            elif outcome == NOT_RUN:
                self._queued.appendleft(record)
            elif outcome[1] is not None:
                self._failed(record, outcome[1])
            elif outcome[0]:  # the records of a batch share one output list: send it once
                sends.setdefault(id(outcome[0]), ([], outcome[0]))[0].append(record)
            else:
                self._settle(record, Ack.ACCEPT)
        if sends:
            self.outputs.send(list(sends.values()))

    def _acknowledged(
        self, records: list[ShareRecord], outcomes: list[Outcome | None] | None
    ) -> None:
        """Outputs or dead letters of these records were acknowledged (or failed)."""
        for index, record in enumerate(records):
            outcome = None if outcomes is None else outcomes[index]
            error = None if outcome is None else outcome[1]
            letter = id(record) in self._letters
            self._letters.discard(id(record))
            if error is None:
                self._settle(record, Ack.ACCEPT, dead_lettered=letter)
            elif letter:  # never lose it: leave it to the group and stop
                self._settle(record, Ack.RELEASE)
                self._fail(
                    record,
                    RuntimeError(
                        f"writing it to the dead-letter topic {self.settings.dead_letter_topic!r}"
                        f" failed ({error})"
                    ),
                )
            else:
                self._failed(record, error)  # its outputs failed: like a handler failure

    def _failed(self, record: ShareRecord, error: BaseException) -> None:
        s = self.settings
        self._counts.failed += 1
        decided = verdict(error, record.attempt, s.retry, s.failure_policy)
        now = self.clock()
        if decided is Verdict.RELEASE:
            report(log, self.failure_log, error, _where(record), record.attempt, "released", now)
            self._counts.retried += 1
            self._settle(record, Ack.RELEASE)
        elif decided is Verdict.DEAD_LETTER:
            self._dead_letter(record, error)
        elif decided is Verdict.REJECT:
            report(log, self.failure_log, error, _where(record), record.attempt, "rejected", now)
            self._counts.dropped += 1
            self._settle(record, Ack.REJECT)
        else:
            self._settle(record, Ack.RELEASE)
            self._fail(record, error)

    def _dead_letter(self, record: ShareRecord, error: BaseException) -> None:
        s = self.settings
        assert s.dead_letter_topic is not None
        now = time.time()
        stage = "deserializer" if isinstance(error, DeserializationError) else "handler"
        failure = Failure(error, record.attempt, now, now, stage)
        report(
            log,
            self.failure_log,
            error,
            _where(record),
            record.attempt,
            f"sent to dead-letter topic {s.dead_letter_topic}",
            self.clock(),
        )
        self.recent_dead_letters.add(record, error)
        self._letters.add(id(record))
        letter = dead_letter(record, s.dead_letter_topic, s.group_id, failure)
        if s.tracing:  # the failed attempt's trace goes on in the letter
            from parafka.observe.tracing import Follow

            letter = Follow.letter(letter, error)
        self.outputs.send([([record], [letter])])

    def _settle(self, record: ShareRecord, ack: Ack, dead_lettered: bool = False) -> None:
        """Acknowledge `record` (once: a record released at shutdown is not touched again)."""
        if self._held.pop(id(record), None) is None:
            return
        if ack is Ack.ACCEPT:
            if dead_lettered:
                self._counts.dead_lettered += 1
            else:
                self._counts.processed += 1
        try:
            self.consumer.acknowledge(_message(record), ack)
        except ClientError as exc:  # e.g. its lock expired and the broker took it back
            log.warning("acknowledging %s (%s): %s", _where(record), ack.value, exc)
        self._acked_since_commit += 1

    def _fail(self, record: ShareRecord, error: BaseException) -> None:
        failure = RecordFailed(record.topic, record.partition, record.offset, record.attempt, error)
        if self.failure is None:
            self.failure = failure
            log.error("%s; stopping", failure)
        self._stop.set()

    # -- client callbacks (served inside poll/commit/close, on this thread) -------------
    def _on_acknowledged(self, results: list[tuple[TP, ClientError | None]]) -> None:
        for (topic, partition), error in results:
            if error is not None:
                log.warning(
                    "acknowledgements of %s[%d] failed: %s (a record whose lock expired was "
                    "delivered again, perhaps elsewhere: a duplicate, never a loss)",
                    topic,
                    partition,
                    error,
                )

    def _on_error(self, error: ClientError) -> None:
        """The client retries by itself: log each kind once per ERROR_LOG_EVERY; a fatal
        error stops the loop."""
        if error.fatal:
            log.error("fatal Kafka error: %s", error)
            self._stop.set()
            return
        now = self.clock()
        if now - self._error_logged_at.get(error.code, -ERROR_LOG_EVERY) >= ERROR_LOG_EVERY:
            self._error_logged_at[error.code] = now
            log.warning("kafka: %s", error)

    # -- shutdown ---------------------------------------------------------------------
    def _idle_for(self, seconds: float) -> bool:
        """Nothing held and no record for `seconds` (before the first record: for
        `seconds` plus `join_grace`, the time a member may take to get records)."""
        if self._held:
            return False
        now = self.clock()
        if self._last_record_at is None:
            return now - self._started_at >= seconds + self.settings.join_grace
        return now - self._last_record_at >= seconds

    def _drain(self) -> None:
        """Release what never started; let running records finish (bounded); release
        the rest."""
        self._release_queued()
        deadline = self.clock() + self.settings.shutdown_timeout
        while (self._running or self.outputs.pending) and not self._hard_stop.is_set():
            if self.clock() >= deadline:
                log.warning(
                    "shutdown: %d record(s) still running after %.1f s; released to the group",
                    self._running,
                    self.settings.shutdown_timeout,
                )
                break
            self.completions.wait(BUSY_WAIT)
            self._handle(self.completions.drain())
            self._release_queued()
        for record in list(self._held.values()):
            self._settle(record, Ack.RELEASE)

    def _release_queued(self) -> None:
        while self._queued:
            self._settle(self._queued.popleft(), Ack.RELEASE)

    def _close(self) -> None:
        self.executor.shutdown(0.0 if self._hard_stop.is_set() else 1.0)
        self.outputs.close(1.0)
        if self._consumer is not None:
            try:
                self._consumer.close()  # sends the acknowledgements, leaves the group
            except (ClientError, RuntimeError) as exc:
                log.warning("closing the share consumer: %s", exc)
        self._refresh_stats(self.clock(), final=True)

    def _refresh_stats(self, now: float, final: bool = False) -> None:
        if not final and now - self._stats_at < STATS_EVERY:
            return
        self._stats_at = now
        report_due(log, self.failure_log, now, final=final)
        counts = self._counts
        self._stats = Stats(
            processed=counts.processed,
            failed=counts.failed,
            retried=counts.retried,
            dead_lettered=counts.dead_lettered,
            skipped_after_failure=counts.dropped,
            in_flight=len(self._held) - len(self._queued),
            queued=len(self._queued),
            at=now,
            # A share member has no assignment to wait for: once subscribed it is in.
            membership="assigned" if self.running.is_set() else "joining",
            membership_since=self._started_at,
        )
