"""Issue 14's scoreboard: the md5 transformer as a user writes it (a per-record handler),
with parafka's defaults and with `--processes 2`, beside the plain loops it must match, the
multiprocessing-queue pipeline people build today, and the batch recipe.

Every configuration is a fresh consumer group reading the same input (name events, 4
partitions, 1,000 keys) and writing its own output topic; each runs in its own process(es),
as `parafka run` starts them, and the configurations alternate for `--rounds` rounds. A rate
is 99% of the records over the time from the first output's timestamp to the 99th
percentile's (the tail of a run only waits for its last fetch). For a group of two, the
rate is the outputs stamped while both members worked (from the later one's assignment
to the earlier one's last records) over that time: on the local broker one member
sometimes got its partitions a second after the other, each then worked alone for part of
the run, and such rounds ran at about one process's rate. A round whose members worked
together for less than a quarter of the records is run again (`TRIES`). The targets:

- parafka's defaults (thread executor, key order), per-record: >= 0.8x one plain loop;
- `--processes 2`, per-record, unordered and key: >= 1.0x two plain loops in one group.

The floors, "handler loop x1" and "x2 (no engine)", are the plain loops calling the
per-record handler on a record made from each message and producing the `Output` it
returns: what the per-record API costs before any engine. A parafka configuration's
"x floor" is its median over the floor beside its baseline: 1.0x would be an engine that
costs nothing.

Writes the table (medians, and the median of each round's ratio: "paired") and, with
matplotlib, benchmarks/per_record.png.

With `--cpu`, also the CPU time a record cost each configuration: its processes' (every
thread) and the broker's, within the window its rate is taken over (`CpuWatch`); and the
time its threads waited, runnable, for a core: on two cores shared with the broker, what
the slow rounds have more of.

Usage: python benchmarks/per_record.py [--records N] [--rounds R] [--broker local|kafka]
                                       [--only NAME,NAME] [--no-chart] [--cpu]
"""

from __future__ import annotations

import argparse
import bisect
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import (
    add_broker_option,
    broker_label,
    fmt_rate,
    fmt_ratio,
    note,
    open_broker,
    thread_sched,
)
from md5_threads import output_stamps, rate_within, run_rate, run_window, stamped_within

from parafka.testing import Broker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/
from examples.md5_baselines import (
    Running,
    queue_pipeline,
    start_handler_loops,
    start_parafka_processes,
    start_plain_loops,
)
from examples.md5_transformer import encode, generate

PARTITIONS = 4
KEYS = 1_000
PER_RECORD = "examples.md5_transformer:handle"
BATCH = "examples.md5_transformer:handle_batch"
CHART = Path(__file__).resolve().parent / "per_record.png"
TRIES = 3  # runs of a group whose members did not work together (see _play)

ONE_LOOP, TWO_LOOPS = "plain loop x1", "plain loops x2 (one group)"
ONE_FLOOR, TWO_FLOORS = "handler loop x1 (no engine)", "handler loops x2 (no engine)"
# What the per-record API alone costs, beside each baseline: a configuration's "x floor".
FLOORS = {ONE_LOOP: ONE_FLOOR, TWO_LOOPS: TWO_FLOORS}
# name -> (baseline it is held against or None, target ratio or None, how to run it). A run
# returns the time its group's members all worked (Running.together), or None.
Run = Callable[[dict[str, Any], str, str, int], tuple[float, float] | None]
# --cpu, microseconds a record: its processes' CPU, the broker's, its processes' wait for a core
Figures = tuple[float, float, float]


class CpuWatch:
    """`--cpu`: the CPU time a record costs a configuration, its processes' (every thread)
    and the broker's, and the time its processes' threads waited, runnable, for a core.
    While a run goes on, the cumulative figures are read from the kernel's scheduler
    statistics every SAMPLE seconds, with the wall-clock time. After it, what was used
    within the window its rate is taken over (interpolated between readings) is divided by
    the outputs stamped within that window: the same records as the rate, whatever each
    configuration's start-up costs."""

    SAMPLE = 0.02

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid
        # the last run's readings: (wall clock, its processes' CPU seconds, the broker's,
        # its processes' seconds waiting for a core)
        self.readings: list[tuple[float, float, float, float]] = []
        self.last: Figures | None = None  # the last run's `per_record`

    def reset(self) -> None:
        """Before a run: a run that is not a group's (the pipeline) reads nothing."""
        self.readings, self.last = [], None

    def note(self, stamps: list[int], window: tuple[float, float] | None) -> None:
        """After a run whose rate was taken over `window`: `last` is its `per_record`."""
        self.last = self.per_record(stamps, window) if self.readings else None

    def wait(self, running: Running) -> None:
        """`running.wait()`, reading the scheduler's figures meanwhile."""
        threads: dict[tuple[int, int], tuple[float, float]] = {}  # last reading (ended: kept)
        readings: list[tuple[float, float, float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            while True:
                for proc in running.procs:
                    if proc.pid is not None:
                        for tid, (_, ran, waited) in thread_sched(proc.pid).items():
                            threads[(proc.pid, tid)] = ran, waited
                ran = sum(times[0] for times in threads.values())
                waited = sum(times[1] for times in threads.values())
                readings.append((time.time(), ran, self._broker_cpu(), waited))
                if stop.wait(self.SAMPLE):
                    return

        sampler = threading.Thread(target=sample, name="cpu-watch", daemon=True)
        sampler.start()
        try:
            running.wait()
        finally:
            stop.set()
            sampler.join()
        self.readings = readings

    def per_record(self, stamps: list[int], window: tuple[float, float] | None) -> Figures:
        """(its processes' CPU, the broker's, its processes' wait for a core) in microseconds
        a record over `window` (wall-clock seconds; None: the whole run's rate window, first
        output to the 99th percentile)."""
        if window is None:
            window = run_window(stamps)
        records = max(stamped_within(stamps, window), 1)
        start, end = self._at(window[0]), self._at(window[1])
        used = [(end[i] - start[i]) / records * 1e6 for i in range(3)]
        return used[0], used[1], used[2]

    def _at(self, when: float) -> tuple[float, ...]:
        """The figures at `when`, interpolated between the two readings around it."""
        readings = self.readings
        after = bisect.bisect_left(readings, (when,))
        if after == 0 or after == len(readings):
            return readings[min(after, len(readings) - 1)][1:]
        before, later = readings[after - 1], readings[after]
        share = (when - before[0]) / max(later[0] - before[0], 1e-9)
        return tuple(a + (b - a) * share for a, b in zip(before[1:], later[1:], strict=True))

    def _broker_cpu(self) -> float:
        if self.broker_pid is None:
            return 0.0
        return sum(ran for _, ran, _ in thread_sched(self.broker_pid).values())


_WATCH: CpuWatch | None = None  # set by --cpu


def _together(running: Running) -> tuple[float, float] | None:
    """Wait for a group's members to finish; while all of them worked."""
    if _WATCH is None:
        running.wait()
    else:
        _WATCH.wait(running)
    return running.together()


def _parafka(members: int, target: str, **settings: Any) -> Run:
    def run(config: dict[str, Any], topic: str, out: str, count: int) -> tuple[float, float] | None:
        return _together(
            start_parafka_processes(config, topic, out, count, members, target, settings)
        )

    return run


PIPELINE = "queue pipeline (2 hash workers)"


def _pipeline(config: dict[str, Any], topic: str, out: str, count: int) -> None:
    """The queue pipeline: one consumer, so no group window (its rate is the whole run's)."""
    queue_pipeline(config, topic, out, count, 2)


def _loops(start: Callable[..., Running], members: int) -> Run:
    return lambda c, t, o, n: _together(start(c, t, o, n, members))


CONFIGS: dict[str, tuple[str | None, float | None, Run]] = {
    ONE_LOOP: (None, None, _loops(start_plain_loops, 1)),
    TWO_LOOPS: (None, None, _loops(start_plain_loops, 2)),
    # The floors: the per-record handler and its Output called by plain loops, no engine.
    ONE_FLOOR: (ONE_LOOP, None, _loops(start_handler_loops, 1)),
    TWO_FLOORS: (TWO_LOOPS, None, _loops(start_handler_loops, 2)),
    PIPELINE: (None, None, _pipeline),
    "parafka defaults (threads, key), per record": (ONE_LOOP, 0.8, _parafka(1, PER_RECORD)),
    # The defaults with the control and output threads where the system puts them: what
    # the defaults were before they shared one core (engine/placement.py).
    "parafka defaults, threads placed by the OS": (
        ONE_LOOP,
        None,
        _parafka(1, PER_RECORD, thread_placement="os"),
    ),
    "parafka partition order (threads), per record": (
        ONE_LOOP,
        None,
        _parafka(1, PER_RECORD, ordering="partition"),
    ),
    "parafka --processes 2, unordered, per record": (
        TWO_LOOPS,
        1.0,
        _parafka(2, PER_RECORD, ordering="unordered"),
    ),
    "parafka --processes 2, key, per record": (TWO_LOOPS, 1.0, _parafka(2, PER_RECORD)),
    "parafka batch recipe (--processes 2, batches of 1,000, -c 1, buffer 12,000)": (
        TWO_LOOPS,
        None,
        _parafka(
            2, BATCH, ordering="unordered", batch_size=1000, concurrency=1, max_buffered=12_000
        ),
    ),
}


def with_environment(run: Run, env: dict[str, str]) -> Run:
    """`run` with `env` set while it starts its members (spawned processes read it as they
    start): how builds.py and ack_wait.py tell their members what to be."""

    def started(config: dict[str, Any], *rest: Any) -> tuple[float, float] | None:
        os.environ.update(env)
        try:
            return run(config, *rest)
        finally:
            for name in env:
                os.environ.pop(name, None)

    return started


def add_side_by_side_options(parser: argparse.ArgumentParser, orderings: str) -> None:
    """The options of a script that runs its own configurations beside the plain loops."""
    parser.add_argument("--orderings", default=orderings)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--cpu", action="store_true")
    add_broker_option(parser)


def side_by_side(configs: dict[str, tuple[str | None, float | None, Run]], args: Any) -> int:
    """Run `configs` (with the options of `add_side_by_side_options`) instead of the
    scoreboard's, alternated round by round; no chart."""
    CONFIGS.clear()
    CONFIGS.update(configs)
    passed = ["--rounds", str(args.rounds), "--records", str(args.records)]
    return main(passed + ["--no-chart", "--broker", args.broker] + ["--cpu"] * args.cpu)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=400_000)  # as issue 14 measured
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated configuration names (prefixes)")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="also the CPU time a record costs (the group's processes, the broker) and the "
        "time the processes' threads waited for a core",
    )
    add_broker_option(parser)
    args = parser.parse_args(argv)
    chosen = _chosen(args.only)
    rates: dict[str, list[float]] = {name: [] for name in chosen}
    cpu: dict[str, list[Figures]] = {name: [] for name in chosen}
    global _WATCH
    with open_broker(args.broker) as broker:
        if args.cpu:
            _WATCH = CpuWatch(broker.process.pid)
        config: dict[str, Any] = {**broker.client_config(), "fetch.queue.backoff.ms": 10}
        topic = broker.new_topic("names", PARTITIONS)
        events = generate(args.records, seed=7)
        broker.produce(topic, [(b"%d" % (i % KEYS), encode(e)) for i, e in enumerate(events)])
        where = broker_label(broker)
        note(f"{args.records:,} name events, {PARTITIONS} partitions, {KEYS:,} keys, {where}")
        for round_no in range(1, args.rounds + 1):
            for name in chosen:
                rate = _play(broker, config, topic, args.records, CONFIGS[name][2])
                rates[name].append(rate)
                figures = ""
                if _WATCH is not None and _WATCH.last is not None:
                    cpu[name].append(_WATCH.last)
                    figures = " (us a record: CPU {:.2f} + broker {:.2f}, waited {:.2f})".format(
                        *_WATCH.last
                    )
                note(f"round {round_no}: {name}: {fmt_rate(rate)} records/s{figures}")
    print(_table(rates, where))
    if _WATCH is not None:
        print(_cpu_table(cpu))
    if not args.no_chart:
        _chart(rates, where)
    return 0


def _chosen(only: str | None) -> list[str]:
    if not only:
        return list(CONFIGS)
    prefixes = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [name for name in CONFIGS if any(name.startswith(p) for p in prefixes)]
    for name, (baseline, _, _) in CONFIGS.items():  # a ratio needs its baseline in the run
        if name in chosen and baseline is not None and baseline not in chosen:
            chosen.insert(0, baseline)
    if not chosen:
        raise SystemExit(f"--only {only!r} names no configuration; choose from: {list(CONFIGS)}")
    return chosen


def _play(broker: Broker, config: dict[str, Any], topic: str, count: int, run: Run) -> float:
    """One run's rate; a group whose members did not work together for a quarter of the
    records or more is run again (at most TRIES times; then the whole run's rate)."""
    for _ in range(TRIES):
        out = broker.new_topic("md5-out", PARTITIONS)
        if _WATCH is not None:
            _WATCH.reset()
        together = run(config, topic, out, count)
        stamps = output_stamps(broker, out, count)
        if together is None:
            _note_cpu(stamps, None)
            return run_rate(stamps)
        rate = rate_within(stamps, together)
        if rate is not None:
            _note_cpu(stamps, together)
            return rate
        late = together[0] * 1000.0 - stamps[0]
        note(f"a member got its partitions {late:,.0f} ms after the first output: again")
    note(f"{TRIES} tries: the whole run's rate")
    _note_cpu(stamps, None)
    return run_rate(stamps)


def _note_cpu(stamps: list[int], window: tuple[float, float] | None) -> None:
    if _WATCH is not None:
        _WATCH.note(stamps, window)


def _ratios(rates: dict[str, list[float]], name: str) -> tuple[float, float] | None:
    """(median over the baseline's median, median of each round's ratio), or None."""
    baseline = CONFIGS[name][0]
    if baseline is None or baseline not in rates:
        return None
    mine, base = rates[name], rates[baseline]
    paired = statistics.median(r / b for r, b in zip(mine, base, strict=True))
    return statistics.median(mine) / statistics.median(base), paired


def _floor_ratio(rates: dict[str, list[float]], name: str) -> str:
    """A parafka configuration's median over its floor's (the handler loops beside its
    baseline), or "-"."""
    floor = FLOORS.get(CONFIGS[name][0] or "")
    if not name.startswith("parafka") or floor not in rates:
        return "-"
    return fmt_ratio(statistics.median(rates[name]) / statistics.median(rates[floor]))


def _table(rates: dict[str, list[float]], where: str) -> str:
    lines = [
        f"\nmd5 transformer, {where}",
        "| configuration | median records/s | x its baseline | paired | target | x floor "
        "| rounds |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for name, values in rates.items():
        baseline, target, _ = CONFIGS[name]
        ratios = _ratios(rates, name)
        ratio = "-"
        if ratios:
            loops = "one loop" if baseline == ONE_LOOP else "two loops"
            ratio = f"{fmt_ratio(ratios[0])} ({loops})"
        lines.append(
            f"| {name} | {fmt_rate(statistics.median(values))} | {ratio} | "
            f"{fmt_ratio(ratios[1]) if ratios else '-'} | "
            f"{'>= ' + fmt_ratio(target) if target else '-'} | {_floor_ratio(rates, name)} | "
            f"{' / '.join(fmt_rate(v) for v in values)} |"
        )
    return "\n".join(lines)


def _cpu_table(cpu: dict[str, list[Figures]]) -> str:
    """--cpu: the medians over the rounds of what a record cost (CpuWatch)."""
    lines = [
        "\nCPU time a record within the rate's window, median of the rounds (us); and the time",
        "its processes' threads waited, runnable, for a core",
        "| configuration | its processes | the broker | both | waited for a core |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, runs in cpu.items():
        if runs:
            members, used, waited = (statistics.median(run[i] for run in runs) for i in range(3))
            lines.append(
                f"| {name} | {members:.2f} | {used:.2f} | {members + used:.2f} | {waited:.2f} |"
            )
    return "\n".join(lines)


def _chart(rates: dict[str, list[float]], where: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        note("matplotlib not installed: no chart")
        return
    names = list(rates)
    medians = [statistics.median(rates[n]) for n in names]
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(names) + 1.6))
    colors = ["tab:blue" if n.startswith("parafka") else "tab:gray" for n in names]
    ax.barh(range(len(names)), medians, color=colors)
    for index, name in enumerate(names):
        ratios = _ratios(rates, name)
        label = fmt_rate(medians[index])
        if ratios:
            label += f"  ({fmt_ratio(ratios[0])} its baseline"
            target = CONFIGS[name][1]
            label += f", target {fmt_ratio(target)})" if target else ")"
        ax.text(medians[index], index, " " + label, va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("records/s (median of the rounds)")
    ax.set_title(f"md5 transformer, per-record handler vs plain loops ({where})", fontsize=10)
    ax.set_xlim(0, max(medians) * 1.45)
    fig.tight_layout()
    fig.savefig(CHART, dpi=110)
    note(f"chart: {CHART}")


if __name__ == "__main__":
    raise SystemExit(main())
