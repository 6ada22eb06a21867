"""Advice instead of flags: say which setting would help, once, when the numbers show it. Pure.

The defaults are meant to be right; when they cannot be (a per-record handler that needs
microseconds of CPU runs under one interpreter's GIL), the consumer says what would help
and why, with the numbers it saw, instead of leaving the user to find a flag.

The rule for now: over the last `WINDOW` seconds of work, this process used at least
`BUSY` of a core (Python runs on one core at a time), the machine had at least one core
idle (by its load average), and records were handled on threads. Then more consumer
processes in the group would use the idle cores: `--processes N`.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW = 10.0  # seconds of work the advice is based on
BUSY = 0.85  # of one core: this process is CPU-bound
MIN_RECORDS = 10_000  # in the window: a steady load, not a trickle


@dataclass(frozen=True)
class Sample:
    """What the control loop measures, every few hundred milliseconds."""

    at: float  # monotonic seconds
    cpu: float  # this process's CPU seconds so far (time.process_time)
    processed: int  # records processed so far
    load: float  # the machine's 1-minute load average (os.getloadavg)
    handler_seconds: float | None = None  # per record, as the executor measured it


class Advisor:
    """Collects samples; `advise()` returns a line once, when the rule holds."""

    def __init__(self, cores: int, executor: str) -> None:
        self.cores = cores
        self.executor = executor
        self._first: Sample | None = None
        self.given: str | None = None

    def sample(self, sample: Sample) -> str | None:
        """Add a sample; returns the advice the first time it applies, else None."""
        if self.given is not None or self.executor != "thread" or self.cores < 2:
            return None
        first = self._first
        if first is None or sample.processed == first.processed:
            self._first = sample  # no work yet, or none since: start the window again
            return None
        span = sample.at - first.at
        if span < WINDOW:
            return None
        self._first = sample
        records = sample.processed - first.processed
        busy = (sample.cpu - first.cpu) / span
        idle = self.cores - sample.load
        if records < MIN_RECORDS or busy < BUSY or idle < 1.0:
            return None
        rate = records / span
        handler = ""
        if sample.handler_seconds is not None:
            handler = f"; handlers take {sample.handler_seconds * 1e6:.0f} us a record"
        self.given = (
            f"this process keeps one core busy ({busy:.0%}) at {rate:,.0f} records/s while "
            f"about {idle:.1f} of {self.cores} cores are idle{handler}: `parafka run "
            f"--processes {self.cores}` (or {self.cores} processes with a ParallelConsumer "
            "each, in the same group) would use them"
        )
        return self.given
