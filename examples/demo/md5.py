"""Scene: the md5 transformer (examples/md5_transformer.py), consume -> md5 -> produce.

Five runs, one after the other, read the same name events and each write their own output
topic: the plain batched loop in one process and in two, the multiprocessing-queue pipeline
(examples/md5_baselines.py, as in benchmarks/executors.py), two parafka processes with a
batch handler (the fastest setup) and parafka's process executor. Every output topic is
read back: each event must have an output with its hash (at least once: a rebalance may
repeat some), and the run is timed from its first output to its last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from examples.demo.kafka import Stage
from examples.demo.needs import example
from examples.demo.results import Played, Row, fmt_rate, fmt_ratio
from examples.demo.runs import ParafkaRun, play_run, together
from examples.demo.view import Panel

HANDLER = "examples.md5_transformer:handle"


@dataclass(frozen=True)
class Size:
    events: int
    partitions: int
    workers: int
    timeout: float


FULL = Size(events=100_000, partitions=4, workers=2, timeout=90)
QUICK = Size(events=2_000, partitions=4, workers=2, timeout=60)


class ProcessesRun:
    """Processes started by `start` (examples/md5_baselines.py): the baselines, and parafka run
    as `parafka run --processes N` runs it."""

    def __init__(self, start: Callable[[], Any]) -> None:
        self._start = start
        self._running: Any = None
        self.rate = float("nan")

    def start(self) -> None:
        self._running = self._start()

    def processed(self) -> int:
        return self._running.processed() if self._running is not None else 0

    def alive(self) -> bool:
        return self._running is not None and bool(self._running.alive())

    def stop(self) -> None:
        self.rate = float(self._running.wait(timeout=60))


def play(stage: Stage, panel: Panel) -> Played:
    md5 = example("md5_transformer")
    baselines = example("md5_baselines")
    common = example("common")
    size = QUICK if stage.quick else FULL
    n, workers = size.events, size.workers
    topic = stage.topic("names", size.partitions)
    inputs = {str(i).encode(): md5.encode(e) for i, e in enumerate(md5.generate(n, seed=7))}
    stage.produce(topic, ((None, key, value) for key, value in inputs.items()))
    panel.note(
        f"{n:,} name events in {size.partitions} partitions; each run writes its own topic, "
        "read back at the end to check every output and to time the run (first output to "
        "last)"
    )

    config = stage.consumer_settings()
    outputs = {name: stage.topic(f"hashed-{name}", size.partitions) for name in "abcde"}
    runs: list[tuple[str, str, Any]] = [
        (
            "plain loop (1 process)",
            "a",
            ProcessesRun(lambda: baselines.start_plain_loops(config, topic, outputs["a"], n, 1)),
        ),
        (
            "two plain loops (one group)",
            "b",
            ProcessesRun(lambda: baselines.start_plain_loops(config, topic, outputs["b"], n, 2)),
        ),
        (
            f"queue pipeline ({workers} md5 processes)",
            "c",
            ProcessesRun(
                lambda: baselines.start_queue_pipeline(config, topic, outputs["c"], n, workers)
            ),
        ),
        (
            "parafka, 2 processes, batches of 1,000",
            "d",
            ProcessesRun(
                lambda: baselines.start_parafka_processes(config, topic, outputs["d"], n, 2)
            ),
        ),
        (
            f"parafka process executor ({workers} workers)",
            "e",
            ParafkaRun(
                stage.parallel(
                    HANDLER,
                    topic,
                    "md5-parafka",
                    executor="process",
                    workers=workers,
                    ordering="unordered",
                    output_topic=outputs["e"],
                )
            ),
        ),
    ]
    lanes = [panel.lane(name, n, run.processed) for name, _, run in runs]
    entries = [(lane, run) for lane, (_, _, run) in zip(lanes, runs, strict=True)]
    for lane in lanes:
        lane.status = "waiting"
    if stage.quick:  # all at once: tiny sizes, the figures do not matter
        errors = together(entries, n, size.timeout)
    else:  # one after the other: each has the cores to itself
        errors = [play_run(lane, run, n, size.timeout) for lane, run in entries]
    rows: list[Row] = []
    for lane, (name, out, _run), error in zip(lanes, runs, errors, strict=True):
        lane.status = "reading its output back"
        problems, rate = _check(md5, common, stage, outputs[out], inputs)
        check = error or (problems[0] if problems else "every event: an output, right hash")
        if problems and len(problems) > 1:
            check += f" (+{len(problems) - 1} more)"
        rows.append(Row(name, fmt_rate(rate), "", check, error is None and not problems,
                        rate=rate))  # fmt: skip
        lane.finish(fmt_rate(rate))
    one, two, pipeline = (row.rate for row in rows[:3])
    compared = [
        "the baseline",
        f"{fmt_ratio(two / one)} one loop",
        f"{fmt_ratio(pipeline / two)} the two loops",
        *(
            f"{fmt_ratio(row.rate / two)} the two loops, {fmt_ratio(row.rate / pipeline)} the "
            "pipeline"
            for row in rows[3:]
        ),
    ]
    rows = [replace(row, compared=text) for row, text in zip(rows, compared, strict=True)]
    return Played(rows, ", ".join(f"{r.run.split(' (')[0]} {r.measured}" for r in rows))


def _check(
    md5: Any, common: Any, stage: Stage, topic: str, inputs: dict[bytes, bytes]
) -> tuple[list[str], float]:
    """What is wrong with a run's outputs, and its rate: records over the time from the
    first output's timestamp to the last one's (the same clock for every run)."""
    messages = common.read_topic(
        stage.bootstrap_servers, topic, minimum=len(inputs), timeout=30, settle=0.5,
        config=stage.consumer_settings(),
    )  # fmt: skip
    # At least once: a rebalance (a session lost on a busy machine, say) may repeat records.
    outputs = [(m.key(), m.value()) for m in messages]
    problems: list[str] = md5.check_outputs(inputs, outputs, duplicates_allowed=True)
    stamps = [m.timestamp()[1] for m in messages]
    span = (max(stamps) - min(stamps)) / 1000 if stamps else 0.0
    return problems, len(inputs) / span if span > 0 else float("nan")
