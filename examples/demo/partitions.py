"""Scene: IO-bound jobs on 2 partitions; what caps each ordering mode.

`partition` runs one job per partition at a time, `key` one per key, `unordered` up to the
concurrency: with 2 partitions < 20 keys < C = 50, the three ceilings are far apart. Each
run shows how many jobs it had running at once at most, measured from the calls.
"""

from __future__ import annotations

from dataclasses import replace

from examples.demo.checks import max_concurrent
from examples.demo.jobs import JobLog, JobRun, JobSize, play_job_runs, stage_jobs
from examples.demo.kafka import Stage
from examples.demo.results import Played, fmt_rate
from examples.demo.runs import ParafkaRun
from examples.demo.view import Panel

MODES = ("partition", "key", "unordered")


FULL = JobSize(jobs=1500, partitions=2, keys=20, low_ms=5, high_ms=15, concurrency=50, timeout=90)
QUICK = JobSize(jobs=150, partitions=2, keys=10, low_ms=1, high_ms=3, concurrency=20, timeout=60)


def play(stage: Stage, panel: Panel) -> Played:
    size = QUICK if stage.quick else FULL
    c = size.concurrency
    topic, mean_s = stage_jobs(stage, "few-partitions", size, seed=9)
    at_once = {"partition": size.partitions, "key": min(size.keys, c), "unordered": c}
    panel.note(
        f"{size.jobs:,} jobs of {size.low_ms:g}-{size.high_ms:g} ms, {size.partitions} "
        f"partitions, {size.keys} keys, concurrency C={c}: at most "
        + ", ".join(f"{n} at once in {mode} mode" for mode, n in at_once.items())
    )
    runs = []
    for mode in MODES:
        log = JobLog()
        run = ParafkaRun(
            stage.parallel(log.record, topic, f"few-{mode}", ordering=mode, concurrency=c)
        )
        lane = panel.lane(f"parafka {mode}", size.jobs, run.processed)
        runs.append(JobRun(f"{mode}, C={c}", lane, run, log, mode, at_once[mode] / mean_s))
    rows = play_job_runs(runs, size.jobs, size.timeout, at_once=stage.quick)
    rows = [
        replace(
            row,
            compared=f"{row.compared}; {max_concurrent(job_run.log.calls)} running at once "
            f"at most (limit {at_once[mode]})",
        )
        for row, job_run, mode in zip(rows, runs, MODES, strict=True)
    ]
    rates = ", ".join(f"{mode} {fmt_rate(row.rate)}" for mode, row in zip(MODES, rows, strict=True))
    return Played(rows, f"on {size.partitions} partitions: {rates}")
