"""Scene: IO-bound jobs, the batch + thread-per-record loop against parafka's three modes.

The four runs read the same topic one after the other, each in its own group.
"""

from __future__ import annotations

from dataclasses import replace

from examples.demo.baselines import batch_threads_loop
from examples.demo.jobs import JobLog, JobRun, JobSize, play_job_runs, stage_jobs
from examples.demo.kafka import Stage
from examples.demo.results import Played, fmt_rate, fmt_ratio
from examples.demo.runs import ParafkaRun, ThreadRun
from examples.demo.view import Panel

MODES = ("key", "partition", "unordered")


FULL = JobSize(jobs=3000, partitions=8, keys=200, low_ms=10, high_ms=30, concurrency=50, timeout=90)
QUICK = JobSize(jobs=200, partitions=4, keys=40, low_ms=1, high_ms=3, concurrency=20, timeout=60)


def play(stage: Stage, panel: Panel) -> Played:
    size = QUICK if stage.quick else FULL
    c = size.concurrency
    topic, mean_s = stage_jobs(stage, "jobs", size, seed=7)
    panel.note(
        f"{size.jobs:,} jobs of {size.low_ms:g}-{size.high_ms:g} ms over {size.keys} keys and "
        f"{size.partitions} partitions, concurrency C={c}; ideal = C / mean job time "
        f"(partition mode: partitions / mean job time)"
    )

    baseline = JobLog()
    settings = stage.consumer_settings()
    runs = [
        JobRun(
            f"batch + thread per record, C={c}",
            panel.lane("batch + thread per record", size.jobs, lambda: len(baseline)),
            ThreadRun(
                lambda: batch_threads_loop(settings, topic, baseline.message, size.jobs, c),
                lambda: len(baseline),
            ),
            baseline,
            None,
            c / mean_s,
        )
    ]
    for mode in MODES:
        log = JobLog()
        run = ParafkaRun(
            stage.parallel(log.record, topic, f"sleep-{mode}", ordering=mode, concurrency=c)
        )
        ideal = (min(c, size.partitions) if mode == "partition" else c) / mean_s
        lane = panel.lane(f"parafka {mode}", size.jobs, run.processed)
        runs.append(JobRun(f"parafka {mode}, C={c}", lane, run, log, mode, ideal))
    base, *parafka = play_job_runs(runs, size.jobs, size.timeout, at_once=stage.quick)
    rows = [base] + [
        replace(row, compared=f"{row.compared}; {fmt_ratio(row.rate / base.rate)} the batch loop")
        for row in parafka
    ]
    rates = ", ".join(
        f"{mode} {fmt_rate(row.rate)}" for mode, row in zip(MODES, parafka, strict=True)
    )
    return Played(rows, f"parafka {rates}; batch + thread per record {fmt_rate(base.rate)}")
