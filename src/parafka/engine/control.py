"""The control thread: owns the Kafka consumer, feeds the ledger, commits offsets.

It polls, dispatches records to the executor, hands completions to the ledger, produces
outputs and dead letters, commits and answers rebalances. It never runs user code, so a
slow handler can never make the group think this consumer is dead. Every change to a
record's state goes through the ledger (ledger.py); this module is the I/O around it,
and talks to Kafka only through the seam (seam.py).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast

from mypy_extensions import mypyc_attr

from parafka.core.codec import decode_completed
from parafka.core.commits import CommitPlanner
from parafka.core.deadletter import Failure, dead_letter
from parafka.core.deserializers import DeserializationError
from parafka.core.entry import Entry
from parafka.core.errors import BrokerUnreachable, NotAssigned, RecordFailed, TopicNotFound
from parafka.core.exactly_once import Transaction, TransactionAborted
from parafka.core.failures import FailureLog, report, report_due
from parafka.core.flow import FlowControl
from parafka.core.gctuning import GcTimer, tuned
from parafka.core.lag import HeadWatch, partition_stats
from parafka.core.ledger import Actions, Ledger, where
from parafka.core.outcomes import per_record_outcomes
from parafka.core.parking import origin
from parafka.core.recent import RecentDeadLetters
from parafka.core.seam import TP, ClientError, CommitResult, Consumer, Kafka, Message, Offset
from parafka.core.stats import Stats
from parafka.engine.outputs import Acknowledged, OutputProducer, OutputThread
from parafka.engine.pacing import Pacer
from parafka.engine.placement import CoreWait, ThreadPlacement, supported
from parafka.engine.retrytopic import RetryTopic
from parafka.engine.settings import Settings
from parafka.engine.steering import Steering
from parafka.engine.waits import ConnectWatch, WaitReporter, wait_for_metadata
from parafka.executors import Completions, Executor, ThreadExecutor, Work, usable_cores
from parafka.executors.handover import HandedOver
from parafka.kafka.config import consumer_config, producer_config
from parafka.kafka.confluent import ConfluentKafka
from parafka.observe.advice import Advisor, Sample
from parafka.observe.health import Membership

if TYPE_CHECKING:
    from parafka.observe.tracing import Follow

log = logging.getLogger(__name__)

FETCH_BATCH = 1000
IDLE_WAIT = 0.05  # seconds to block in consume() when nothing is running
BUSY_WAIT = 0.005  # seconds to wait for completions while handlers run
STALL_BEFORE_PAUSE = 1.0  # buffer full this long -> pause every partition
STARVE_AFTER = 0.2  # a partition with records waiting got none this long -> fair-share pauses
STATS_EVERY = 0.25
SHARE_EVERY = 0.1  # seconds between two fair-share checks
ERROR_LOG_EVERY = 30.0  # seconds between two log lines for the same client error


class Flag:
    """A flag set once, from any thread or a signal handler: no lock to take (see stop())."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@mypyc_attr(allow_interpreted_subclasses=True)  # share.py's loop subclasses it
class Stoppable:
    """What a loop's owner may call from any thread: `stop()` and `stats()`. Shared by the
    consumer-group loop (ControlLoop) and the share-group loop (share.py)."""

    completions: Completions
    _stats: Stats

    def __init__(self) -> None:
        # Plain flags, not threading.Event: stop() is called from signal handlers, which run
        # on the main thread between two bytecodes, maybe while that thread holds an Event's
        # lock (a loop run in the foreground does); setting an Event there could deadlock.
        self._stop = Flag()
        self._hard_stop = Flag()

    def stop(self, drain: bool = True, wake: bool = True) -> None:
        """Ask the loop to finish: drain running work (bounded) unless drain=False.

        wake=False only sets flags (safe in a signal handler): the loop notices them at its
        next round, within IDLE_WAIT, instead of at once."""
        if not drain:
            self._hard_stop.set()
        self._stop.set()
        if wake:
            self.completions.wake()

    def stats(self) -> Stats:
        """The latest snapshot (refreshed 4 times a second by the loop)."""
        return self._stats


class Phase(enum.Enum):
    """The loop's lifecycle: one value, switched on, instead of several flags."""

    STARTING = "starting"  # connecting, subscribing
    RUNNING = "running"  # fetching and dispatching
    DRAINING = "draining"  # stopping: no new work; running records may finish
    CLOSING = "closing"  # drain over: commit, close clients (nothing waits for work again)
    CLOSED = "closed"
    FAILED = "failed"  # a record failed for good, or the client failed fatally


@mypyc_attr(allow_interpreted_subclasses=True)  # the simulator's loop subclasses it
class ControlLoop(Stoppable):
    """One run of a parallel consumer, from subscribe to close."""

    # Exactly-once: produce released outputs into the open transaction every round (True),
    # or all at once when it commits (False, the default). Measured on Apache Kafka:
    # no clear difference (benchmarks/RESULTS.md, "Exactly-once outputs"), and the local
    # broker shows aborted records, so a kill leaves visible only a burst's worth with
    # False. Kept for the benchmark, and checked by the simulator (--stream-outputs).
    stream_outputs = False

    def __init__(
        self,
        settings: Settings,
        work: Work,
        executor: Executor,
        clock: Callable[[], float] = time.monotonic,
        kafka: Kafka | None = None,
        completions: Completions | None = None,
        threaded_outputs: bool = True,
        wall: Callable[[], float] = time.time,  # parked records' due times (the simulator's)
    ) -> None:
        self.settings = settings
        self.work = work
        self.executor = executor
        self.clock = clock
        self.kafka: Kafka = kafka or ConfluentKafka()
        self.completions = Completions() if completions is None else completions
        self.phase = Phase.STARTING
        self.failure_log = FailureLog()  # what to log of handler failures (failures.py)
        self.ledger = Ledger(
            settings.ordering,
            settings.concurrency_cap,
            settings.retry,
            settings.failure_policy,
            settings.exactly_once,
            clock,
            failure_log=self.failure_log,
            retry_topic=settings.retry_topic,
            park_policy=settings.park_policy,
        )
        self.failure: RecordFailed | None = None
        self._missing: list[str] = []  # subscribed topics not seen in the cluster's metadata
        # until_idle ran out while a topic was missing, or before any assignment
        self._absent: TopicNotFound | NotAssigned | None = None
        self._fatal: ClientError | None = None  # a transaction that cannot go on
        Stoppable.__init__(self)
        self._consumer: Consumer | None = None
        self.outputs = OutputThread(
            self.kafka,
            settings.bootstrap_servers,
            settings.kafka_config,
            self.completions,
            threaded=threaded_outputs,
            clock=self.clock,
        )
        self._partition_order = settings.ordering == "partition"
        # The control and output threads on one core (placement.py); made on the loop's
        # thread, at its first stats refresh. Not in the simulator (no output thread).
        self._place = settings.thread_placement == "together" and threaded_outputs
        self.placement: ThreadPlacement | None = None
        # for the advice: this loop waiting for a core (not in the simulator, whose clock
        # is virtual: a real thread's wait means nothing there)
        self._core_wait = CoreWait() if threaded_outputs else None
        self.letters = OutputProducer(
            self.kafka, settings.bootstrap_servers, settings.kafka_config, self._letter_settled
        )
        # --retry-topic: parked records, their fences (retrytopic.py)
        self.parking = (
            None
            if settings.retry_topic is None
            else RetryTopic(
                settings, self.kafka, lambda: self.consumer, self._park_settled, clock, wall
            )
        )
        self.committer = CommitPlanner(settings.max_metadata_bytes)
        self.transaction: Transaction | None = None
        self.flow = FlowControl(
            settings.buffer_limit,
            STALL_BEFORE_PAUSE,
            STARVE_AFTER,
            follows_rate=settings.max_buffered is None,
        )
        self._rate_from: tuple[float, int] | None = None  # (when, processed): flow's rate
        # The dispatch window and rates: adaptive concurrency, --rate, --key-rate, --group-rate
        self.pacer = Pacer(
            settings, clock, lambda t: self.consumer.partition_count(t, settings.connect_timeout)
        )
        self._newly_assigned: list[TP] = []
        self._paused: set[TP] = set()  # paused by us; the client keeps it through a revoke
        self._first_assignment_at: float | None = None
        self._last_activity = clock()
        self._rebalances = 0
        self._commits = 0
        self._stats = Stats()
        self._heads = HeadWatch()  # lag.py: since when each partition waits on its oldest record
        self.membership = Membership(clock())  # health.py: joining / assigned / lost
        self._stats_at = 0.0
        self._shared_at = 0.0
        self._batch_since: float | None = None
        self._next_commit_at = 0.0
        self._error_logged_at: dict[str, float] = {}
        self.running = threading.Event()  # set once subscribed
        self.finished = threading.Event()  # set once closed, by the thread that ran the end
        self._escaped: BaseException | None = None  # what ended the run by raising
        self._until_idle: float | None = None
        self.recent_dead_letters = RecentDeadLetters()  # for the web dashboard
        self.steering = Steering()  # operator actions, applied in step() (steering.py)
        self.steering.wake = self.completions.wake
        # advice.py: say when a setting would help (more processes, a batch handler, tune_gc)
        kind = "thread" if isinstance(executor, ThreadExecutor) else type(executor).__name__
        self.advisor = Advisor(usable_cores(), kind, batched=work.batch_size is not None)
        self.gc_timer = GcTimer()  # installed while the loop runs (open to close)
        self.connect_watch = ConnectWatch()  # a refused connection fails fast (waits.py)
        self.waits = WaitReporter(
            settings.group_id, settings.topics, settings.kafka_config, watch=self.connect_watch
        )
        self.tracing: Follow | None = None  # tracing=True: "ack"/"commit" spans (tracing.py)
        if settings.tracing:
            from parafka.observe.tracing import Follow

            executor.traces = deque()
            self.tracing = Follow(settings.group_id, executor.traces)

    # -- public, thread-safe ------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """A stop was asked for (or a record failed for good): run() is winding down."""
        return self._stop.is_set()

    # -- main loop ------------------------------------------------------------------
    def run(self, until_idle: float | None = None) -> Stats:
        self.waits.join_grace = self.settings.join_grace if until_idle is not None else None
        self._until_idle = until_idle
        try:
            self.open()
        except BaseException as exc:
            self._escaped = exc
            self._end()
            raise
        try:
            self._go_on()
        except HandedOver:  # another thread took the loop over (handover.py) and ends it
            self.finished.wait()
        return self.result()

    def _go_on(self) -> None:
        """Rounds until stopped (or idle), then drain and close. The thread that takes the
        loop over (`take_over`) goes on here; the one it replaced leaves by HandedOver."""
        handed = False
        try:
            until_idle = self._until_idle
            while not self._stop.is_set():
                self.step()
                if until_idle is not None and self._idle_for(until_idle):
                    if self._absent is None:
                        log.info("no record for %.1f s and nothing pending: stopping", until_idle)
                    break
            self.drain()
        except HandedOver:
            handed = True
            raise
        except BaseException as exc:
            self._escaped = exc
            raise
        finally:
            if not handed:
                self._end()

    def take_over(self) -> None:
        """Go on with the loop on this thread: the control thread is held by a handler
        (handover.py). Its outcome is for `run`, through `finished` and `result`."""
        threading.current_thread().name = "parafka-control"
        with contextlib.suppress(BaseException):  # kept in _escaped for result()
            self._go_on()

    def _end(self) -> None:
        try:
            self.close()
        finally:
            self.finished.set()

    def open(self) -> None:
        """Connect, check the cluster, subscribe, start the executor."""
        s = self.settings
        conf = consumer_config(s.bootstrap_servers, s.group_id, s.kafka_config)
        self._consumer = self.kafka.consumer(conf, self)
        self._check_cluster()
        if s.exactly_once:
            self.transaction = Transaction(
                self.kafka, producer_config(s.bootstrap_servers, s.kafka_config), s.connect_timeout
            )
            self.transaction.start()
        retry_topics = [s.retry_topic] if s.retry_topic is not None else []
        self._consumer.subscribe([*s.topics, *retry_topics])
        self.executor.start(self.work, self.completions)
        if self.executor.timings is not None:  # metrics on: the ledger times the queue wait
            self.ledger.queue_wait = self.executor.timings.queue_wait
        self.gc_timer.install()
        self.phase = Phase.RUNNING
        self.running.set()

    def result(self) -> Stats:
        """The final stats, or the reason the run failed."""
        if self._escaped is not None:
            raise self._escaped
        if self.failure is not None:
            raise self.failure
        if self._absent is not None:
            raise self._absent
        if self._fatal is not None:
            raise self._fatal
        return self._stats

    @property
    def consumer(self) -> Consumer:
        assert self._consumer is not None, "open() first"
        return self._consumer

    def _check_cluster(self) -> None:
        """Fail fast, with a clear message, when the cluster is unreachable."""
        s = self.settings
        try:
            topics = wait_for_metadata(
                self.consumer,
                s.bootstrap_servers,
                s.connect_timeout,
                self.connect_watch,
                self.waits,
                log,
                self.clock,
            )
        except ClientError as exc:
            secured = "security.protocol" in s.kafka_config
            raise BrokerUnreachable(
                f"cannot reach Kafka at {s.bootstrap_servers!r} within "
                f"{s.connect_timeout:g} s ({exc}): check "
                "--bootstrap-servers and that the broker is running"
                + (", that -X security.protocol/sasl.*/ssl.* match its listener" if secured else "")
                + ", or raise --connect-timeout"
            ) from None
        if s.retry_topic is not None and s.retry_topic not in topics:
            raise TopicNotFound(
                f"retry topic {s.retry_topic!r} does not exist: create it (as many partitions "
                "as the source topic is a good start) or fix --retry-topic"
            )
        self._missing = [t for t in s.topics if not t.startswith("^") and t not in topics]
        if self._missing:
            log.warning(
                "topic(s) %s do not exist yet; waiting for them to be created (noticed at the "
                "client's next metadata refresh, -X topic.metadata.refresh.interval.ms)",
                ", ".join(self._missing),
            )

    def step(self) -> None:
        """One round: completions, retries, dispatch, fetch, commit, housekeeping."""
        now = self.clock()
        worked = self._handle_completions()
        self.steering.step(self)
        if self.transaction is not None and self.stream_outputs:
            self._send_released()
        self.executor.rescue()
        self.letters.poll()
        if self.parking is not None:
            self.parking.poll()
            self.parking.lift(now)
        self.ledger.release_due(now)
        self._dispatch()
        fetched = self._fetch(now)
        if self._newly_assigned:
            new = set(self._newly_assigned)
            if self.flow.stalled:
                self._pause(new)
            else:  # back after a revoke or loss while paused: still paused in the client
                self._resume(new & self._paused)
            self._newly_assigned = []
        if now >= self._next_commit_at:
            self.commit(asynchronous=True)
        if now - self._shared_at >= SHARE_EVERY:
            self._share_buffer(now)
        if now - self._stats_at >= STATS_EVERY:
            self._refresh_stats(now)
        if not worked and not fetched:
            self._wait(now)

    def _wait(self, now: float) -> None:
        """Nothing happened this round: wait for the next thing that can."""
        timeout = min(BUSY_WAIT, self._quiet_time(now))
        began = self.clock()
        if self.parking is not None and self.parking.pending:
            self.parking.poll(timeout)
        elif self.ledger.in_flight and not self.letters.pending:
            self.completions.wait(timeout)
        elif self.letters.pending:
            self.letters.poll(timeout)
        self.flow.waited(self.clock() - began)

    def _quiet_time(self, now: float) -> float:
        """How long the loop may block without missing a retry or a commit."""
        quiet = min(IDLE_WAIT, self._next_commit_at - now)
        due = self.ledger.scheduler.next_retry_due()
        if due is not None:
            quiet = min(quiet, due - now)
        return max(0.0, quiet)

    def _dispatch(self) -> None:
        if self.failure is not None or self.phase is not Phase.RUNNING:
            return
        scheduler, executor = self.ledger.scheduler, self.executor
        # Records whose outputs await their acknowledgement are not the executor's any
        # more: they must not take its room (their shards stay busy until then).
        pacer = self.pacer
        if self._partition_order:  # its next run waits for this one's acknowledgements
            executor.ack_wait = self.outputs.ack_seconds
        scheduler.concurrency = (
            pacer.window(executor.capacity, executor.run_length) + self.outputs.pending
        )
        if pacer.adaptive is not None:
            executor.active = pacer.limit
        scheduler.run_length = executor.run_length
        if self.work.batch_size is not None and not self._batch_ready():
            return
        runs = pacer.admit(
            self.ledger.take(pacer.allowance(self.ledger.parts)), self.ledger.rate_wait
        )
        if runs and self.parking is not None:
            runs, parks = self.parking.admit(runs, self.ledger)
            self._act(parks)
        if runs:
            pacer.dispatched(runs)
            executor.submit(runs)

    def _batch_ready(self) -> bool:
        """Batch handlers: dispatch full batches at once, a partial one after batch_wait."""
        assert self.work.batch_size is not None
        queued = self.ledger.queued
        if queued >= self.work.batch_size or queued == 0:
            self._batch_since = None
            return queued > 0
        now = self.clock()
        if self._batch_since is None:
            self._batch_since = now
        if now - self._batch_since >= self.settings.batch_wait:
            self._batch_since = None
            return True
        return False

    def _fetch(self, now: float) -> bool:
        """Poll for records while there is room; pause when stuck full. True if any came."""
        flow, held = self.flow, self.ledger.held
        waiting = self.ledger.queued
        change = flow.check_stall(now, held, waiting)
        if change is not None:
            assigned = set(self.ledger.parts)
            if change:
                self._pause(assigned)
            else:
                self._resume(assigned - flow.fair_paused)
            log.debug("%s fetching (%d records held)", "paused" if change else "resumed", held)
        room = flow.room(held, waiting)
        if room <= 0 and not flow.stalled:
            # Stay responsive to completions; rebalance callbacks wait for the next poll.
            began = self.clock()
            self.completions.wait(BUSY_WAIT)
            flow.waited(self.clock() - began)
            return False
        idle = self.ledger.in_flight == 0 and not self.completions and not self._sending
        timeout = self._quiet_time(now) if idle else 0.0
        # Paused, polling only serves callbacks and heartbeats: a record that still comes
        # (a partition assigned since the pause) is given back, never held over the bound.
        began = self.clock()
        messages = self.consumer.consume(max(1, min(room, FETCH_BATCH)), timeout)
        if timeout > 0.0:
            flow.waited(self.clock() - began)
        if not messages:
            return False
        if room <= 0:
            self._give_back(messages)
            return False
        self.ledger.accept(messages)
        self._last_activity = now
        return True

    def _give_back(self, messages: list[Message]) -> None:
        """Fetch these records again later: seek their partitions back and pause them."""
        first: dict[TP, int] = {}
        for message in messages:
            first.setdefault((message.topic(), message.partition()), message.offset())
        for tp, offset in first.items():
            try:
                self.consumer.seek(tp, offset)
            except ClientError as exc:
                log.debug("seek %s[%d]@%d to give records back: %s", tp[0], tp[1], offset, exc)
        self._pause(set(first) & set(self.ledger.parts))

    # -- completions ------------------------------------------------------------------
    def _handle_completions(self) -> bool:
        chunks = self.completions.drain()
        if not chunks:
            return False
        ledger, tracing = self.ledger, self.tracing
        if tracing is not None:
            tracing.collect()
        for chunk in chunks:
            records, outcomes = chunk
            entries = cast("list[Entry]", records)  # the runs this loop submitted
            if isinstance(chunk, Acknowledged):
                if tracing is not None:
                    tracing.acknowledged(entries)
                self._act(ledger.acknowledged(entries, per_record_outcomes(outcomes)))
            else:
                self.pacer.completed(entries, outcomes, ledger)
                self._act(ledger.completed(entries, outcomes))
        return True

    def _act(self, actions: Actions) -> None:
        """Do the I/O a ledger transition asked for."""
        if actions.send:
            self.outputs.send(actions.send)
        for entry, error in actions.letters:
            self._dead_letter(entry, error)
        if actions.parks:
            assert self.parking is not None
            for entry, cause in actions.parks:
                self.parking.send(entry, cause)
        if actions.failure is not None and self.failure is None:
            self.failure = actions.failure
            log.error("%s; stopping", self.failure)
            self.phase = Phase.FAILED
            self._stop.set()

    def _dead_letter(self, entry: Entry, error: BaseException) -> None:
        s = self.settings
        assert s.dead_letter_topic is not None
        record = entry.record
        now = time.time()
        failure = Failure(
            error,
            record.attempt,
            entry.first_failure or now,
            now,
            "deserializer" if isinstance(error, DeserializationError) else "handler",
        )
        report(
            log,
            self.failure_log,
            error,
            where(entry),
            record.attempt,
            f"sent to dead-letter topic {s.dead_letter_topic}",
            self.clock(),
        )
        source = None
        if s.retry_topic is not None and record.topic == s.retry_topic:
            parked = origin(record.headers)  # named by where it came from, not the retry topic
            source = None if parked is None else (parked.topic, parked.partition, parked.offset)
        letter = dead_letter(record, s.dead_letter_topic, s.group_id, failure, source)
        if self.tracing is not None:  # the failed attempt's trace goes on in the letter
            letter = self.tracing.letter(letter, error)
        self.recent_dead_letters.add(record, error, letter[3])
        if self.transaction is not None:  # in the transaction, in offset order
            self.ledger.letter_held(entry, letter)
            return
        self.letters.send([entry], [letter])

    def _letter_settled(self, entry: Entry, error: BaseException | None) -> None:
        if error is not None:
            error = _write_failed(
                f"writing it to the dead-letter topic {self.settings.dead_letter_topic!r}", error
            )
        self._act(self.ledger.letter_settled(entry, error))

    def _park_settled(
        self, entry: Entry, error: BaseException | None, at: tuple[int, int] | None
    ) -> None:
        """The retry topic acknowledged `entry` at `at` (retry partition, offset), or
        refused it (error)."""
        if error is not None:
            error = _write_failed(
                f"parking it on the retry topic {self.settings.retry_topic!r}", error
            )
        self._act(self.ledger.park_settled(entry, error))

    # -- offsets ------------------------------------------------------------------------
    def commit(self, asynchronous: bool, only: set[TP] | None = None) -> None:
        """Commit every partition whose position or finished set moved."""
        self._next_commit_at = self.clock() + self.settings.commit_interval
        if self.transaction is not None:
            self._commit_transaction()
            return
        parts = {tp: part.offsets for tp, part in self.ledger.parts.items()}
        plan = self.committer.plan(parts, only)
        for tp, max_offset in plan.throttle.items():
            self.ledger.scheduler.limit(tp, max_offset)
        for tp in plan.unthrottle:
            self.ledger.scheduler.limit(tp, None)
        if not plan.offsets:
            return
        self._commits += 1
        offsets = [Offset(t, p, o, m) for t, p, o, m in plan.offsets]
        if self.tracing is not None:
            self.tracing.committing(offsets)
        try:
            self.consumer.commit(offsets, asynchronous)
        except ClientError as exc:
            log.warning("commit failed: %s", exc)
            self.on_commit([CommitResult(o, exc) for o in offsets])

    def _send_released(self) -> None:
        """Exactly-once: produce the outputs released since the last round into the open
        transaction now, instead of all at once when it commits."""
        release = self.ledger.release
        assert self.transaction is not None and release is not None
        if not release.released or self._fatal is not None:
            return
        outputs, release.released = release.released, []
        try:
            self.transaction.send(outputs)
        except TransactionAborted:
            self._rewind(set(self.ledger.parts))
        except ClientError as exc:
            self._fail_transaction(exc)

    def _fail_transaction(self, exc: ClientError) -> None:
        """A transaction that cannot go on: stop without committing anything more."""
        assert self.ledger.release is not None
        self.ledger.release.released = []
        if self.failure is None and self._fatal is None:
            self._fatal = exc
        self.phase = Phase.FAILED
        self._stop.set()
        self._hard_stop.set()

    def _commit_transaction(self) -> None:
        """Exactly-once: the released outputs and the offsets below them, atomically."""
        assert self.transaction is not None and self.ledger.release is not None
        if self._fatal is not None:
            return
        parts = self.ledger.parts
        moved = [(tp, part.offsets.position) for tp, part in parts.items()]
        offsets = [
            Offset(t, p, position)
            for (t, p), position in moved
            if position is not None and position != parts[(t, p)].offsets.committed
        ]
        release = self.ledger.release
        outputs = release.released
        if not outputs and not offsets and not self.transaction.open:
            return
        try:
            self.transaction.commit(outputs, offsets, self.consumer.group_metadata())
        except TransactionAborted:
            self._rewind(set(parts))
            return
        except ClientError as exc:
            self._fail_transaction(exc)
            return
        release.released = []
        self._commits += 1
        for tp, position in moved:
            if position is not None and tp in parts:
                parts[tp].offsets.mark_committed(position)
                if self.tracing is not None:
                    self.tracing.covered(tp, position)
        log.debug("transaction committed: %d outputs, %d offsets", len(outputs), len(offsets))

    def _rewind(self, tps: Iterable[TP]) -> None:
        """Exactly-once: forget everything not committed and fetch again from the last
        committed offsets (after an aborted transaction or lost partitions). An open
        transaction is aborted first: it may hold outputs of any partition, so then every
        partition goes back."""
        assert self.transaction is not None
        if self.transaction.open:
            tps = set(self.ledger.parts) | set(tps)
            try:
                self.transaction.abort()
            except ClientError as exc:
                self._fail_transaction(exc)
                return
        restart = self.ledger.rewind(tps)
        for tp, offset in restart.items():
            if offset is None:
                continue
            try:
                self.consumer.seek(tp, offset)
            except ClientError as exc:  # not fetching yet: it starts at the committed offset
                log.debug("seek %s[%d]@%d after a rewind: %s", tp[0], tp[1], offset, exc)
        log.warning("rewound %d partition(s) to their last committed offsets", len(restart))

    # -- the consumer's events (seam.ConsumerEvents) ----------------------------------------
    def on_commit(self, results: list[CommitResult]) -> None:
        """Commit outcomes: a partition whose commit failed is committed again next round."""
        if self.tracing is not None:
            self.tracing.committed(results)
        for offset, error in results:
            if error is None:
                continue
            log.warning(
                "commit of %s[%d]@%s failed: %s",
                offset.topic,
                offset.partition,
                offset.offset,
                error,
            )
            part = self.ledger.parts.get((offset.topic, offset.partition))
            if part is not None:
                part.offsets.mark_dirty()

    def on_error(self, error: ClientError) -> None:
        self.connect_watch.client_error(str(error), self.clock())
        if error.fatal:
            log.error("fatal Kafka error: %s", error)
            self._stop.set()
            return
        # The client retries connection problems by itself: before the group is joined
        # the connection check reports them in one line; afterwards, once per code/30 s.
        now = self.clock()
        if now - self._error_logged_at.get(error.code, -1e9) < ERROR_LOG_EVERY:
            return
        self._error_logged_at[error.code] = now
        level = logging.WARNING if self._first_assignment_at is not None else logging.DEBUG
        log.log(level, "kafka: %s", error)

    def on_assign(self, partitions: list[TP]) -> None:
        self._rebalances += 1
        now = self.clock()
        if self._first_assignment_at is None:
            self._first_assignment_at = now
        self._last_activity = now
        self.membership.assigned(now)
        if not partitions:
            return
        try:
            committed = self.consumer.committed(partitions, self.settings.connect_timeout)
        except ClientError as exc:
            log.warning("reading committed offsets failed (%s); nothing will be skipped", exc)
            committed = [Offset(t, p, None) for t, p in partitions]
        for topic, partition, base, metadata in committed:
            done: frozenset[int] = frozenset()
            if base is not None and self.transaction is None:
                done = decode_completed(base, metadata)
            self.ledger.assign((topic, partition), base, done)
            if done:
                log.info(
                    "%s[%d]: %d records above offset %d were already done; skipping them",
                    topic,
                    partition,
                    len(done),
                    base,
                )
        if self.parking is not None:  # before any record of them is dispatched
            try:
                self.parking.rebuild(partitions)
            except ClientError as exc:
                self._fatal = ClientError(
                    f"rebuilding the retry topic's fences failed ({exc}): without them a "
                    "key's parked records could be overtaken; stopping",
                    exc.code,
                )
                self.phase = Phase.FAILED
                self._stop.set()
        self._newly_assigned.extend(partitions)
        log.info("assigned %s", _names(partitions))

    def on_revoke(self, partitions: list[TP]) -> None:
        self._last_activity = self.clock()
        tps = set(partitions)
        ledger = self.ledger
        ledger.revoking(tps)  # first: no completion of them may retry or re-queue now
        # The revoke in close() comes after shutdown's drain has waited already.
        closing = self.phase in (Phase.CLOSING, Phase.CLOSED) or self._hard_stop.is_set()
        wait = 0.0 if closing else self.settings.revoke_timeout
        deadline = self.clock() + wait
        while ledger.running_in(tps) and self.clock() < deadline and not self._hard_stop.is_set():
            self.completions.wait(BUSY_WAIT)
            self._handle_completions()
            self.letters.poll()
            if self.parking is not None:
                self.parking.poll()
        if ledger.running_in(tps):
            log.warning(
                "revoke: records of %s still running%s; they will be redelivered",
                _names(partitions),
                f" after {wait:g} s" if wait else "",
            )
        self.commit(asynchronous=False, only=tps)
        self._forget(tps)
        log.info("revoked %s", _names(partitions))

    def on_lost(self, partitions: list[TP]) -> None:
        tps = set(partitions)
        self.membership.lost(self.clock())
        self.ledger.revoking(tps)
        self._forget(tps)
        if self.transaction is not None:  # released outputs may belong to the lost partitions
            self._rewind(set(self.ledger.parts))
        log.warning(
            "lost %s (session expired); uncommitted work will be redelivered", _names(partitions)
        )

    def _forget(self, tps: set[TP]) -> None:
        if self.parking is not None:
            self.parking.forget(tps)
        stranded = self.ledger.close(tps)
        if self.tracing is not None:
            self.tracing.forget(tps)
        for tp in tps:
            self.committer.forget(tp)
            self.flow.fair_paused.discard(tp)
        self.steering.forget(tps)
        if stranded:  # exactly-once: they held a batch's outputs with a closed partition
            self._rewind(stranded)

    # -- pause / idle / shutdown ------------------------------------------------------------------
    def _pause(self, tps: set[TP]) -> None:
        if tps:
            self.consumer.pause(tps)
            self._paused |= tps

    def _resume(self, tps: set[TP]) -> None:
        """Resume fetching at the next offset each partition expects. The seek restarts
        the client's fetch at once: a plain resume took about a second to deliver on the
        local broker, a seek first about 40 ms."""
        tps = tps - self.steering.paused  # an operator's pause outlasts flow control's
        if not tps:
            return
        for tp in tps:
            part = self.ledger.parts.get(tp)
            offset = part.offsets.next_offset if part is not None else None
            if offset is not None:
                try:
                    self.consumer.seek(tp, offset)
                except ClientError as exc:  # not fetching yet: a plain resume will do
                    log.debug("seek %s[%d]@%d before resume: %s", tp[0], tp[1], offset, exc)
        self.consumer.resume(tps)
        self._paused -= tps

    # -- operator actions (steering.py applies them on this thread) ------------------------
    def hold(self, tp: TP) -> None:
        """Pause fetching `tp` for an operator."""
        self._pause({tp})

    def release(self, tp: TP) -> bool:
        """An operator's pause ended: fetch `tp` again unless flow control holds it."""
        if self.flow.stalled or tp in self.flow.fair_paused:
            return False
        self._resume({tp})
        return True

    def apply(self, actions: Actions) -> None:
        """Do the I/O an operator's ledger transition asked for."""
        self._act(actions)

    def _share_buffer(self, now: float) -> None:
        """Fair-share pauses: keep a few partitions from holding the whole buffer while
        another has records waiting on the broker."""
        self._shared_at = now
        ledger = self.ledger
        sch = ledger.scheduler
        flow = self.flow
        # With keys or no order, other records can run while a partition waits for its own
        # (and reshuffling costs refetches), so fair share looks only when it is needed:
        needed = (
            sch.ordering == "partition"  # workers idle for want of a partition's records
            or self.pacer.holds_keys  # --key-rate: held keys' records could fill the buffer
            # a stall: records queued behind a hung one can keep the buffer over the half
            # it resumes at, so a partition starved meanwhile must end it (flow.py) ...
            or flow.stalled
            or bool(flow.fair_paused)  # ... and the partitions paused for it must resume
        )
        if not needed:
            return
        held, backlog = {}, {}
        for tp, part in ledger.parts.items():
            held[tp] = part.offsets.pending_count
            next_offset = part.offsets.next_offset
            high = self._high_watermark(tp)
            # Never fetched (paused since it was assigned): its log end is unknown, and
            # may well be ahead; counting it as empty would starve it for good.
            backlog[tp] = high is None or next_offset is None or high > next_offset
        lacking = flow.lacking(now, self.executor.runs_here, sch.in_flight < sch.concurrency)
        decision = flow.rebalance_shares(now, held, backlog, lacking)
        if decision.pause:
            self._pause(decision.pause)
            share = flow.share(len(held))
            for tp in decision.pause:  # give the room to the starved partitions now
                ledger.trim(tp, share)
            log.debug("fair share: paused %s", sorted(decision.pause))
        if decision.resume and not flow.stalled:
            self._resume(decision.resume)

    def _high_watermark(self, tp: TP) -> int | None:
        """The broker's end offset as last seen by the client (no request is made)."""
        marks = self.consumer.watermarks(tp)
        return None if marks is None else marks[1]

    def _idle_for(self, seconds: float) -> bool:
        """Idle: assigned (possibly nothing), nothing held, no record for `seconds`. A topic
        still missing by then ends the run too, with TopicNotFound (a typo must not look
        like an empty topic)."""
        if self._first_assignment_at is None and self.waits.join_given_up(self.clock()):
            self._absent = NotAssigned(self.waits.not_assigned_message())
            return True
        if self._first_assignment_at is None and not self._missing:
            return False
        if self.ledger.held or self._sending:
            return False
        if self.clock() - self._last_activity < seconds:
            return False
        if self._missing:
            missing = self._still_missing()
            if missing:
                self._absent = TopicNotFound(
                    f"topic(s) {', '.join(missing)} do not exist (still missing after "
                    f"{seconds:g} s idle): check the names given with -t, or create the "
                    "topics first"
                )
                return True
            if missing is not None:  # created meanwhile: give it time to be assigned
                self._missing = []
            self._last_activity = self.clock()
            return False
        # Not before the client has heard from the broker about every partition (its high
        # watermark comes with the first fetch response): on a slow broker the first fetch
        # after an assignment can take longer than `seconds`, and a topic with records must
        # not pass for an empty one.
        return all(self._high_watermark(tp) is not None for tp in self.ledger.parts)

    def _still_missing(self) -> list[str] | None:
        """The missing topics the cluster's metadata still does not list (None: unknown)."""
        try:
            topics = self.consumer.topics(self.settings.connect_timeout)
        except ClientError as exc:
            log.debug("metadata request failed: %s", exc)
            return None
        return [t for t in self._missing if t not in topics]

    def drain(self) -> None:
        """Let running handlers finish (bounded), then commit what is done."""
        if self.phase is Phase.RUNNING:
            self.phase = Phase.DRAINING
        deadline = self.clock() + self.settings.shutdown_timeout
        while (self.ledger.in_flight or self._sending) and not self._hard_stop.is_set():
            if self.clock() >= deadline:
                log.warning(
                    "shutdown: %d record(s) still running after %.1f s; not committed",
                    self.ledger.in_flight,
                    self.settings.shutdown_timeout,
                )
                break
            self.completions.wait(BUSY_WAIT)
            self._handle_completions()
            self.letters.poll()
            if self.parking is not None:
                self.parking.poll()
        self.letters.flush(max(0.0, deadline - self.clock()))
        if self.parking is not None:
            self.parking.flush(max(0.0, deadline - self.clock()))
        self._handle_completions()
        self.commit(asynchronous=False)
        if self.phase is not Phase.FAILED:
            self.phase = Phase.CLOSING

    @property
    def _sending(self) -> bool:
        """Outputs or dead letters not acknowledged yet."""
        parking = self.parking is not None and self.parking.pending
        return bool(self.outputs.pending or self.letters.pending or parking)

    def close(self) -> None:
        self.steering.close()
        self.gc_timer.remove()
        if self.placement is not None:
            self.placement.close()
            self.placement = None
        self._place = False
        if self.phase is not Phase.FAILED:
            self.phase = Phase.CLOSING
        self.executor.shutdown(0.0 if self._hard_stop.is_set() else 1.0)
        self.outputs.close(1.0)
        if self.transaction is not None:
            self.transaction.close()
        if self._consumer is not None:
            self._refresh_stats(self.clock())
            try:
                self._consumer.close()
            except (ClientError, RuntimeError) as exc:
                log.warning("closing the consumer: %s", exc)
        if self.phase is not Phase.FAILED:
            self.phase = Phase.CLOSED

    def _place_threads(self) -> None:
        """Keep the output thread on the control thread's core (placement.py)."""
        if self.placement is None:
            if not supported():
                self._place = False
                return
            outputs = self.outputs
            self.placement = ThreadPlacement(lambda: outputs.native_id, self.clock)
        self.placement.check()

    def _waited_for_core(self) -> float | None:
        """The loop's seconds waited for a core so far, less what sharing a core with the
        output thread costs it by design (placement.py)."""
        if self._core_wait is None:
            return None
        waited = self._core_wait.read()
        if waited is not None and self.placement is not None:
            waited = max(0.0, waited - self.placement.shared)
        return waited

    def _follow_rate(self, now: float, processed: int) -> None:
        """The buffer limit follows the rate records finish at (flow.py)."""
        last, self._rate_from = self._rate_from, (now, processed)
        if last is None or now <= last[0]:
            return
        if self.flow.follow((processed - last[1]) / (now - last[0])):
            log.debug("buffer limit now %d records (the rate grew)", self.flow.limit)

    def _refresh_stats(self, now: float) -> None:
        self._stats_at = now
        if self._place:
            self._place_threads()
        closing = self.phase in (Phase.CLOSING, Phase.CLOSED, Phase.FAILED)
        report_due(log, self.failure_log, now, final=closing)  # grouped repeats
        if line := self.waits.joining(now, self._first_assignment_at is not None):
            log.info("%s", line)
        heads, high, ledger = self._heads, self._high_watermark, self.ledger
        behind = ledger.scheduler.behind_retries()
        sizes, throttled = self.committer.metadata_bytes, self.committer.throttled
        parts = [
            partition_stats(
                tp,
                part.offsets,
                high(tp),
                heads,
                now,
                (behind.get(tp, 0), sizes.get(tp, 0), tp in throttled),
            )
            for tp, part in sorted(ledger.parts.items())
        ]
        heads.retain(ledger.parts)
        counts = ledger.counts
        self._follow_rate(now, counts.processed)
        advice = self.advisor.sample(
            Sample(
                now,
                time.process_time(),
                counts.processed,
                os.getloadavg()[0],
                self.executor.handler_seconds,
                self.gc_timer.total,
                tuned(),
                self._waited_for_core(),
            )
        )
        for line in advice:
            log.info("advice: %s", line)
        self._stats = Stats(
            processed=counts.processed,
            failed=counts.failed,
            retried=counts.retried,
            skipped_already_done=counts.skipped,
            dead_lettered=counts.dead_lettered,
            skipped_after_failure=counts.dropped,
            rebalances=self._rebalances,
            commits=self._commits,
            in_flight=ledger.in_flight,
            queued=ledger.queued,
            waiting_retry=ledger.waiting_retry,
            paused=self.flow.stalled,
            concurrency_limit=self.pacer.limit,
            buffer_limit=self.flow.limit,
            rate_waits=self.pacer.rate_waits,
            stuck_replaced=self.executor.stuck_replaced,
            parked=counts.parked,
            parked_behind=counts.parked_behind,
            fenced_keys=len(self.parking.fences) if self.parking is not None else 0,
            paused_partitions=(
                len(self.flow.fair_paused | self.steering.paused)
                if not self.flow.stalled
                else len(parts)
            ),
            partitions=tuple(parts),
            at=now,
            membership=self.membership.state,
            membership_since=self.membership.since,
            metadata_max_bytes=self.settings.max_metadata_bytes,
            advice=tuple(self.advisor.given),
            skipped_by_operator=counts.operator_skipped,
            user_paused=tuple(sorted(self.steering.paused)),
            control_actions=self.steering.counts(),
        )


def _write_failed(what: str, error: BaseException) -> RuntimeError:
    """A refused dead letter or park write, said as the failure that stops the consumer."""
    why = f"{error.code}: {error}" if isinstance(error, ClientError) else str(error)
    return RuntimeError(f"{what} failed ({why}); {_send_hint(error)}")


def _send_hint(error: BaseException) -> str:
    """What to do about a record the producer refused."""
    if isinstance(error, ClientError) and error.code == "MSG_SIZE_TOO_LARGE":
        return (
            "the record is larger than the client or the topic accepts: raise "
            "-X message.max.bytes and the topic's max.message.bytes"
        )
    return "check that the topic exists and accepts the record"


def _names(partitions: Iterable[TP]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in partitions) or "nothing"
