"""The control thread: owns the Kafka consumer, feeds the scheduler, commits offsets.

It polls, dispatches records to the executor, collects completions, produces outputs,
commits and answers rebalances. It never runs user code, so a slow handler can never
make the group think this consumer is dead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from itertools import groupby, repeat
from operator import attrgetter, is_
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from parafka.codec import decode_completed
from parafka.commits import CommitPlanner
from parafka.deadletter import Failure, dead_letter
from parafka.deserializers import DeserializationError
from parafka.errors import BrokerUnreachable, NotAssigned, RecordFailed, TopicNotFound
from parafka.exactly_once import OrderedRelease, Transaction, TransactionAborted
from parafka.executors import NOT_RUN, Completions, Executor, Outcome, Work
from parafka.failures import FailureLog, is_mistake, report, report_due
from parafka.flow import FlowControl
from parafka.health import Membership
from parafka.kafka_config import consumer_config, producer_config
from parafka.lag import HeadWatch, partition_stats
from parafka.logs import client_logger
from parafka.offsets import PartitionOffsets
from parafka.outputs import OutputProducer, OutputThread
from parafka.recent import RecentDeadLetters
from parafka.record import MessageRecord, Produced, Record
from parafka.scheduler import Scheduler
from parafka.settings import Settings
from parafka.stats import Stats
from parafka.waits import ConnectWatch, WaitReporter, wait_for_metadata

log = logging.getLogger("parafka")

TP = tuple[str, int]
FETCH_BATCH = 1000
IDLE_WAIT = 0.05  # seconds to block in consume() when nothing is running
BUSY_WAIT = 0.005  # seconds to wait for completions while handlers run
STALL_BEFORE_PAUSE = 1.0  # buffer full this long -> pause every partition
STARVE_AFTER = 0.2  # a partition with records waiting got none this long -> fair-share pauses
STATS_EVERY = 0.25
SHARE_EVERY = 0.1  # seconds between two fair-share checks
ERROR_LOG_EVERY = 30.0  # seconds between two log lines for the same client error
_TICKET = attrgetter("_ticket")  # a record's partition state: runs of records share one


class Flag:
    """A flag set once, from any thread or a signal handler: no lock to take (see stop())."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class ControlLoop:
    """One run of a parallel consumer, from subscribe to close."""

    def __init__(
        self,
        settings: Settings,
        work: Work,
        executor: Executor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.work = work
        self.executor = executor
        self.clock = clock
        self.scheduler = Scheduler(settings.ordering, settings.concurrency)
        self.completions = Completions()
        self.partitions: dict[TP, PartitionOffsets] = {}
        self.failure: RecordFailed | None = None
        self._missing: list[str] = []  # subscribed topics not seen in the cluster's metadata
        self._absent: TopicNotFound | NotAssigned | None = (
            None  # until_idle ran out while one was missing
        )
        self._fatal: KafkaException | None = None  # a transaction that cannot go on
        # Plain flags, not threading.Event: stop() is called from signal handlers, which run
        # on the main thread between two bytecodes, maybe while that thread holds an Event's
        # lock (a loop run in the foreground does); setting an Event there could deadlock.
        self._stop = Flag()
        self._hard_stop = Flag()
        self._drained = False  # shutdown's drain is over: nothing waits for running work again
        self._consumer: Any = None
        self.outputs = OutputThread(
            settings.bootstrap_servers, settings.kafka_config, self.completions
        )
        self.letters = OutputProducer(
            settings.bootstrap_servers, settings.kafka_config, self._dead_lettered
        )
        self.committer = CommitPlanner(settings.max_metadata_bytes)
        # Exactly-once: outputs wait for older records, then go out in a transaction.
        self.release = OrderedRelease() if settings.exactly_once else None
        self.transaction: Transaction | None = None
        self.flow = FlowControl(settings.buffer_limit, STALL_BEFORE_PAUSE, STARVE_AFTER)
        self._newly_assigned: list[TopicPartition] = []
        self._paused: set[TP] = set()  # paused by us; the client keeps it through a revoke
        self._first_assignment_at: float | None = None
        self._last_activity = clock()
        self._processed = 0  # hot path: a plain attribute, not in _counts
        self._counts = {
            "failed": 0,
            "retried": 0,
            "skipped_already_done": 0,  # newcomer: renamed from "skipped"
            "dead_lettered": 0,
            "skipped_after_failure": 0,  # newcomer: renamed from "dropped"
            "rebalances": 0,
            "commits": 0,
        }
        self._stats = Stats()
        self._heads = HeadWatch()  # lag.py: since when each partition waits on its oldest record
        self.membership = Membership(clock())  # health.py: joining / assigned / lost
        self._stats_at = 0.0
        self._shared_at = 0.0
        self._batch_since: float | None = None
        self._next_commit_at = 0.0
        self._error_logged_at: dict[int, float] = {}
        self.running = threading.Event()  # set once subscribed
        self.recent_dead_letters = RecentDeadLetters()  # for the web dashboard
        self.failure_log = FailureLog()  # newcomer: what to log of handler failures
        self.connect_watch = ConnectWatch()  # newcomer: a refused connection fails fast
        self.waits = WaitReporter(
            settings.group_id, settings.topics, settings.kafka_config, watch=self.connect_watch
        )

    # -- public, thread-safe ------------------------------------------------------
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
        return self._stats

    # -- main loop ------------------------------------------------------------------
    def run(self, until_idle: float | None = None) -> Stats:
        s = self.settings
        conf = consumer_config(s.bootstrap_servers, s.group_id, s.kafka_config)
        conf["on_commit"] = self._on_commit
        conf["error_cb"] = self._on_error
        conf["logger"] = client_logger()
        self._consumer = Consumer(conf)
        self.waits.join_grace = s.join_grace if until_idle is not None else None  # newcomer:
        try:
            self._check_cluster()
            if self.release is not None:
                self.transaction = Transaction(
                    producer_config(s.bootstrap_servers, s.kafka_config), s.connect_timeout
                )
                self.transaction.start()
            self._consumer.subscribe(
                list(s.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self.executor.start(self.work, self.completions)
            self.running.set()
            while not self._stop.is_set():
                self._step()
                if until_idle is not None and self._idle_for(until_idle):
                    if self._absent is None:
                        log.info("no record for %.1f s and nothing pending: stopping", until_idle)
                    break
            self._drain()
        finally:
            self._close()
        if self.failure is not None:
            raise self.failure
        if self._absent is not None:
            raise self._absent
        if self._fatal is not None:
            raise self._fatal
        return self._stats

    def _check_cluster(self) -> None:
        """Fail fast, with a clear message, when the cluster is unreachable."""
        s = self.settings
        try:
            metadata = wait_for_metadata(  # newcomer: says it waits; refused -> fail fast
                self._consumer,
                s.bootstrap_servers,
                s.connect_timeout,
                self.connect_watch,
                self.waits,
                log,
                self.clock,
            )
        except KafkaException as exc:
            secured = "security.protocol" in s.kafka_config
            raise BrokerUnreachable(
                f"cannot reach Kafka at {s.bootstrap_servers!r} within "
                f"{s.connect_timeout:g} s ({exc.args[0].str() if exc.args else exc}): check "
                "--bootstrap-servers and that the broker is running"
                + (", that -X security.protocol/sasl.*/ssl.* match its listener" if secured else "")
                + ", or raise --connect-timeout"
            ) from None
        self._missing = [t for t in s.topics if not t.startswith("^") and t not in metadata.topics]
        if self._missing:
            log.warning(
                "topic(s) %s do not exist yet; waiting for them to be created (noticed at the "
                "client's next metadata refresh, -X topic.metadata.refresh.interval.ms)",
                ", ".join(self._missing),
            )

    def _step(self) -> None:
        now = self.clock()
        worked = self._handle_completions()
        self.letters.poll()
        due = self.scheduler.next_retry_due()
        if due is not None and due <= now:
            self.scheduler.release_due(now)
        self._dispatch()
        fetched = self._fetch(now)
        if self._newly_assigned:
            new = {(tp.topic, tp.partition) for tp in self._newly_assigned}
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
        if self.scheduler.in_flight and not self.letters.pending:
            self.completions.wait(timeout)
        elif self.letters.pending:
            self.letters.poll(timeout)

    def _quiet_time(self, now: float) -> float:
        """How long the loop may block without missing a retry or a commit."""
        quiet = min(IDLE_WAIT, self._next_commit_at - now)
        due = self.scheduler.next_retry_due()
        if due is not None:
            quiet = min(quiet, due - now)
        return max(0.0, quiet)

    def _dispatch(self) -> None:
        if self.failure is not None:
            return
        scheduler, executor = self.scheduler, self.executor
        # Records whose outputs await their acknowledgement are not the executor's any
        # more: they must not take its room (their shards stay busy until then).
        scheduler.concurrency = executor.capacity + self.outputs.pending
        scheduler.run_length = executor.run_length
        if self.work.batch_size is not None and not self._batch_ready():
            return
        runs = scheduler.take()
        if runs:
            for run in runs:
                _mark_started(run)
            executor.submit(runs)

    def _batch_ready(self) -> bool:
        """Batch handlers: dispatch full batches at once, a partial one after batch_wait."""
        assert self.work.batch_size is not None
        queued = self.scheduler.queued
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
        flow, held = self.flow, self.scheduler.held
        change = flow.check_stall(now, held)
        if change is not None:
            assigned = set(self.partitions)
            if change:
                self._pause(assigned)
            else:
                self._resume(assigned - flow.fair_paused)
            log.debug("%s fetching (%d records held)", "paused" if change else "resumed", held)
        room = flow.room(held)
        if room <= 0:
            if not flow.stalled:
                # Stay responsive to completions; rebalance callbacks wait for the next poll.
                self.completions.wait(BUSY_WAIT)
                return False
            room = 1  # paused: polling serves callbacks and heartbeats only
        idle = self.scheduler.in_flight == 0 and not self.completions and not self._sending
        batch = min(room, FETCH_BATCH)
        if idle:
            # consume(n, timeout) would wait for n records or the whole timeout; poll()
            # returns on the first one, so a lone record is not held back.
            first = self._consumer.poll(self._quiet_time(now))
            if first is None:
                return False
            messages = [first, *self._consumer.consume(batch - 1, 0)] if batch > 1 else [first]
        else:
            messages = self._consumer.consume(batch, 0)
        if not messages:
            return False
        self._accept(messages)
        self._last_activity = now
        return True

    def _accept(self, messages: list[Any]) -> None:
        partitions = self.partitions
        accepted: list[Record] = []
        add = accepted.append
        state: PartitionOffsets | None = None
        last_topic: str | None = None
        last_partition = -1
        for message in messages:
            if message.error() is not None:
                self._on_message_error(message.error())
                continue
            topic, partition = message.topic(), message.partition()
            if partition != last_partition or topic != last_topic:
                state = partitions.get((topic, partition))
                last_topic, last_partition = topic, partition
            if state is None:
                continue  # not ours any more (a revoke raced the fetch)
            offset = message.offset()
            if not state.receive(offset):
                self._counts["skipped_already_done"] += 1  # newcomer: renamed
                continue
            add(MessageRecord(message, topic, partition, offset, state))
        self.scheduler.add_many(accepted)

    def _on_message_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaException(error)
        log.warning("consumer: %s", error.str())

    # -- completions ------------------------------------------------------------------
    def _handle_completions(self) -> bool:
        chunks = self.completions.drain()
        if not chunks:
            return False
        sending: list[tuple[list[Record], list[Produced]]] = []
        for records, outcomes in chunks:
            if outcomes is None:
                self._finish_all(records)
                continue
            first = outcomes[0]
            if _one_success(first, outcomes):
                # A batch that succeeded in one call: its records share one output list.
                assert first is not None
                if not first[0]:
                    self._finish_all(records)
                elif self.release is None:
                    sending.append((records, first[0]))
                else:
                    self._hold(records, first[0])
                continue
            unrun: list[Record] = []
            failed_shards: set[object] = set()
            # Records of a batch share one output list: produced once, settled together.
            batches: dict[int, tuple[list[Produced], list[Record]]] = {}
            for record, outcome in zip(records, outcomes, strict=True):
                if outcome is None:
                    self._finish(record)
                elif outcome is NOT_RUN:
                    unrun.append(record)
                elif outcome[1] is not None:
                    # A failed batch fails all its records; per shard, the first one waits
                    # for its retry and the later ones go back unrun behind it.
                    shard = record._shard
                    if shard is not None and shard in failed_shards:
                        unrun.append(record)
                        continue
                    failed_shards.add(shard)
                    self._on_failure(record, outcome[1])
                elif outcome[0]:
                    batches.setdefault(id(outcome[0]), (outcome[0], []))[1].append(record)
                else:
                    self._finish(record)
            for outputs, members in batches.values():
                if self.release is None:
                    sending.append((members, outputs))
                else:
                    self._hold(members, outputs)
            if unrun:
                self._unrun(unrun)
        if sending:
            self.outputs.send(sending)
        if self.release is not None:
            touched = {(r.topic, r.partition) for chunk in chunks for r in chunk.records}
            self.release.release(self.partitions, touched)
        return True

    def _hold(self, records: list[Record], outputs: list[Produced], processed: bool = True) -> None:
        """Exactly-once: the records are done, but their outputs (and so their offsets)
        wait for the older records of their partitions."""
        assert self.release is not None
        live = []
        for record in records:
            self.scheduler.done(record)
            state: PartitionOffsets = record._ticket
            state.running -= 1
            if not state.closed:
                live.append(record)
        if processed:
            self._processed += len(live)
        if live:
            self.release.release(self.partitions, self.release.hold(live, outputs))

    def _unrun(self, records: list[Record]) -> None:
        """Records handed over but not executed: they start again (unless revoked)."""
        for record in records:
            record._ticket.running -= 1
        live = [r for r in records if not r._ticket.closed]
        if len(live) < len(records):
            self.scheduler.done_many([r for r in records if r._ticket.closed])
        if live:
            self.scheduler.unrun(live)

    def _finish_all(self, records: list[Record]) -> None:
        """`_finish` for each record of a chunk (the hot path): offsets are settled per
        partition, a run of records of one partition at a time."""
        self.scheduler.done_many(records)
        self._processed += len(records)
        for state, run in groupby(records, _TICKET):
            state.settle([record.offset for record in run])

    def _finish(self, record: Record) -> None:
        """The record and its outputs are done: free its shard and its offset."""
        self._processed += 1
        self._release(record)

    def _release(self, record: Record) -> None:
        """The record is settled (done or dead-lettered): free its shard and its offset."""
        self.scheduler.done(record)
        state: PartitionOffsets = record._ticket
        state.running -= 1
        if state.closed:
            return  # revoked while it ran; the new owner processes it again
        state.finish(record.offset)

    def _on_failure(self, record: Record, error: BaseException) -> None:
        self._counts["failed"] += 1
        state: PartitionOffsets = record._ticket
        if state.closed:
            state.running -= 1
            self.scheduler.done(record)  # revoked while it ran: the new owner retries it
            return
        if record._first_failure is None:
            record._first_failure = time.time()
        retry = self.settings.retry
        if retry.should_retry(record.attempt, error):
            state.running -= 1
            if self._stop.is_set():
                self.scheduler.done(record)  # shutting down: not finished, redelivered later
                return
            delay = retry.delay(record.attempt)
            # newcomer: first failure in full with file:line, repeats grouped (failures.py)
            report(
                log,
                self.failure_log,
                error,
                _where(record),
                record.attempt,
                f"retrying in {delay:.2f} s",
                self.clock(),
            )
            record.attempt += 1
            self._counts["retried"] += 1
            self.scheduler.retry(record, self.clock() + delay)
            return
        self._give_up(record, error)

    def _give_up(self, record: Record, error: BaseException) -> None:
        """The record failed for good: dead-letter it, skip it, or stop (by the policy)."""
        s = self.settings
        policy = (
            "stop" if is_mistake(error) else s.failure_policy
        )  # newcomer: no retry/DLQ fixes it
        if policy == "dead-letter" and s.dead_letter_topic is not None:
            failure = Failure(
                error,
                record.attempt,
                record._first_failure or time.time(),
                time.time(),
                "deserializer" if isinstance(error, DeserializationError) else "handler",
            )
            report(
                log,
                self.failure_log,
                error,
                _where(record),
                record.attempt,
                f"sent to dead-letter topic {s.dead_letter_topic}",
                self.clock(),
            )  # newcomer:
            letter = dead_letter(record, s.dead_letter_topic, s.group_id, failure)
            self.recent_dead_letters.add(record, error)
            if self.release is not None:  # in the transaction, in offset order
                self._counts["dead_lettered"] += 1
                self._hold([record], [letter], processed=False)
                return
            # Still counted as running: done once the dead letter is acknowledged.
            self.letters.send([record], [letter])
            return
        record._ticket.running -= 1
        self.scheduler.done(record)
        if policy == "skip":
            self._counts["skipped_after_failure"] += 1  # newcomer: renamed
            report(
                log,
                self.failure_log,
                error,
                _where(record),
                record.attempt,
                "skipped",
                self.clock(),
            )  # newcomer:
            record._ticket.finish(record.offset)
            return
        # Stop: the record is not finished, so its offset is never committed.
        if self.failure is None:
            self.failure = RecordFailed(
                record.topic, record.partition, record.offset, record.attempt, error
            )
            log.error("%s; stopping", self.failure)
            self._stop.set()

    def _dead_lettered(self, record: Record, error: BaseException | None) -> None:
        """The dead-letter write of `record` settled."""
        if error is None:
            self._counts["dead_lettered"] += 1
            self._release(record)
            return
        state: PartitionOffsets = record._ticket
        state.running -= 1
        self.scheduler.done(record)
        if self.failure is None:
            self.failure = RecordFailed(
                record.topic,
                record.partition,
                record.offset,
                record.attempt,
                RuntimeError(
                    f"writing it to the dead-letter topic {self.settings.dead_letter_topic!r} "
                    f"failed ({error}); {_send_hint(error)}"
                ),
            )
            log.error("%s; stopping", self.failure)
            self._stop.set()

    # -- offsets ------------------------------------------------------------------------
    def commit(self, asynchronous: bool, only: set[TP] | None = None) -> None:
        """Commit every partition whose position or finished set moved."""
        self._next_commit_at = self.clock() + self.settings.commit_interval
        if self.transaction is not None:
            self._commit_transaction()
            return
        plan = self.committer.plan(self.partitions, only)
        for tp, max_offset in plan.throttle.items():
            self.scheduler.limit(tp, max_offset)
        for tp in plan.unthrottle:
            self.scheduler.limit(tp, None)
        if not plan.offsets:
            return
        self._counts["commits"] += 1
        offsets = [TopicPartition(t, p, o, metadata=m) for t, p, o, m in plan.offsets]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            log.warning("commit failed: %s", exc)
            self._on_commit(None, offsets, force=True)

    def _commit_transaction(self) -> None:
        """Exactly-once: the released outputs and the offsets below them, atomically."""
        assert self.transaction is not None and self.release is not None
        if self._fatal is not None:
            return
        moved = [(tp, state.position) for tp, state in self.partitions.items()]
        offsets = [
            TopicPartition(t, p, position)
            for (t, p), position in moved
            if position is not None and position != self.partitions[(t, p)].committed
        ]
        outputs = self.release.released
        if not outputs and not offsets:
            return
        try:
            self.transaction.commit(outputs, offsets, self._consumer.consumer_group_metadata())
        except TransactionAborted:
            self._rewind(set(self.partitions))
            return
        except KafkaException as exc:
            self.release.released = []
            if self.failure is None and self._fatal is None:
                self._fatal = exc
            self._stop.set()
            self._hard_stop.set()
            return
        self.release.released = []
        self._counts["commits"] += 1
        for tp, position in moved:
            if position is not None:
                self.partitions[tp].mark_committed(position)
        log.debug("transaction committed: %d outputs, %d offsets", len(outputs), len(offsets))

    def _rewind(self, tps: set[TP]) -> None:
        """Exactly-once: forget everything not committed and fetch again from the last
        committed offsets (after an aborted transaction or lost partitions)."""
        assert self.release is not None
        self.release.forget()
        self.scheduler.drop_partitions(tps)
        for tp in tps:
            old = self.partitions[tp]
            old.closed = True
            restart = old.committed if old.committed is not None else old.first_received
            self.partitions[tp] = PartitionOffsets(old.committed)
            if restart is not None:
                self._consumer.seek(TopicPartition(*tp, restart))
        log.warning("rewound %d partition(s) to their last committed offsets", len(tps))

    def _on_commit(
        self, err: KafkaError | None, partitions: list[TopicPartition], force: bool = False
    ) -> None:
        """Commit result: on failure, the partitions are committed again next round."""
        if err is not None or force:
            if err is not None:
                log.warning("asynchronous commit failed: %s", err.str())
            for tp in partitions:
                state = self.partitions.get((tp.topic, tp.partition))
                if state is not None:
                    state.mark_dirty()

    def _on_error(self, err: KafkaError) -> None:
        self.connect_watch.client_error(err.str(), self.clock())  # newcomer: refused?
        if err.fatal():
            log.error("fatal Kafka error: %s", err.str())
            self._stop.set()
            return
        # The client retries connection problems by itself: before the group is joined
        # the connection check reports them in one line; afterwards, once per code/30 s.
        now = self.clock()
        code = err.code()
        if now - self._error_logged_at.get(code, -1e9) < ERROR_LOG_EVERY:
            return
        self._error_logged_at[code] = now
        level = logging.WARNING if self._first_assignment_at is not None else logging.DEBUG
        log.log(level, "kafka: %s", err.str())

    # -- rebalance --------------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._counts["rebalances"] += 1
        now = self.clock()
        if self._first_assignment_at is None:
            self._first_assignment_at = now
        self._last_activity = now
        self.membership.assigned(now)
        if not partitions:
            return
        try:
            committed = consumer.committed(partitions, timeout=self.settings.connect_timeout)
        except KafkaException as exc:
            log.warning("reading committed offsets failed (%s); nothing will be skipped", exc)
            committed = partitions
        for tp in committed:
            base = tp.offset if tp.offset >= 0 else None
            done: frozenset[int] = frozenset()
            if base is not None and self.release is None:
                done = decode_completed(base, tp.metadata)
            self.partitions[(tp.topic, tp.partition)] = PartitionOffsets(base, done)
            if done:
                log.info(
                    "%s[%d]: %d records above offset %d were already done; skipping them",
                    tp.topic,
                    tp.partition,
                    len(done),
                    base,
                )
        self._newly_assigned.extend(partitions)
        log.info("assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._last_activity = self.clock()
        tps = {(p.topic, p.partition) for p in partitions}
        self.scheduler.drop_partitions(tps)
        # The revoke in close() comes after shutdown's drain has waited already.
        wait = 0.0 if self._drained or self._hard_stop.is_set() else self.settings.revoke_timeout
        deadline = self.clock() + wait
        while self._running_in(tps) and self.clock() < deadline and not self._hard_stop.is_set():
            self.completions.wait(BUSY_WAIT)
            self._handle_completions()
            self.letters.poll()
        if self._running_in(tps):
            log.warning(
                "revoke: records of %s still running%s; they will be redelivered",
                _names(partitions),
                f" after {wait:g} s" if wait else "",
            )
        self.commit(asynchronous=False, only=tps)
        if self.release is not None:
            self.release.forget(tps)
        self._forget(tps)
        log.info("revoked %s", _names(partitions))

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        self.membership.lost(self.clock())
        self.scheduler.drop_partitions(tps)
        self._forget(tps)
        if self.release is not None:  # released outputs may belong to the lost partitions
            self._rewind(set(self.partitions))
        log.warning(
            "lost %s (session expired); uncommitted work will be redelivered", _names(partitions)
        )

    def _forget(self, tps: set[TP]) -> None:
        for tp in tps:
            state = self.partitions.pop(tp, None)
            if state is not None:
                state.closed = True
            self.committer.forget(tp)
            self.flow.fair_paused.discard(tp)

    def _running_in(self, tps: set[TP]) -> bool:
        return any(self.partitions[tp].running for tp in tps if tp in self.partitions)

    # -- pause / idle / shutdown ------------------------------------------------------------------
    def _pause(self, tps: set[TP]) -> None:
        if tps:
            self._consumer.pause([TopicPartition(t, p) for t, p in tps])
            self._paused |= tps

    def _resume(self, tps: set[TP]) -> None:
        """Resume fetching at the next offset each partition expects. The seek restarts
        the client's fetch at once: a plain resume took about a second to deliver on the
        local broker, a seek first about 40 ms."""
        if not tps:
            return
        for topic, partition in tps:
            state = self.partitions.get((topic, partition))
            offset = state.next_offset if state is not None else None
            if offset is not None:
                try:
                    self._consumer.seek(TopicPartition(topic, partition, offset))
                except KafkaException as exc:  # not fetching yet: a plain resume will do
                    log.debug("seek %s[%d]@%d before resume: %s", topic, partition, offset, exc)
        self._consumer.resume([TopicPartition(t, p) for t, p in tps])
        self._paused -= tps

    def _share_buffer(self, now: float) -> None:
        """Fair-share pauses: keep a few partitions from holding the whole buffer while
        another has records waiting on the broker."""
        self._shared_at = now
        sch = self.scheduler
        # Only `partition` mode leaves workers idle for want of a partition's records; with
        # keys or no order, other records can run (and reshuffling costs refetches).
        if sch.ordering != "partition":
            return
        held, backlog = {}, {}
        for tp, state in self.partitions.items():
            held[tp] = state.pending_count
            next_offset = state.next_offset
            high = self._high_watermark(tp)
            backlog[tp] = high is not None and (next_offset is None or high > next_offset)
        decision = self.flow.rebalance_shares(now, held, backlog, sch.in_flight < sch.concurrency)
        if decision.pause:
            self._pause(decision.pause)
            share = self.flow.share(len(held))
            for tp in decision.pause:  # give the room to the starved partitions now
                cutoff = self.partitions[tp].trim_from(share)
                if cutoff is not None:
                    self.scheduler.trim(tp, cutoff)
            log.debug("fair share: paused %s", sorted(decision.pause))
        if decision.resume and not self.flow.stalled:
            self._resume(decision.resume)

    def _high_watermark(self, tp: TP) -> int | None:
        """The broker's end offset as last seen by the client (no request is made)."""
        try:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        except (KafkaException, RuntimeError):
            return None
        return high if high is not None and high >= 0 else None

    def _idle_for(self, seconds: float) -> bool:
        """Idle: assigned (possibly nothing), nothing held, no record for `seconds`. A topic
        still missing by then ends the run too, with TopicNotFound (a typo must not look
        like an empty topic)."""
        if self._first_assignment_at is None and self.waits.join_given_up(self.clock()):
            self._absent = NotAssigned(self.waits.not_assigned_message())  # newcomer: join grace
            return True
        if self._first_assignment_at is None and not self._missing:
            return False
        if self.scheduler.held or self._sending:
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
        return all(self._high_watermark(tp) is not None for tp in self.partitions)

    def _still_missing(self) -> list[str] | None:
        """The missing topics the cluster's metadata still does not list (None: unknown)."""
        try:
            metadata = self._consumer.list_topics(timeout=self.settings.connect_timeout)
        except KafkaException as exc:
            log.debug("metadata request failed: %s", exc)
            return None
        return [t for t in self._missing if t not in metadata.topics]

    def _drain(self) -> None:
        """Let running handlers finish (bounded), then commit what is done."""
        deadline = self.clock() + self.settings.shutdown_timeout
        while (self.scheduler.in_flight or self._sending) and not self._hard_stop.is_set():
            if self.clock() >= deadline:
                log.warning(
                    "shutdown: %d record(s) still running after %.1f s; not committed",
                    self.scheduler.in_flight,
                    self.settings.shutdown_timeout,
                )
                break
            self.completions.wait(BUSY_WAIT)
            self._handle_completions()
            self.letters.poll()
        self.letters.flush(max(0.0, deadline - self.clock()))
        self._handle_completions()
        self.commit(asynchronous=False)
        self._drained = True

    @property
    def _sending(self) -> bool:
        """Outputs or dead letters not acknowledged yet."""
        return bool(self.outputs.pending or self.letters.pending)

    def _close(self) -> None:
        self.executor.shutdown(0.0 if self._hard_stop.is_set() else 1.0)
        self.outputs.close(1.0)
        if self.transaction is not None:
            self.transaction.close()
        self._refresh_stats(self.clock())
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the consumer: %s", exc)

    def _refresh_stats(self, now: float) -> None:
        self._stats_at = now
        report_due(log, self.failure_log, now, final=self._drained)  # newcomer: grouped repeats
        if line := self.waits.joining(now, self._first_assignment_at is not None):  # newcomer:
            log.info("%s", line)
        heads, high = self._heads, self._high_watermark
        parts = [
            partition_stats(tp, st, high(tp), heads, now)
            for tp, st in sorted(self.partitions.items())
        ]
        heads.retain(self.partitions)
        sch = self.scheduler
        self._stats = Stats(
            processed=self._processed,
            **self._counts,
            in_flight=sch.in_flight,
            queued=sch.queued,
            waiting_retry=sch.waiting_retry,
            paused=self.flow.stalled,
            paused_partitions=len(self.flow.fair_paused) if not self.flow.stalled else len(parts),
            partitions=tuple(parts),
            at=now,
            membership=self.membership.state,
            membership_since=self.membership.since,
        )


def _mark_started(run: list[Record]) -> None:
    """Count the run's records as running in their partitions (runs are mostly of one
    partition, in offset order)."""
    for state, records in groupby(run, _TICKET):
        offsets = [record.offset for record in records]
        state.started(len(offsets), max(offsets))


def _one_success(first: Outcome | None, outcomes: list[Outcome | None]) -> bool:
    """True when every record of a chunk has the very same successful outcome (`first`):
    a batch handled in one call. By identity: equal outputs of separate records are not
    one batch's (each record's must be produced)."""
    return (
        first is not None
        and first is not NOT_RUN
        and first[1] is None
        and all(map(is_, outcomes, repeat(first)))
    )


def _send_hint(error: BaseException) -> str:
    """What to do about a record the producer refused."""
    cause = error.args[0] if isinstance(error, KafkaException) and error.args else None
    if isinstance(cause, KafkaError) and cause.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return (
            "the record is larger than the client or the topic accepts: raise "
            "-X message.max.bytes and the topic's max.message.bytes"
        )
    return "check that the topic exists and accepts the record"


def _where(record: Record) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
