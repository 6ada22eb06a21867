"""Pacing: how many records the control loop may hand out now. Pure.

The control loop asks `window()` how many records may be in flight and tells the pacer
what it dispatched and what came back; the pacer holds the adaptive concurrency limit
(adaptive.py) and feeds it each chunk's latency and failures. With a fixed concurrency
it only passes the executor's capacity through, and its other calls return at once.

A record's latency, as the limiter sees it, runs from its dispatch to its completion
reaching the control loop: the handler's time plus the hand-over, which is what a
downstream slowing down lengthens. A chunk of several records run one after another
counts each at the chunk's time divided by its size (a batch handler's batch: each at
the whole call's time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from parafka.adaptive import AdaptiveLimit
from parafka.entry import Entry
from parafka.executors.outcomes import NOT_RUN, Outcome
from parafka.settings import Settings


class Pacer:
    """The dispatch window, and the adaptive limit behind it when concurrency="auto"."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.adaptive: AdaptiveLimit | None = None
        if settings.adaptive:
            self.adaptive = AdaptiveLimit(
                settings.min_concurrency, settings.max_concurrency, now=clock()
            )
        self._fixed = settings.concurrency_cap
        self._sequential = settings.batch_size is None
        self._started: dict[int, float] = {}  # id(entry) -> dispatched at, while in flight

    @property
    def limit(self) -> int:
        """The concurrency limit now (the fixed one, or the adaptive one)."""
        return self.adaptive.limit if self.adaptive is not None else self._fixed

    def window(self, capacity: int) -> int:
        """Records the executor may hold now, given what it can take."""
        if self.adaptive is None:
            return capacity
        return min(capacity, self.adaptive.limit)

    def dispatched(self, runs: Sequence[Sequence[Entry]], now: float) -> None:
        if self.adaptive is None:
            return
        started = self._started
        for run in runs:
            started.update(dict.fromkeys(map(id, run), now))

    def completed(
        self,
        entries: Sequence[Entry],
        outcomes: Sequence[Outcome | None] | None,
        now: float,
        in_flight: int,
    ) -> None:
        """A chunk came back from the executor (not an outputs acknowledgement)."""
        adaptive = self.adaptive
        if adaptive is None or not entries:
            return
        pop = self._started.pop
        starts = [s for s in (pop(id(e), None) for e in entries) if s is not None]
        if not starts:
            return
        if outcomes is None:
            ok, failed = len(entries), 0
        else:
            ok = failed = 0
            for outcome in outcomes:
                if outcome is None:
                    ok += 1
                elif outcome is not NOT_RUN:
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
