"""Stall handling: which workers are hung, and what to do about it. Pure.

`--stuck-after SECONDS` says when a record counts as stuck; `--on-stuck` what then:

- `report` (the default): nothing but report it (/healthz fails, the
  `parafka_stuck_partitions` gauge, the live view); the record keeps its worker.
- `restart-worker`: the process executor kills the worker running it and starts a new
  one; the record fails with `RecordStuck` and is retried by the retry policy (after the
  last attempt: the failure policy), the other records of its chunk go back unrun.
- `park`: the same, but the record is not retried: it goes to the failure policy at once
  (the dead-letter topic when one is set) with `RecordParked`, and its partition moves on.

A worker process is hung when what it reports of its progress (the chunk it runs, the
handler calls made in it) has not moved for `after` seconds while it runs a chunk. The
asyncio executor cancels a call that runs over `after` instead (at its next await). A
thread cannot be stopped from outside: the thread executor only reports.
"""

from __future__ import annotations

from dataclasses import dataclass

ON_STUCK = ("report", "restart-worker", "park")


@dataclass(frozen=True)
class StuckPolicy:
    """When a record counts as stuck, and the action (one of ON_STUCK)."""

    after: float
    action: str = "report"

    @property
    def acts(self) -> bool:
        return self.action != "report"


class StallWatch:
    """Remembers since when each worker's progress has stood still."""

    IDLE = -1  # the chunk id a worker reports between chunks

    def __init__(self, after: float) -> None:
        self.after = after
        self._seen: dict[int, tuple[tuple[int, int], float]] = {}

    def hung(self, worker: int, progress: tuple[int, int], now: float) -> bool:
        """True once `worker` has been on the same handler call for `after` seconds (then
        the clock starts again: one verdict per stall)."""
        last = self._seen.get(worker)
        if last is None or last[0] != progress or progress[0] == self.IDLE:
            self._seen[worker] = (progress, now)
            return False
        if now - last[1] >= self.after:
            self._seen[worker] = (progress, now)
            return True
        return False

    def forget(self, worker: int) -> None:
        """The worker was replaced: its successor starts with a clean slate."""
        self._seen.pop(worker, None)
