"""Scene: the md5 transformer (examples/md5_transformer.py), consume -> md5 -> produce.

Three runs, one after the other, read the same name events and each write their own
output topic: the plain batched loop in one process and the multiprocessing-queue pipeline
(examples/md5_baselines.py, as in benchmarks/executors.py), and parafka's process executor.
Every output topic is read back: each event must have an output with its hash (at least
once: a rebalance may repeat some).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from parafka.demo.kafka import Stage
from parafka.demo.needs import example
from parafka.demo.results import Played, Row, fmt_rate, fmt_ratio
from parafka.demo.runs import ParafkaRun, play_run, together
from parafka.demo.view import Panel

HANDLER = "examples.md5_transformer:handle"


@dataclass(frozen=True)
class Size:
    events: int
    partitions: int
    workers: int
    timeout: float


FULL = Size(events=100_000, partitions=4, workers=2, timeout=90)
QUICK = Size(events=2_000, partitions=4, workers=2, timeout=60)


class BaselineRun:
    """A baseline of examples/md5_baselines.py: processes started by `start`."""

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
        "read back at the end to check every output"
    )

    config = stage.consumer_settings()
    outputs = {name: stage.topic(f"hashed-{name}", size.partitions) for name in ("a", "b", "c")}
    plain = BaselineRun(lambda: baselines.start_plain_loops(config, topic, outputs["a"], n, 1))
    pipeline = BaselineRun(
        lambda: baselines.start_queue_pipeline(config, topic, outputs["b"], n, workers)
    )
    parafka = ParafkaRun(
        stage.parallel(HANDLER, topic, "md5-parafka", executor="process", workers=workers,
                       ordering="unordered", output_topic=outputs["c"])
    )  # fmt: skip
    runs: list[tuple[str, str, Any]] = [
        ("plain loop (1 process)", "a", plain),
        (f"queue pipeline ({workers} md5 processes)", "b", pipeline),
        (f"parafka process executor ({workers} workers)", "c", parafka),
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
    for lane, (name, out, run), error in zip(lanes, runs, errors, strict=True):
        lane.status = "reading its output back"
        problems = _problems(md5, common, stage, outputs[out], inputs)
        check = error or (problems[0] if problems else "every event: an output, right hash")
        if problems and len(problems) > 1:
            check += f" (+{len(problems) - 1} more)"
        rows.append(Row(name, fmt_rate(run.rate), "", check, error is None and not problems,
                        rate=run.rate))  # fmt: skip
        lane.finish(fmt_rate(run.rate))
    plain_rate, pipeline_rate = rows[0].rate, rows[1].rate
    compared = [
        "the baseline",
        f"{fmt_ratio(pipeline_rate / plain_rate)} the plain loop",
        f"{fmt_ratio(rows[2].rate / plain_rate)} the plain loop, "
        f"{fmt_ratio(rows[2].rate / pipeline_rate)} the pipeline",
    ]
    rows = [replace(row, compared=text) for row, text in zip(rows, compared, strict=True)]
    return Played(rows, ", ".join(f"{r.run.split(' (')[0]} {r.measured}" for r in rows))


def _problems(
    md5: Any, common: Any, stage: Stage, topic: str, inputs: dict[bytes, bytes]
) -> list[str]:
    messages = common.read_topic(
        stage.bootstrap_servers, topic, minimum=len(inputs), timeout=30, settle=0.5,
        config=stage.consumer_settings(),
    )  # fmt: skip
    # At least once: a rebalance (a session lost on a busy machine, say) may repeat records.
    outputs = [(m.key(), m.value()) for m in messages]
    problems: list[str] = md5.check_outputs(inputs, outputs, duplicates_allowed=True)
    return problems
