"""Advice instead of flags: say which setting would help, once, when the numbers show it. Pure.

The defaults are meant to be right; when they cannot be (a per-record handler that needs
microseconds of CPU runs under one interpreter's GIL), the consumer says what would help
and why, with the numbers it saw, instead of leaving the user to find a flag.

Four rules, each said once, over windows of `WINDOW` seconds of work:

- this process used at least `BUSY` of a core (Python runs on one core at a time), the
  machine had at least one core idle (by its load average), and records were handled on
  threads: more consumer processes in the group would use the idle cores (`--processes auto`);
- this process used at least `BUSY` of a core with a per-record handler, and its handlers
  took at most `HANDLER_SHARE` of its CPU time a record: parafka's own per-record work (hand
  the record over, settle it, produce its output) costs as much as the work, and a batch
  handler shares it over the batch (`batch_size=`; issue 14: the md5 transformer's batches
  of 1,000 on 2 processes ran at 1.19x two plain loops, its per-record handler at 0.5x);
- garbage collection took at least `GC_SHARE` of the time and the collector runs with
  CPython's defaults: `parafka.tune_gc()` (which `parafka run` calls) takes that away
  (measured with a no-op handler: 13-17% of the time with the defaults, none after);
- the control thread waited, runnable, for a core at least `CORE_WAIT` of the time (beyond
  waiting for the output thread it shares a core with, engine/placement.py): every core of
  the machine is busy, and no setting makes it faster; more processes would wait too.
  (Two md5 processes on two cores beside the broker: their control threads waited 21-42%
  of the time, and the slowest rounds were the ones that waited most: RESULTS.md,
  "fifteenth stop".)
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW = 10.0  # seconds of work the advice is based on
BUSY = 0.85  # of one core: this process is CPU-bound
MIN_RECORDS = 10_000  # in the window: a steady load, not a trickle
GC_SHARE = 0.10  # of the window's time spent collecting garbage
HANDLER_SHARE = 0.5  # of the process's CPU time a record: parafka's own work is the rest
CORE_WAIT = 0.25  # of the window the control thread waited, runnable, for a core


@dataclass(frozen=True)
class Sample:
    """What the control loop measures, every few hundred milliseconds."""

    at: float  # monotonic seconds
    cpu: float  # this process's CPU seconds so far (time.process_time)
    processed: int  # records processed so far
    load: float  # the machine's 1-minute load average (os.getloadavg)
    handler_seconds: float | None = None  # per record, as the executor measured it
    gc_seconds: float = 0.0  # spent in garbage collections so far (gctuning.GcTimer)
    gc_tuned: bool = True  # the collector runs as tune_gc() sets it
    # seconds the control thread waited, runnable, for a core so far, beyond sharing its
    # core with the output thread (None: not measured here)
    core_wait: float | None = None


class Advisor:
    """Collects samples; `sample()` returns a line the first time a rule holds."""

    def __init__(self, cores: int, executor: str, batched: bool = False) -> None:
        self.cores = cores
        self.executor = executor
        self.batched = batched  # the handler takes a list of records (batch_size set)
        self._first: Sample | None = None
        self.given: list[str] = []
        self._said: set[str] = set()

    def sample(self, sample: Sample) -> list[str]:
        """Add a sample; returns the advice that applies for the first time (often none)."""
        first = self._first
        if first is None or sample.processed == first.processed:
            self._first = sample  # no work yet, or none since: start the window again
            return []
        span = sample.at - first.at
        if span < WINDOW:
            return []
        self._first = sample
        records = sample.processed - first.processed
        if records < MIN_RECORDS:
            return []
        cpu = sample.cpu - first.cpu  # this process's CPU seconds over the window
        said = []
        for rule, line in (
            ("processes", self._processes(sample, cpu / span, records / span)),
            ("batch", self._batch(sample, cpu / span, cpu / records)),
            ("gc", self._gc(first, sample, span)),
            ("cores", self._cores(first, sample, span)),
        ):
            if line is not None and rule not in self._said:
                self._said.add(rule)
                said.append(line)
        self.given.extend(said)
        return said

    def _processes(self, sample: Sample, busy: float, rate: float) -> str | None:
        idle = self.cores - sample.load
        if self.executor != "thread" or self.cores < 2 or busy < BUSY or idle < 1.0:
            return None
        handler = ""
        if sample.handler_seconds is not None:
            handler = f"; handlers take {sample.handler_seconds * 1e6:.0f} us a record"
        return (
            f"this process uses {busy:.0%} of a core at {rate:,.0f} records/s "
            f"while about {idle:.1f} of {self.cores} cores are idle{handler}: `parafka run "
            f"--processes auto` ({self.cores} here: one per core), or {self.cores} processes "
            "with a ParallelConsumer each in the same group, would use them"
        )

    def _batch(self, sample: Sample, busy: float, per_record: float) -> str | None:
        handler = sample.handler_seconds
        if self.batched or busy < BUSY or handler is None:
            return None
        if handler > HANDLER_SHARE * per_record:
            return None
        return (
            f"handlers take {handler * 1e6:.0f} us a record and this process spends "
            f"{per_record * 1e6:.0f} us of CPU a record in all: parafka's own per-record work "
            "costs more than the handler's; a batch handler (a function of a list of records, "
            "with batch_size=1000 / `--batch-size 1000`, and `--concurrency 1` when the work "
            "holds the GIL) shares that cost over each batch"
        )

    def _gc(self, first: Sample, sample: Sample, span: float) -> str | None:
        share = (sample.gc_seconds - first.gc_seconds) / span
        if sample.gc_tuned or share < GC_SHARE:
            return None
        return (
            f"garbage collection took {share:.0%} of the time over the last {span:.0f} s: "
            "call parafka.tune_gc() once at start (what `parafka run` does: young collections "
            "every 50,000 allocations instead of 700)"
        )

    def _cores(self, first: Sample, sample: Sample, span: float) -> str | None:
        if first.core_wait is None or sample.core_wait is None:
            return None
        share = (sample.core_wait - first.core_wait) / span
        if share < CORE_WAIT:
            return None
        return (
            f"the control thread waited for a core {share:.0%} of the time over the last "
            f"{span:.0f} s: every core of this machine is busy (other programs, or more "
            "consumer processes than cores), so more processes or threads would not run "
            "faster here; more cores, or fewer busy programs beside it, would"
        )
