"""Flow control: when to stop fetching, and for which partitions. Pure.

Two reasons to pause partitions:

- **Stall**: the buffer of held records is full and has stayed full for a while (nothing
  finishes). Every partition is paused so memory stays bounded while the consumer keeps
  polling for callbacks and heartbeats; all resume once held records drop to half.
- **Fair share**: the client hands out records in its own order, so a few partitions can
  fill the whole buffer while another partition, with records waiting on the broker, gets
  none; with ordered processing that leaves workers idle. When a partition has been
  starved like that for a while, partitions holding more than their share of the buffer
  are paused and their records beyond the share that never started are given back (the
  caller trims them and fetches them again later), until they are down to half of it.
  Only when the executor lacks records (`lacking`): a pause costs refetches, and a
  starving partition's records help only an executor that would run them sooner than
  what it holds.

The limit is the user's `max_buffered`; without one it starts at the default and follows
the rate (`follow`): a loop that finishes records fast holds what it finishes in
BUFFER_SECONDS, up to MOST_BUFFERED. Records that wait for their outputs' acknowledgement
count as held, so a buffer of a few milliseconds' work makes a fast loop wait for
acknowledgements instead of fetching.

Without a user's limit, the records waiting to start (the *backlog*) are bounded too: at
what the loop finishes in BACKLOG_SECONDS, never under the starting limit. The rest of the
buffer is for records whose outputs await their acknowledgement. A deep backlog feeds the
executor no better, and in key order it costs: runs gather each key's records from all
over it, so records are taken, and freed, far from the order they came in, and the memory
they touch is no longer in the CPU's caches (docs/architecture.md, "The backlog bounded").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from parafka.core.seam import TP


@dataclass(slots=True)
class FlowDecision:
    pause: set[TP] = field(default_factory=set)
    resume: set[TP] = field(default_factory=set)


BUFFER_SECONDS = 0.05  # a limit that follows the rate holds this long of its work
MOST_BUFFERED = 10_000  # and grows no further than this
BACKLOG_SECONDS = 0.005  # records waiting to start: this long of the loop's work at most
# Handlers on the loop's own thread lack records when the loop waited this share of the
# time between two looks (`lacking`).
LACKING_WAIT = 0.25


class FlowControl:
    """Decides pauses and resumes from the held counts; the caller applies them."""

    def __init__(
        self,
        limit: int,
        stall_after: float = 1.0,
        starve_after: float = 0.5,
        follows_rate: bool = False,
    ) -> None:
        self.limit = limit
        self.follows_rate = follows_rate  # the user set no limit: it grows with the rate
        # Records waiting to start at most: grows only with a limit that follows the rate
        # (`follow`), so with a user's limit it stays that limit, which bounds them anyway.
        self.backlog = limit
        self.stall_after = stall_after
        self.starve_after = starve_after
        self.stalled = False  # every partition paused: the buffer stayed full
        self.fair_paused: set[TP] = set()
        self._full_since: float | None = None
        self._empty_since: dict[TP, float] = {}
        self._starved = False  # a partition with a backlog got no record for a while
        self._waited = 0.0  # seconds the loop waited for something to do since `_looked`
        self._looked: float | None = None  # when `lacking` was last asked

    def follow(self, rate: float) -> bool:
        """Records finish at `rate` a second: a limit that follows the rate grows to hold
        BUFFER_SECONDS of them (at most MOST_BUFFERED). It never shrinks: a limit that
        fell under the held count would pause fetching. True if it grew. The backlog's
        bound grows with it, to BACKLOG_SECONDS of records."""
        if not self.follows_rate:
            return False
        self.backlog = max(self.backlog, min(MOST_BUFFERED, int(rate * BACKLOG_SECONDS)))
        wanted = min(MOST_BUFFERED, int(rate * BUFFER_SECONDS))
        if wanted <= self.limit:
            return False
        self.limit = wanted
        return True

    def waited(self, seconds: float) -> None:
        """The loop waited `seconds` with nothing to run (for completions or records)."""
        self._waited += seconds

    def lacking(self, now: float, handlers_here: bool, free_slots: bool) -> bool:
        """Whether the executor lacks records to run since the last look: it has free slots
        (`free_slots`, worker threads), or, when the handlers run on the loop's own thread
        (`handlers_here`), the loop waited for LACKING_WAIT of the time since. Free slots
        say nothing then: each hand-over runs to its end at once."""
        waited, looked = self._waited, self._looked
        self._waited, self._looked = 0.0, now
        if not handlers_here:
            return free_slots
        return looked is not None and waited >= LACKING_WAIT * (now - looked)

    def room(self, held: int, waiting: int) -> int:
        """How many more records may be fetched now: `held` in all, `waiting` of them
        waiting to start."""
        return max(0, min(self.limit - held, self.backlog - waiting))

    def check_stall(self, now: float, held: int, waiting: int) -> bool | None:
        """True: pause everything; False: resume everything; None: no change. Full is
        what stops fetching: no `room`."""
        if self.room(held, waiting):
            self._full_since = None
            # Resume at half (a resume costs a refetch), or at once when there is room and
            # a partition starves: records stuck behind a hung one may never drop to half.
            half = held <= self.limit // 2 and waiting <= self.backlog // 2
            if self.stalled and (half or self._starved):
                self.stalled = False
                return False
            return None
        if self._full_since is None:
            self._full_since = now
        if not self.stalled and now - self._full_since >= self.stall_after:
            self.stalled = True
            return True
        return None

    def share(self, partitions: int) -> int:
        """Each partition's fair part of the buffer."""
        return max(1, self.limit // max(1, partitions))

    def rebalance_shares(
        self,
        now: float,
        held: Mapping[TP, int],
        backlog: Mapping[TP, bool],
        idle_capacity: bool = True,
    ) -> FlowDecision:
        """Fair-share pauses and resumes, given each assigned partition's held records,
        whether the broker has more records for it than it holds, and whether the
        executor could run more than it does (starving only hurts then: in `unordered`
        mode, or with many keys, any held record can run)."""
        decision = FlowDecision()
        if not held:
            return decision
        share = self.share(len(held))
        for tp in list(self.fair_paused):
            if tp not in held:
                self.fair_paused.discard(tp)
            elif held[tp] <= share // 2:
                self.fair_paused.discard(tp)
                decision.resume.add(tp)
        starving = False
        for tp, count in held.items():
            if count or not backlog.get(tp, False) or tp in self.fair_paused:
                self._empty_since.pop(tp, None)
                continue
            since = self._empty_since.setdefault(tp, now)
            starving = starving or now - since >= self.starve_after
        # Stalled counts as full: the stall resumes only at half, and a hoarder stuck
        # between half and 3/4 would otherwise starve the others for good.
        full = self.stalled or sum(held.values()) >= self.limit * 3 // 4
        self._starved = starving
        if starving and full and idle_capacity:
            for tp, count in held.items():
                if count > share and tp not in self.fair_paused:
                    self.fair_paused.add(tp)
                    decision.pause.add(tp)
        for tp in list(self._empty_since):
            if tp not in held:
                del self._empty_since[tp]
        return decision
