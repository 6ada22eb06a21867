"""IO-bound jobs: records that tell the handler how long to sleep, and a log of every call.

A job's value is `b"<job id>:<milliseconds>"`; the id lets a scene check that every job
ran, the recorded calls that order held and how many ran at once.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Message

from examples.demo.checks import Call, span, verdict
from examples.demo.kafka import Item, Stage
from examples.demo.results import Row, fmt_rate
from examples.demo.runs import Run, play_run, together
from examples.demo.view import Lane
from parafka import Record
from parafka.cli.generate import sleep_jobs as sleep_jobs  # one job format for demo and CLI


@dataclass(frozen=True)
class JobSize:
    """How big a sleep-job scene is: its jobs, partitions and keys, the jobs' range of
    sleeps, parafka's concurrency and how long a run may take."""

    jobs: int
    partitions: int
    keys: int
    low_ms: float
    high_ms: float
    concurrency: int
    timeout: float


def stage_jobs(stage: Stage, name: str, size: JobSize, seed: int) -> tuple[str, float]:
    """A new topic of `size`'s jobs on the stage: (the topic, the jobs' mean in seconds)."""
    topic = stage.topic(name, size.partitions)
    items = sleep_jobs(size.jobs, size.keys, size.partitions, size.low_ms, size.high_ms, seed)
    stage.produce(topic, items)
    return topic, mean_ms(items) / 1000.0


def mean_ms(items: Sequence[Item]) -> float:
    return statistics.fmean(float(value.split(b":")[1]) for _, _, value in items)


class JobLog:
    """Runs jobs and records each call; safe from many threads (list.append is atomic).

    With `sleep_ms`, every job sleeps that long instead of the time its record holds.
    """

    def __init__(self, sleep_ms: float | None = None) -> None:
        self.calls: list[Call] = []
        self.sleep_ms = sleep_ms

    def run(self, partition: int, key: bytes | None, offset: int, value: bytes) -> None:
        job, sleep_ms = value.split(b":")
        started = time.perf_counter()
        time.sleep((self.sleep_ms if self.sleep_ms is not None else float(sleep_ms)) / 1000.0)
        self.calls.append(Call(started, time.perf_counter(), partition, key, offset, int(job)))

    def record(self, record: Record) -> None:
        """The handler for parafka."""
        self.run(record.partition, record.key, record.offset, record.value or b"-1:0")

    def message(self, message: Message) -> None:
        """The handler for the baseline loops, which see the client's messages."""
        self.run(
            message.partition() or 0,
            message.key(),
            message.offset() or 0,
            message.value() or b"-1:0",
        )

    def __len__(self) -> int:
        return len(self.calls)


@dataclass
class JobRun:
    """One run of a sleep-job scene: its lane, the run, the log its handler writes, the
    order it promises and its ideal records/s."""

    name: str
    lane: Lane
    run: Run
    log: JobLog
    ordering: str | None
    ideal: float


def play_job_runs(
    runs: Sequence[JobRun], expected: int, timeout: float, at_once: bool = False
) -> list[Row]:
    """Play the runs one after the other (each alone, so each figure is its own), or all
    at once (`at_once`: quick mode); a row per run. A lane shows its figure as soon as its
    run is over."""
    for job_run in runs:
        job_run.lane.status = "waiting"
    if at_once:
        errors = together([(r.lane, r.run) for r in runs], expected, timeout)
        return [_row(job_run, expected, error) for job_run, error in zip(runs, errors, strict=True)]
    return [
        _row(job_run, expected, play_run(job_run.lane, job_run.run, expected, timeout))
        for job_run in runs
    ]


def _row(job_run: JobRun, expected: int, error: str | None) -> Row:
    row = job_row(job_run.name, job_run.log, expected, job_run.ordering, job_run.ideal, error)
    job_run.lane.finish(f"{row.measured} ({row.compared})")
    return row


def job_row(
    run: str,
    log: JobLog,
    expected: int,
    ordering: str | None,
    ideal: float,
    error: str | None,
) -> Row:
    """The summary row of one sleep-job run."""
    rate = len(log.calls) / span(log.calls) if log.calls else float("nan")
    check, ok = verdict(log.calls, expected, ordering)
    if error is not None:
        check, ok = f"{error}; {check}", False
    compared = f"{rate / ideal:.0%} of the ideal {fmt_rate(ideal)}"
    return Row(run, fmt_rate(rate), compared, check, ok, rate=rate)
