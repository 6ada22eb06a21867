"""Pacing: how many records the control loop may hand out now, and which. Pure.

The control loop asks the pacer for the most records that may be in flight (`window`)
and the most that may start now (`allowance`), lets it hold back records whose key is
over its rate (`admit`), and tells it what it dispatched and what came back. The pacer
holds:

- the adaptive concurrency limit (adaptive.py), fed each chunk's latency and failures;
- `rate`: a token bucket for this instance's starts;
- `group_rate`: a token bucket at this instance's share of the group's rate, the share of
  its assigned partitions among all the partitions of their topics, taken again whenever
  the number of assigned partitions changes (every rebalance that moves any);
- `key_rate`: one rate per key (ratelimit.KeyRates). A record whose key is over its rate
  goes back to its shard to wait until its key may go on (the ledger's `rate_wait`), like
  a retry that costs no attempt: its key (its partition, with `partition` ordering) waits,
  every other one goes on. Records without a key are not held by `key_rate`.

With none of them set, every call returns at once.

A record's latency, as the limiter sees it, runs from its dispatch to its completion
reaching the control loop: the handler's time plus the hand-over, which is what a
downstream slowing down lengthens. A chunk of several records run one after another
counts each at the chunk's time divided by its size (a batch handler's batch: each at
the whole call's time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from parafka.core.adaptive import AdaptiveLimit
from parafka.core.entry import Entry
from parafka.core.outcomes import NOT_RUN, OneEach, Outcome
from parafka.core.ratelimit import KeyRates, TokenBucket
from parafka.core.seam import TP
from parafka.engine.settings import Settings

log = logging.getLogger(__name__)


class InFlight(Protocol):
    """What has the count of records in flight (the ledger)."""

    @property
    def in_flight(self) -> int: ...


# Holds `entry` back until `due` (seconds, the pacer's clock), with `later`, the entries of
# its run after it, put back behind it: the ledger's `rate_wait` transition.
Wait = Callable[[Entry, list[Entry], float], None]


def burst_of(rate: float) -> float:
    """A tenth of a second's worth, at least 2: a loop that wakes up to 50 ms late loses
    no token, and a key that waited gets going at once."""
    return max(2.0, rate / 10)


class Pacer:
    """The dispatch window, and the adaptive limit behind it when concurrency="auto"."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float],
        partition_count: Callable[[str], int | None] | None = None,
    ) -> None:
        self.clock = clock
        self.adaptive: AdaptiveLimit | None = None
        if settings.adaptive:
            self.adaptive = AdaptiveLimit(
                settings.min_concurrency, settings.max_concurrency, now=clock()
            )
        self._fixed = settings.concurrency_cap
        self._sequential = settings.batch_size is None
        self._started: dict[int, float] = {}  # id(entry) -> dispatched at, while in flight
        self._run_length = 1  # records per handler's turn, as the last window() was given
        self._bucket: TokenBucket | None = None
        if settings.rate is not None:
            self._bucket = TokenBucket(settings.rate, burst_of(settings.rate), clock)
        self.group_rate = settings.group_rate
        self.group_share = 0.0  # this instance's part of group_rate (records/s)
        self._group: TokenBucket | None = None
        self._assigned = -1  # partitions the share was taken for
        self._partition_count = partition_count
        self._keys: KeyRates | None = None
        if settings.key_rate is not None:
            self._keys = KeyRates(settings.key_rate, burst_of(settings.key_rate), clock)
        self.rate_waits = 0  # records held back for their key's rate, since start

    @property
    def holds_keys(self) -> bool:
        """Records may wait for their key's rate (so a few keys can fill the buffer)."""
        return self._keys is not None

    @property
    def limit(self) -> int:
        """The concurrency limit now (the fixed one, or the adaptive one)."""
        return self.adaptive.limit if self.adaptive is not None else self._fixed

    def window(self, capacity: int, run_length: int = 1) -> int:
        """Records the executor may hold now, given what it can take and how many records
        it runs one after another in one handler's turn (`run_length`: its chunks). The
        adaptive limit counts handlers running at once, so it allows `limit` chunks: a fast
        handler run one record at a time would spend its time in hand-overs."""
        if self.adaptive is None:
            return capacity
        self._run_length = max(1, run_length)
        return min(capacity, self.adaptive.limit * self._run_length)

    def allowance(self, assigned: Iterable[TP]) -> int | None:
        """How many records may start now by `rate` and `group_rate` (None: any)."""
        allowed: int | None = None
        if self._bucket is not None:
            allowed = self._bucket.available()
        if self.group_rate is not None:
            self._take_share(assigned)
            share = self._group.available() if self._group is not None else 0
            allowed = share if allowed is None else min(allowed, share)
        return allowed

    def _take_share(self, assigned: Iterable[TP]) -> None:
        """This instance's part of the group's rate: its assigned partitions' share of all
        the partitions of their topics."""
        tps = list(assigned)
        if len(tps) == self._assigned:
            return
        assert self.group_rate is not None
        self._assigned = len(tps)
        topics = {topic for topic, _ in tps}
        total = 0
        for topic in topics:
            count = self._partition_count(topic) if self._partition_count else None
            if count is None:  # unknown: keep the share taken before
                log.warning("partition count of %s unknown; group rate share unchanged", topic)
                return
            total += count
        share = self.group_rate * len(tps) / total if total else 0.0
        self.group_share = share
        if share <= 0:
            self._group = None
        elif self._group is None:
            self._group = TokenBucket(share, burst_of(share), self.clock)
        else:
            self._group.set_rate(share, burst_of(share))
        log.info(
            "group rate %g/s: this instance takes %g/s for %d of %d partitions",
            self.group_rate,
            share,
            len(tps),
            total,
        )

    def admit(self, runs: list[list[Entry]], wait: Wait) -> list[list[Entry]]:
        """The runs that may start: a record whose key is over `key_rate` waits (through
        `wait`), with the rest of its run behind it."""
        keys = self._keys
        if keys is None:
            return runs
        admitted = []
        for run in runs:
            for index, entry in enumerate(run):
                key = entry.key
                if key is None:
                    continue
                due = keys.take((entry.topic, key))
                if due:
                    wait(entry, run[index + 1 :], due)
                    self.rate_waits += 1
                    run = run[:index]
                    break
            if run:
                admitted.append(run)
        return admitted

    def dispatched(self, runs: Sequence[Sequence[Entry]]) -> None:
        """Runs went to the executor: their starts count against the rates."""
        if self._bucket is not None or self._group is not None:
            count = sum(len(run) for run in runs)
            if self._bucket is not None:
                self._bucket.spend(count)
            if self._group is not None:
                self._group.spend(count)
        if self.adaptive is None:
            return
        started, now = self._started, self.clock()
        for run in runs:
            started.update(dict.fromkeys(map(id, run), now))

    def completed(
        self,
        entries: Sequence[Entry],
        outcomes: Sequence[Outcome | None] | OneEach | None,
        running: InFlight,
    ) -> None:
        """A chunk came back from the executor (not an outputs acknowledgement), with
        `running.in_flight` records in flight."""
        adaptive = self.adaptive
        if adaptive is None or not entries:
            return
        # In handlers' turns, as the limit counts them.
        now, in_flight = self.clock(), -(-running.in_flight // self._run_length)
        pop = self._started.pop
        starts = [s for s in (pop(id(e), None) for e in entries) if s is not None]
        if not starts:
            return
        if outcomes is None or type(outcomes) is OneEach:
            ok, failed = len(entries), 0
        else:
            ok = failed = 0
            for outcome in outcomes:
                if outcome is None:
                    ok += 1
                elif outcome != NOT_RUN:
                    if outcome[1] is None:
                        ok += 1
                    else:
                        failed += 1
        elapsed = max(0.0, now - min(starts))
        ran = ok + failed
        latency = elapsed / ran if self._sequential and ran else elapsed
        if failed:
            adaptive.failed(now, failed)
        if ok:
            adaptive.finished(now, latency, ok, in_flight)
