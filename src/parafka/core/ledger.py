"""The work ledger: every record's state in one place, changed only by its transitions. Pure.

Each received record becomes an `Entry` (entry.py) in exactly one state:

    QUEUED -> RUNNING -> DONE -> SETTLED                   (handler returned nothing)
                      -> SENDING -> DONE -> SETTLED        (outputs acknowledged)
                      -> HELD -> SETTLED                   (exactly-once: in a transaction)
                      -> RETRY_WAIT -> QUEUED               (failed, retried after a backoff)
                      -> RETRY_WAIT -> QUEUED               (its key over --key-rate: waits,
                                                             its attempt unchanged; rate_wait)
                      -> SENDING (dead letter) -> DONE      (failed for good, dead-lettered)
                      -> SENDING (parked) -> DONE           (retry topic: failed its quick
                                                             attempts, or its key is fenced;
                                                             done once the write is acked)
                      -> STOPPED                            (failed for good, policy "stop")
    any unfinished state -> DROPPED                         (partition revoked, lost, trimmed)

Each transition is one method here, and it updates together what must agree: the
scheduler's queues, the partition's offsets, the held count that flow control bounds, and
the partition's epoch. The rules it keeps (docs/architecture.md, "The ledger"):

- An entry counts as done in its partition's offsets (SETTLED) only when it and every
  older entry of its shard are done: a later record of a key never takes effect, or is
  skipped on redelivery, before an earlier one. When an entry fails, the newer entries of
  its shard that finished meanwhile are rolled back to QUEUED and run again after it.
- Everything received and not final counts in `held`: queued, running, awaiting
  acknowledgements, waiting for a retry, held for a transaction.
- A partition is marked revoking before any completion of it is handled: a failure or a
  put-back of a revoking or revoked partition drops the entry (the next owner runs it),
  never retries or re-queues it. An entry belongs to one assignment (`Part`) of its
  partition: completions of an old assignment never touch the new one.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from itertools import groupby
from operator import attrgetter

from parafka.core.entry import (
    DONE,
    DROPPED,
    HELD,
    QUEUED,
    RETRY_WAIT,
    RUNNING,
    SENDING,
    SETTLED,
    STOPPED,
    Entry,
)
from parafka.core.errors import ActionRefused, RecordFailed, RecordParked
from parafka.core.exactly_once import OrderedRelease
from parafka.core.failures import FailureLog, is_mistake, report
from parafka.core.offsets import PartitionOffsets
from parafka.core.outcomes import NOT_RUN, OneEach, Outcome, Paired, one_output_each
from parafka.core.parking import origin
from parafka.core.record import Produced
from parafka.core.retry import RetryPolicy
from parafka.core.scheduler import WHOLE_PARTITION, Ordering, Run, Scheduler, Shards
from parafka.core.seam import TP, Message
from parafka.core.timings import Histogram

log = logging.getLogger(__name__)

_PART = attrgetter("part")
# What to produce: (entries, outputs that belong to all of them), or a Paired item.
Send = tuple[list[Entry], list[Produced]] | Paired


class Phase(enum.Enum):
    """An assignment of a partition: open, being revoked (no new work), or over."""

    OPEN = "open"
    REVOKING = "revoking"
    CLOSED = "closed"


_CLOSED = Phase.CLOSED


def _open(entries: list[Entry]) -> list[Entry]:
    """The entries whose partition's assignment is not over."""
    return [e for e in entries if e.part.phase is not _CLOSED]


class Part:
    """One assignment of a partition (an epoch): its offsets and its phase."""

    __slots__ = ("epoch", "offsets", "phase", "shards", "tp")

    def __init__(self, tp: TP, epoch: int, offsets: PartitionOffsets) -> None:
        self.tp = tp
        self.epoch = epoch
        self.offsets = offsets
        self.phase = Phase.OPEN
        # the scheduler's shards of the partition (shared by its assignments), set on first use
        self.shards: Shards | None = None

    def __repr__(self) -> str:
        return f"Part({self.tp[0]}[{self.tp[1]}] epoch {self.epoch}, {self.phase.value})"


class Actions:
    """What the I/O shell must do after a transition: produce outputs, write dead
    letters, or stop."""

    __slots__ = ("failure", "letters", "parks", "send")

    def __init__(self) -> None:
        self.send: list[Send] = []
        self.letters: list[tuple[Entry, BaseException]] = []
        # (entry, its error): to write to the retry topic; error None: parked behind
        self.parks: list[tuple[Entry, BaseException | None]] = []
        self.failure: RecordFailed | None = None


class Counts:
    """Counters since start (read by the stats snapshot)."""

    __slots__ = (
        "dead_lettered",
        "dropped",
        "failed",
        "operator_skipped",
        "parked",
        "parked_behind",
        "processed",
        "retried",
        "skipped",
    )

    def __init__(self) -> None:
        self.processed = 0  # handler returned and its outputs were acknowledged
        self.failed = 0  # failed attempts, retried or not
        self.retried = 0
        self.skipped = 0  # skipped on receipt: a previous owner had finished them
        self.dead_lettered = 0
        self.dropped = 0  # failed for good and skipped (on_failure="skip")
        self.parked = 0  # written to the retry topic after failing (acknowledged)
        self.parked_behind = 0  # written to the retry topic behind their fenced key
        self.operator_skipped = 0  # skipped by an operator's action (steering.py)


class Ledger:
    """Every received record's state, and the transitions between states."""

    def __init__(
        self,
        ordering: Ordering,
        concurrency: int,
        retry: RetryPolicy,
        failure_policy: str = "stop",
        exactly_once: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        failure_log: FailureLog | None = None,
        retry_topic: str | None = None,
        park_policy: RetryPolicy | None = None,
    ) -> None:
        self.scheduler = Scheduler(ordering, concurrency)
        self.retry_topic = retry_topic  # set: records that fail their retries are parked
        self.park_policy = park_policy or retry  # attempts of records taken from the retry topic
        self._shard_of = self.scheduler.shard_of
        self.retry = retry
        self.failure_policy = failure_policy  # "dead-letter", "skip" or "stop"
        self.release = OrderedRelease() if exactly_once else None
        self.clock = clock
        self.wall = wall
        self.failure_log = failure_log or FailureLog()
        self.parts: dict[TP, Part] = {}
        self.held = 0  # entries received and not final
        self.counts = Counts()
        self._epochs = 0
        self.queue_wait: Histogram | None = None  # set when metrics are on (timings.py)
        # ids of running entries an operator skipped or parked: their chunk's report is
        # stale when it comes (the all-success path must not finish them twice)
        self._overruled: set[int] = set()

    # -- partitions -----------------------------------------------------------------------
    def assign(self, tp: TP, committed: int | None, done: Iterable[int] = ()) -> Part:
        """A new assignment of `tp`, starting at `committed` with `done` finished above."""
        old = self.parts.get(tp)
        if old is not None:
            self.close([tp])
        self._epochs += 1
        part = Part(tp, self._epochs, PartitionOffsets(committed, done))
        self.parts[tp] = part
        return part

    def revoking(self, tps: Iterable[TP]) -> None:
        """Stop work on `tps` before anything else of them is handled: no new run starts,
        queued and retry-waiting entries are dropped; entries in runs may still finish
        (and be committed) until `close`."""
        gone = [tp for tp in tps if tp in self.parts]
        for tp in gone:
            self.parts[tp].phase = Phase.REVOKING
        self._drop(self.scheduler.drop_partitions(gone))

    def close(self, tps: Iterable[TP]) -> set[TP]:
        """The assignments of `tps` are over. Entries still in runs stay in their shards
        (a redelivered record of the same shard waits for them) and are dropped when
        they come back. Returns the other partitions that must be rewound: exactly-once
        outputs of a batch that spans partitions are held together, and leave together."""
        closed = []
        for tp in tps:
            part = self.parts.pop(tp, None)
            if part is None:
                continue
            part.phase = Phase.CLOSED
            closed.append(tp)
        if not closed:
            return set()
        self._drop(self.scheduler.drop_partitions(closed))
        if self.release is None:
            return set()
        forgotten = self.release.forget(closed)
        self._drop_held(forgotten)
        return {e.part.tp for e in forgotten if e.part.phase is not Phase.CLOSED}

    def running_in(self, tps: Iterable[TP]) -> bool:
        """True when some entry of `tps` is in a run (running or awaiting acknowledgement)."""
        return any(self.parts[tp].offsets.running for tp in tps if tp in self.parts)

    # -- intake ---------------------------------------------------------------------------
    def accept(self, messages: list[Message]) -> int:
        """Queue fetched messages of assigned partitions (those already done by a previous
        owner are skipped). Returns how many records were queued."""
        accepted: list[Entry] = []
        add = accepted.append
        now = self.clock()
        # The shard keys of scheduler.py (`SHARD_KEYS`), written out: a call less per record.
        ordering = self.scheduler.ordering
        by_key = ordering == "key"
        shard = WHOLE_PARTITION if ordering == "partition" else None
        # One pass over the messages: a fetch returns runs of one partition, each taken
        # in offset order into its partition's offsets when the run ends.
        topic, partition = "", -1
        part: Part | None = None  # of the current run; None: not ours (skip the run)
        offsets: list[int] = []  # of the current run
        first = 0  # where the current run's entries start in `accepted`
        for message in messages:
            if message.partition() != partition or message.topic() != topic:
                if offsets:
                    self._received(part, offsets, accepted, first)
                topic, partition = message.topic(), message.partition()
                part = self.parts.get((topic, partition))
                if part is not None and part.phase is not Phase.OPEN:
                    part = None  # not ours any more (a revoke raced the fetch)
                offsets = []
                first = len(accepted)
            if part is None:
                continue
            offset = message.offset()
            offsets.append(offset)
            # Entry's constructor: compiled (setup.py), a C call; interpreted, about 0.1 us
            # more than its slots written out here, the fallback's price for one code path
            add(
                Entry(
                    message, topic, partition, offset, part, message.key() if by_key else shard, now
                )
            )
        if offsets:
            self._received(part, offsets, accepted, first)
        self.held += len(accepted)
        self.scheduler.add_many(accepted)
        return len(accepted)

    def _received(
        self, part: Part | None, offsets: list[int], accepted: list[Entry], first: int
    ) -> None:
        """A run of one partition's messages was received (their entries are
        `accepted[first:]`): count them in its offsets, and leave out those a previous owner
        finished."""
        assert part is not None
        skip = part.offsets.receive_many(offsets)
        if skip:
            self.counts.skipped += len(skip)
            accepted[first:] = [e for e in accepted[first:] if e.offset not in skip]

    def take(self, limit: int | None = None) -> list[Run]:
        """Runs that may start now, marked RUNNING (and counted in their partitions)."""
        runs = self.scheduler.take(limit)
        if not runs:
            return runs
        if self.queue_wait is not None:
            self._observe_wait(runs)
        part = runs[0][0].part
        count, high = 0, -1
        # counted per stretch of one partition, not per run (in key mode most runs are one
        # entry: one flat loop)
        for run in runs:  # (compiled: two loops over lists, faster than a chain)
            for entry in run:
                entry.state = RUNNING
                if entry.part is not part:
                    part.offsets.started(count, high)
                    part, count, high = entry.part, 0, -1
                count += 1
                if entry.offset > high:
                    high = entry.offset
        part.offsets.started(count, high)
        return runs

    def rate_wait(self, entry: Entry, later: list[Entry], due: float) -> None:
        """A taken entry's key is over its rate (pacing.py): RUNNING -> RETRY_WAIT until
        `due`, its attempt unchanged; its shard waits for it, other shards go on. The
        entries of its run after it go back to QUEUED behind it."""
        if later:
            self._unrun(later)
        entry.state = RETRY_WAIT
        entry.due = due
        entry.part.offsets.running -= 1
        self.scheduler.retry(entry)

    def _observe_wait(self, runs: list[Run]) -> None:
        """Queue wait (receipt to start, retries included): once per dispatch round,
        weighted by its records, at their mean (per record would cost more than it tells)."""
        assert self.queue_wait is not None
        now, total, count = self.clock(), 0.0, 0
        for run in runs:
            for entry in run:
                total += now - entry.received
            count += len(run)
        self.queue_wait.observe(max(0.0, total / count), count)

    def release_due(self, now: float) -> int:
        """Retry-waiting entries whose time has come may start again."""
        return self.scheduler.release_due(now)

    # -- outcomes -------------------------------------------------------------------------
    def completed(
        self, entries: list[Entry], outcomes: list[Outcome | None] | OneEach | None
    ) -> Actions:
        """The executor reports a chunk: per entry None (done, no output), NOT_RUN, or an
        Outcome (outputs, or an exception). Entries of a batch share one Outcome. None:
        each entry is done with no output; OneEach: each returned the one output given."""
        actions = Actions()
        if isinstance(outcomes, OneEach):
            self._one_each(entries, outcomes, actions)
            return actions
        if outcomes is None:
            if self._overruled:  # only after an operator's action on a running record
                entries = self._running(entries)
            self._finished(entries, actions, processed=True)
            return actions
        first = outcomes[0]
        if _one_success(first, outcomes):
            assert first is not None
            live = self._running(entries)
            if not live:  # all stale (skipped or parked meanwhile): nothing to send
                return actions
            if first[0]:
                self._outputs(live, first[0], actions)
            else:
                self._finished(live, actions, processed=True)
            return actions
        done: list[Entry] = []
        unrun: list[Entry] = []
        failed_shards: set[object] = set()
        # The entries that returned outputs, and their outputs lists: one list per record,
        # or per batch (the entries of one handler call share its list).
        sending: list[Entry] = []
        lists: list[list[Produced]] = []
        failures: list[tuple[Entry, BaseException]] = []
        for entry, outcome in zip(entries, outcomes, strict=True):
            if entry.state is not RUNNING:
                self._overruled.discard(id(entry))
                continue  # stale: already resolved
            if outcome is None:
                done.append(entry)
            elif outcome == NOT_RUN:
                unrun.append(entry)
            elif outcome[1] is not None:
                # A failed batch fails all its records; per shard, the first one waits
                # for its retry and the later ones go back unrun behind it.
                shard = entry if self._shard_of is None else (entry.part.tp, entry.shard)
                if shard in failed_shards:
                    unrun.append(entry)
                    continue
                failed_shards.add(shard)
                failures.append((entry, outcome[1]))
            elif outputs := outcome[0]:
                sending.append(entry)
                lists.append(outputs)
            else:
                done.append(entry)
        if sending:
            self._send(self._sends(sending, lists), actions)
        if done:
            self._finished(done, actions, processed=True)
        if unrun:
            self._unrun(unrun)
        for entry, error in failures:
            self._failed(entry, error, actions)
        return actions

    def _one_each(self, entries: list[Entry], outputs: OneEach, actions: Actions) -> None:
        """Each entry returned one output of its own (`outputs[i]` is `entries[i]`'s)."""
        live = self._running(entries)
        if len(live) != len(entries):  # stale ones (skipped or parked meanwhile) leave
            outputs = OneEach(
                o for e, o in zip(entries, outputs, strict=True) if e.state is RUNNING
            )
        if not live:
            return
        if self.release is None:
            self._send([Paired(live, outputs)], actions)
        else:  # a transaction holds each record's output with its record
            self._send([([e], [o]) for e, o in zip(live, outputs, strict=True)], actions)

    def acknowledged(self, entries: list[Entry], outcomes: list[Outcome | None] | None) -> Actions:
        """Outputs were acknowledged (None) or failed (an Outcome with the error)."""
        actions = Actions()
        if outcomes is None:
            live = [e for e in entries if e.state is SENDING]
            if live:
                self._finished(live, actions, processed=True)
            return actions
        done = []
        failures = []
        for entry, outcome in zip(entries, outcomes, strict=True):
            if entry.state is not SENDING:
                continue  # rolled back or dropped meanwhile: a stale acknowledgement
            if outcome is None or outcome[1] is None:
                done.append(entry)
            else:
                failures.append((entry, outcome[1]))
        if done:
            self._finished(done, actions, processed=True)
        for entry, error in failures:
            if entry.state is SENDING:
                self._failed(entry, error, actions)
        return actions

    def letter_settled(self, entry: Entry, error: BaseException | None) -> Actions:
        """The dead letter of `entry` was acknowledged (error None) or refused."""
        actions = Actions()
        if entry.state is not SENDING:
            return actions
        if error is None:
            self.counts.dead_lettered += 1
            self._finished([entry], actions, processed=False)
            return actions
        self._stop(entry, error, actions)
        return actions

    def park_behind(self, runs: list[list[Entry]]) -> Actions:
        """Taken runs of fenced keys (parking.py): the first entry of each goes RUNNING ->
        SENDING, written to the retry topic behind its key's parked records instead of
        running; the rest go back to QUEUED behind it. One write per key at a time: if
        it is refused, no later record of the key can be in the retry topic before it."""
        actions = Actions()
        for run in runs:
            entry = run[0]
            if len(run) > 1:
                self._unrun(run[1:])
            entry.state = SENDING
            actions.parks.append((entry, None))
        return actions

    def park_settled(self, entry: Entry, error: BaseException | None) -> Actions:
        """The retry topic acknowledged (error None) or refused a parked entry: it is
        done for its source offset, or the consumer stops (never lost)."""
        actions = Actions()
        if entry.state is not SENDING:
            return actions
        if error is None:
            if entry.first_failure is None:
                self.counts.parked_behind += 1
            else:
                self.counts.parked += 1
            self._finished([entry], actions, processed=False)
            return actions
        self._stop(entry, error, actions)
        return actions

    def letter_held(self, entry: Entry, letter: Produced) -> None:
        """Exactly-once: the dead letter of `entry` goes out in a transaction, in order."""
        self.counts.dead_lettered += 1
        self._hold([entry], [letter], processed=False)

    def _sends(self, sending: list[Entry], lists: list[list[Produced]]) -> list[Send]:
        """What to produce for entries that returned outputs (`lists[i]` is `sending[i]`'s):
        one `Paired` item when each returned exactly one output of its own (no batch; not
        exactly-once, whose transactions hold each record's outputs), else one
        (entries, outputs) pair per outputs list, so that a batch's are produced once."""
        if self.release is None and (each := one_output_each(lists)) is not None:
            return [Paired(sending, each)]
        by_list: dict[int, tuple[list[Entry], list[Produced]]] = {}
        for entry, outputs in zip(sending, lists, strict=True):
            by_list.setdefault(id(outputs), ([], outputs))[0].append(entry)
        return list(by_list.values())

    # -- transitions ----------------------------------------------------------------------
    def _outputs(self, entries: list[Entry], outputs: list[Produced], actions: Actions) -> None:
        """Handler done with outputs: send them (SENDING) or hold them (exactly-once)."""
        self._send([(entries, outputs)], actions)

    def _send(self, sends: list[Send], actions: Actions) -> None:
        """Handlers done with outputs, (entries, their outputs) per handler call or one
        `Paired` item: send them (SENDING) or hold them (exactly-once); entries of closed
        partitions leave."""
        closed = [e for entries, _ in sends for e in entries if e.part.phase is _CLOSED]
        if closed:
            self._discard(closed)
            sends = _still_open(sends)
        if self.release is not None:
            for entries, outputs in sends:
                self._hold(entries, outputs, processed=True)
            return
        for entries, _ in sends:
            for entry in entries:
                entry.state = SENDING
        actions.send.extend(sends)

    def _hold(self, entries: list[Entry], outputs: list[Produced], processed: bool) -> None:
        assert self.release is not None
        for entry in entries:
            entry.state = HELD
        if processed:
            self.counts.processed += len(entries)
        self._settle([e for e in self.scheduler.finished(entries) if e.state is DONE])
        offsets = {tp: part.offsets for tp, part in self.parts.items()}
        self.release.hold(entries, outputs)
        self._released(self.release.release(offsets, {e.part.tp for e in entries}))

    def release_outputs(self, tps: Iterable[TP]) -> None:
        """Exactly-once: move held outputs whose older records are all done to the next
        transaction (after records of `tps` finished)."""
        if self.release is not None:
            offsets = {tp: part.offsets for tp, part in self.parts.items()}
            self._released(self.release.release(offsets, tps))

    def _released(self, entries: list[Entry]) -> None:
        for entry in entries:
            entry.state = SETTLED
            entry.part.offsets.running -= 1
        self.held -= len(entries)

    def _finished(self, entries: list[Entry], actions: Actions, processed: bool) -> None:
        """Entries are DONE; those at the head of their shards settle now."""
        if processed:
            self.counts.processed += len(entries)
        if self._shard_of is None and self.release is None:
            # No shards, no held outputs: each one settles at once (the hot path).
            self._settle(self.scheduler.finished(entries))
            return
        for entry in entries:
            entry.state = DONE
        left = self.scheduler.finished(entries)
        if self.release is None:  # no HELD entries: every one that left is DONE
            self._settle(left)
            return
        self._settle([e for e in left if e.state is DONE])
        self.release_outputs({e.part.tp for e in entries})

    def _settle(self, entries: list[Entry]) -> None:
        """Count done entries that left their shards (in shard order) in their offsets."""
        for part, members in groupby(entries, _PART):
            offsets = []
            final = DROPPED if part.phase is Phase.CLOSED else SETTLED
            for entry in members:
                entry.state = final
                offsets.append(entry.offset)
            part.offsets.running -= len(offsets)
            if final is SETTLED:
                part.offsets.settle(offsets)
        self.held -= len(entries)

    def _unrun(self, entries: list[Entry]) -> None:
        """Entries of runs go back to their queues, ahead of newer ones (dropped instead
        when their partition is being revoked)."""
        gone = [e for e in entries if e.part.phase is not Phase.OPEN]
        if gone:
            self._discard(gone)
            entries = [e for e in entries if e.part.phase is Phase.OPEN]
        for entry in entries:
            entry.state = QUEUED
            entry.part.offsets.running -= 1
        if entries:
            self.scheduler.unrun(entries)

    def _failed(self, entry: Entry, error: BaseException, actions: Actions) -> None:
        """An attempt failed (the handler raised, or its outputs were refused): retry it
        after a backoff, or give up by the failure policy."""
        self.counts.failed += 1
        if entry.part.phase is not Phase.OPEN:
            # Revoked while it ran: the new owner runs it again, and the newer entries of
            # its shard that finished behind it leave with it.
            self._roll_back_after(entry)
            self._discard([entry])
            return
        self._roll_back_after(entry)
        if entry.first_failure is None:
            entry.first_failure = self.wall()
        record = entry.record
        parked = self.retry_topic is not None and entry.topic == self.retry_topic
        policy = self.park_policy if parked else self.retry
        delay = (
            self._parked_delay(entry, error)
            if parked
            else policy.delay(record.attempt)
            if policy.should_retry(record.attempt, error)
            else None
        )
        if delay is not None:
            self._report(entry, error, f"retrying in {delay:.2f} s")
            record.attempt += 1
            self.counts.retried += 1
            entry.state = RETRY_WAIT
            entry.due = self.clock() + delay
            entry.part.offsets.running -= 1
            self.scheduler.retry(entry)
            return
        if (
            self.retry_topic is not None
            and not parked
            and (policy.retryable(error) or isinstance(error, RecordParked))
            and not is_mistake(error)
        ):  # on_stuck="park" parks it on the retry topic when there is one
            self._report(entry, error, f"parked on {self.retry_topic}")
            entry.state = SENDING  # done once the retry topic acknowledges it
            actions.parks.append((entry, error))
            return
        self._give_up(entry, error, actions)

    def _parked_delay(self, entry: Entry, error: BaseException) -> float | None:
        """The wait before the next attempt of a record taken from the retry topic, or
        None when it has had them all. One parked behind its key (no quick attempt yet)
        first gets the quick attempts it never had; then come the parked attempts, each
        `park_policy.multiplier` times later (the first parked wait was spent before it came)."""
        found = origin(entry.headers)
        before = found.attempts if found is not None else self.retry.max_attempts
        attempt = entry.record.attempt
        if self.retry.should_retry(before + attempt, error):
            return self.retry.delay(before + attempt)
        done = attempt - max(0, self.retry.max_attempts - before)  # parked attempts made
        if not self.park_policy.should_retry(done, error):
            return None
        return self.park_policy.delay(done + 1)

    def _roll_back_after(self, entry: Entry) -> None:
        """Newer entries of `entry`'s shard that finished, or await acknowledgement, run
        again after it: none may take effect before it."""
        later = [
            e
            for e in self.scheduler.shard_entries(entry)
            if e.offset > entry.offset and e.part is entry.part and e.state in (DONE, SENDING)
        ]
        if later:
            for e in later:
                if e.state is DONE:
                    self.counts.processed -= 1  # it will be processed again
            self._unrun(later)

    def _report(self, entry: Entry, error: BaseException, outcome: str) -> None:
        """Log a failure: the first of a kind in full (file:line), repeats grouped."""
        report(
            log, self.failure_log, error, where(entry), entry.record.attempt, outcome, self.clock()
        )

    def _give_up(self, entry: Entry, error: BaseException, actions: Actions) -> None:
        # A mistake that fails every record (no output topic, say): no retry or dead
        # letter fixes it, so the consumer stops.
        policy = "stop" if is_mistake(error) else self.failure_policy
        if policy == "dead-letter":
            entry.state = SENDING  # done once its dead letter is acknowledged
            actions.letters.append((entry, error))
            return
        if policy == "skip":
            self.counts.dropped += 1
            self._report(entry, error, "skipped")
            self._finished([entry], actions, processed=False)
            return
        self._stop(entry, error, actions)

    def _stop(self, entry: Entry, error: BaseException, actions: Actions) -> None:
        """Failed for good: the entry is never done, so its offset is never committed,
        and it blocks its shard (nothing after it counts as done)."""
        entry.state = STOPPED
        entry.part.offsets.running -= 1
        self.held -= 1
        self.scheduler.hold_back(entry)
        record = entry.record
        actions.failure = RecordFailed(
            record.topic, record.partition, record.offset, record.attempt, error
        )

    def _discard(self, entries: list[Entry]) -> None:
        """Entries of runs whose partition is revoked leave without finishing."""
        for entry in entries:
            entry.state = DROPPED
            entry.part.offsets.running -= 1
        self.held -= len(entries)
        self.scheduler.discard(entries)

    def _drop(self, entries: list[Entry]) -> None:
        """Entries not in a run (queued, retry-waiting) leave: redelivered later."""
        for entry in entries:
            entry.state = DROPPED
        self.held -= len(entries)

    def _drop_held(self, entries: list[Entry]) -> None:
        """Held entries (exactly-once, out of their shards already) leave unsettled."""
        for entry in entries:
            entry.state = DROPPED
            entry.part.offsets.running -= 1
        self.held -= len(entries)

    # -- operator actions (steering.py) --------------------------------------------------
    def find(self, tp: TP, offset: int) -> Entry | None:
        """The entry of the current assignment of `tp` at `offset`, while it is queued,
        waiting for a retry or in a run (None: not held, or already done)."""
        part = self.parts.get(tp)
        if part is None or part.phase is not Phase.OPEN:
            return None
        return self.scheduler.find(tp, offset, part)

    def skip(self, entry: Entry) -> Actions:
        """An operator skips `entry`: it counts done without its handler (queued or
        waiting for a retry), or now, its outcome ignored (running). Raises
        ActionRefused when it cannot be skipped now."""
        self._claim(entry, "skip")
        actions = Actions()
        self.counts.operator_skipped += 1
        self._finished([entry], actions, processed=False)
        return actions

    def park(self, entry: Entry, reason: BaseException) -> Actions:
        """An operator parks `entry`: on the retry topic when there is one (its key fenced
        behind it, as for a record that failed its quick attempts), else, and for a record
        taken from the retry topic, on the dead-letter topic; done once that write is
        acknowledged (the shell writes it)."""
        self._claim(entry, "park")
        actions = Actions()
        if entry.first_failure is None:
            entry.first_failure = self.wall()
        entry.state = SENDING
        if self.parks_on_retry_topic(entry):
            actions.parks.append((entry, reason))
        else:
            actions.letters.append((entry, reason))
        return actions

    def parks_on_retry_topic(self, entry: Entry) -> bool:
        """Whether an operator's park of `entry` goes to the retry topic."""
        return self.retry_topic is not None and entry.topic != self.retry_topic

    def _running(self, entries: list[Entry]) -> list[Entry]:
        """The entries of a reported chunk still RUNNING; the others' overruling is over."""
        live = [e for e in entries if e.state is RUNNING]
        if len(live) != len(entries) and self._overruled:
            self._overruled.difference_update(id(e) for e in entries if e.state is not RUNNING)
        return live

    def _claim(self, entry: Entry, action: str) -> None:
        """Make `entry` a run of its own unless it is in one (RUNNING: then its chunk's
        report, when it comes, is stale for it)."""
        state = entry.state
        behind = ActionRefused(
            f"cannot {action} {where(entry)}: an older record of its "
            f"{'key' if self.scheduler.ordering == 'key' else 'partition'} is ahead of it; "
            "act on that one first, or wait for it"
        )
        if state is RUNNING:
            # Only the head of its shard: an older record that failed would roll it back
            # to run again while its first run is still out (its report then taken for
            # the second's). In a run, the records after it are behind it: fine.
            if self._shard_of is not None:
                head = next(iter(self.scheduler.shard_entries(entry)), None)
                if head is not entry:
                    raise behind
            self._overruled.add(id(entry))
            return
        if state in (QUEUED, RETRY_WAIT):
            if not self.scheduler.claim(entry):
                raise behind
            entry.state = RUNNING
            entry.part.offsets.started(1, entry.offset)
            return
        raise ActionRefused(
            f"cannot {action} {where(entry)}: it is {state.value} (its handler is done; it "
            "waits for its outputs or an older record), nothing to act on"
        )

    # -- flow -----------------------------------------------------------------------------
    def trim(self, tp: TP, keep: int) -> int:
        """Give back queued entries of `tp` beyond its oldest `keep` unfinished ones, to
        be fetched again later. Returns how many."""
        part = self.parts.get(tp)
        if part is None:
            return 0
        cutoff = part.offsets.trim_from(keep)
        if cutoff is None:
            return 0
        removed = self.scheduler.trim(tp, cutoff)
        self._drop(removed)
        return len(removed)

    def rewind(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        """Exactly-once: forget everything not committed of `tps` (and of the partitions
        that shared a held batch with them) and start them again from their last
        committed offsets. Returns where each restarts."""
        restart: dict[TP, int | None] = {}
        todo = set(tps)
        while todo:
            tp = todo.pop()
            old = self.parts.get(tp)
            if old is None or tp in restart:
                continue
            committed = old.offsets.committed
            restart[tp] = committed if committed is not None else old.offsets.first_received
            self.revoking([tp])
            todo |= self.close([tp])
            self.assign(tp, committed)
        return restart

    # -- views ----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self.scheduler.in_flight

    @property
    def queued(self) -> int:
        return self.scheduler.queued

    @property
    def waiting_retry(self) -> int:
        return self.scheduler.waiting_retry


def _one_success(first: Outcome | None, outcomes: list[Outcome | None]) -> bool:
    """True when every record of a chunk succeeded with the very same outputs list as
    `first`: a batch handled in one call. By the list's identity: equal outputs of
    separate records are not one batch's (each record's must be produced). (The list, not
    the outcome tuple: compiled code boxes a tuple anew, so only the list keeps its
    identity; NOT_RUN has no list.)"""
    if first is None or first[1] is not None:
        return False
    shared = first[0]
    return shared is not None and all(o is not None and o[0] is shared for o in outcomes)


def _still_open(sends: list[Send]) -> list[Send]:
    """The sends without the entries (and a Paired item's outputs) of closed partitions."""
    kept: list[Send] = []
    for item in sends:
        if type(item) is Paired:
            pairs = [pair for pair in zip(*item, strict=True) if pair[0].part.phase is not _CLOSED]
            if pairs:
                kept.append(Paired([e for e, _ in pairs], [out for _, out in pairs]))
        elif live := _open(item[0]):
            kept.append((live, item[1]))
    return kept


def where(entry: Entry) -> str:
    record = entry.record
    return f"{record.topic}[{record.partition}]@{record.offset}"
