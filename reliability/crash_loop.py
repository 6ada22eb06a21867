"""Crash loop: kill -9 `parafka run` at random moments, restart it, and check from the output
topic that no record was lost and that duplicates stay within the documented bound.

    .venv/bin/python reliability/crash_loop.py            # 100,000 records, 20+5+5 kills
    .venv/bin/python reliability/crash_loop.py --records 20000 --kills 5 --process-kills 2 \
        --child-kills 2

Each record's handler sleeps 1-20 ms (`key` ordering) and reports (source partition, offset,
key, instance, pid, start time) to an output topic. Phases: the thread executor, then
`--executor process`, then `--processes 2` (a child is killed; the supervisor restarts it).
After every kill the group's committed offsets are read: the killed consumer's handler runs
at or above them are the most it can have left to be repeated (`above committed`). A final
run (`--until-idle`) processes the rest; then every record must be in the output topic.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parafka.testing import LocalBroker
from reliability import common
from tests.integration.helpers import committed, wait_until
from tests.integration.test_cli import started_cli, wait_exit
from tests.integration.test_processes import children_of


@dataclass(frozen=True)
class Phase:
    """`kills` runs of `parafka run ... *extra`, each killed with SIGKILL at a random moment.
    With `processes` > 1 one supervisor runs throughout and one child at a time is killed."""

    name: str
    kills: int
    extra: tuple[str, ...] = ()
    processes: int = 1


@dataclass(frozen=True)
class Kill:
    phase: str
    number: int
    pid: int
    after: float  # seconds from its assignment to the kill
    ran: int  # handler runs of the killed consumer
    above_committed: int  # of those, records at or above the committed offset at its death
    rate: float  # its records per second in its last 2 s


@dataclass
class CrashReport:
    produced: common.Produced
    concurrency: int
    max_buffered: int
    commit_interval: float
    kills: list[Kill] = field(default_factory=list)
    tally: common.Tally | None = None
    final_runs: int = 0
    seconds: float = 0.0

    def bound(self, kill: Kill) -> int:
        """The documented bound on the records one crash can make a consumer repeat."""
        return duplicate_bound(self.concurrency, self.max_buffered, kill.rate, self.commit_interval)

    def lines(self) -> list[str]:
        assert self.tally is not None
        kills = len(self.kills)
        above = [k.above_committed for k in self.kills]
        worst = max(self.kills, key=lambda k: k.above_committed / max(1, self.bound(k)))
        return [
            f"crash loop: {kills} kills in {self.seconds:.0f} s "
            f"({', '.join(f'{n} {p}' for p, n in self.phase_counts().items())})",
            self.tally.line(),
            f"final run processed {self.final_runs:,} records (the kills landed mid-run)",
            f"per kill, records above the committed offset: mean {sum(above) / kills:.0f}, "
            f"max {max(above)}; worst against its bound: {worst.above_committed} of "
            f"{self.bound(worst)} (kill {worst.phase} #{worst.number}, {worst.rate:.0f} rec/s)",
            f"duplicates: {self.tally.duplicates:,} in all, {self.tally.duplicates / kills:.0f} "
            f"per kill; runs of killed consumers above the committed offset: {sum(above):,}",
        ]

    def phase_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kill in self.kills:
            counts[kill.phase] = counts.get(kill.phase, 0) + 1
        return counts


def duplicate_bound(
    concurrency: int, max_buffered: int, records_per_second: float, commit_interval: float
) -> int:
    """Records a crash can leave processed but uncommitted (so repeated by the next owner):
    the records running, those finished since the last acknowledged commit (one commit
    interval, plus a quarter second for the commit's round trip), and those finished above
    the oldest unfinished record of their partition (at most a buffer's worth in steady
    state: a record waits in the buffer about max_buffered / rate seconds). Brokers that
    return commit metadata let the next owner skip the last group."""
    in_last_interval = records_per_second * (commit_interval + 0.25)
    return int(concurrency + in_last_interval + max_buffered)


def crash_loop(
    broker: LocalBroker,
    workload: common.Workload,
    phases: Sequence[Phase],
    logs: Path,
    *,
    concurrency: int = 16,
    commit_interval: float = 1.0,
    delay: tuple[float, float] = (0.5, 3.0),
    seed: int = 1,
    echo: common.Echo = common.quiet,
) -> CrashReport:
    """Run the phases, then a final run to the end; return what was seen."""
    started = time.monotonic()
    produced = common.produce_workload(broker, workload, "crash")
    echo(f"{produced.total:,} records in {produced.topic} ({workload.partitions} partitions)")
    report = CrashReport(produced, concurrency, max(1000, 10 * concurrency), commit_interval)
    loop = _Crashes(broker, report, logs, random.Random(seed), delay, echo)
    try:
        for phase in phases:
            echo(f"phase {phase.name}: {phase.kills} kills")
            if phase.processes > 1:
                loop.kill_children(phase)
            else:
                for number in range(1, phase.kills + 1):
                    loop.kill_run(phase, number)
        echo("final run: to the end (--until-idle 3)")
        loop.final_run()
        loop.reader.read_until(produced.total, 120, "every record in the output topic")
        report.tally = common.tally(produced, loop.reader.reports)
        report.final_runs = sum(1 for r in loop.reader.reports if r.instance == "final")
    finally:
        loop.reader.close()
    report.seconds = time.monotonic() - started
    return report


class _Crashes:
    """Starts, kills and accounts for the runs of one crash loop."""

    def __init__(
        self,
        broker: LocalBroker,
        report: CrashReport,
        logs: Path,
        rng: random.Random,
        delay: tuple[float, float],
        echo: common.Echo,
    ) -> None:
        self.broker, self.report, self.logs = broker, report, logs
        self.rng, self.delay, self.echo = rng, delay, echo
        self.produced = report.produced
        self.group = common.new_group("crash")
        out = broker.new_topic("crash-out", partitions=len(self.produced.counts))
        self.args = common.run_args(
            broker.bootstrap_servers, common.REPORT, self.produced.topic, self.group,
            "-o", out, "--ordering", "key", "-c", str(report.concurrency),
            "--commit-interval", str(report.commit_interval),
        )  # fmt: skip
        self.reader = common.OutputReader(broker, out)

    def kill_run(self, phase: Phase, number: int) -> None:
        """Start `parafka run`, kill -9 it at a random moment after its assignment."""
        instance = f"{phase.name}-{number}"
        logs = self.logs / instance
        with started_cli([*self.args, *phase.extra], common.instance_env(instance), logs) as proc:
            _wait_assigned(proc, logs / "stderr")
            after = self.rng.uniform(*self.delay)
            time.sleep(after)  # the random moment of the crash
            assert proc.poll() is None, (logs / "stderr").read_text()
            workers = children_of(proc.pid)  # the process executor's workers
            proc.kill()
            proc.wait()
        for worker in workers:  # they see their pipe close and exit
            wait_until(lambda: not _alive(worker), 30, f"worker {worker} of a killed consumer")  # noqa: B023
        self.account(phase, number, proc.pid, after, lambda r: r.instance == instance)

    def kill_children(self, phase: Phase) -> None:
        """One `--processes N` supervisor; kill -9 its oldest child `phase.kills` times (the
        supervisor restarts it), then stop it with SIGTERM."""
        logs = self.logs / phase.name
        stderr = logs / "stderr"
        args = [*self.args, *phase.extra, "--processes", str(phase.processes)]
        with started_cli(args, common.instance_env(phase.name), logs) as supervisor:
            seen = 0
            for number in range(1, phase.kills + 1):
                self._wait_children(supervisor, phase.processes, stderr, seen)
                seen = common.assigned_count(stderr)
                after = self.rng.uniform(*self.delay)
                time.sleep(after)  # the random moment of the crash
                victim = min(children_of(supervisor.pid))  # the oldest (pids grow)
                os.kill(victim, signal.SIGKILL)
                wait_until(lambda: not _alive(victim), 10, f"child {victim} to die")  # noqa: B023
                self.account(phase, number, victim, after, lambda r: r.pid == victim)  # noqa: B023
            self._wait_children(supervisor, phase.processes, stderr, seen)
            # Members leave one at a time: on the local broker, two leaving together leave
            # the group unable to assign anyone again (plain confluent-kafka consumers too).
            running = lambda: supervisor.poll() is None  # noqa: E731
            for child in sorted(children_of(supervisor.pid))[:-1]:
                common.wait_settled(stderr, 3.0, 90, running)
                os.kill(child, signal.SIGTERM)
                wait_until(lambda: not _alive(child), 60, f"child {child} to stop")  # noqa: B023
            common.wait_settled(stderr, 3.0, 90, running)
            code = common.stop_run(supervisor, logs)
        assert code == 0, stderr.read_text()

    def final_run(self) -> None:
        """`parafka run --until-idle 3` to the end of the topic."""
        logs = self.logs / "final"
        with started_cli(
            [*self.args, "--until-idle", "3"], common.instance_env("final"), logs
        ) as proc:
            _wait_assigned(proc, logs / "stderr")
            remaining = self.produced.total - len(self.reader.distinct)
            code = wait_exit(proc, 60 + remaining / 50, logs)  # 50 records/s at the very least
        assert code == 0, (logs / "stderr").read_text()

    @staticmethod
    def _wait_children(
        supervisor: subprocess.Popen[bytes], count: int, stderr: Path, seen: int
    ) -> None:
        """Until `count` children run and one more assignment than `seen` was logged."""

        def ready() -> bool:
            if supervisor.poll() is not None:
                return True
            return (
                len(children_of(supervisor.pid)) == count and common.assigned_count(stderr) > seen
            )

        wait_until(ready, 90, "every child running and a new assignment")
        assert supervisor.poll() is None, stderr.read_text()

    def account(
        self,
        phase: Phase,
        number: int,
        pid: int,
        after: float,
        mine: Callable[[common.Report], bool],
    ) -> None:
        """After a kill: which of the dead consumer's runs the group had not committed."""
        offsets = committed(self.broker, self.group, self.produced.topic, len(self.produced.counts))
        self.reader.read()
        runs = [r for r in self.reader.reports if mine(r)]
        above = {(r.partition, r.offset) for r in runs if r.offset >= max(0, offsets[r.partition])}
        kill = Kill(phase.name, number, pid, after, len(runs), len(above), common.rate(runs))
        self.report.kills.append(kill)
        self.echo(
            f"  kill {phase.name} #{number}: pid {pid} after {after:.1f} s, {kill.ran:,} runs, "
            f"{kill.above_committed} above committed (bound {self.report.bound(kill)}), "
            f"{len(self.reader.distinct):,}/{self.produced.total:,} done"
        )


def _wait_assigned(proc: subprocess.Popen[bytes], stderr: Path) -> None:
    wait_until(
        lambda: common.assigned_count(stderr) > 0 or proc.poll() is not None,
        60,
        f"an assignment in {stderr} (the local broker can stop assigning a group whose "
        "members left while it rebalanced)",
    )
    assert proc.poll() is None, stderr.read_text()


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.scenario_parser(__doc__, "/tmp/parafka-crash-loop")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20, help="kills with the thread executor")
    parser.add_argument("--process-kills", type=int, default=5, help="with --executor process")
    parser.add_argument("--child-kills", type=int, default=5, help="children of --processes 2")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    phases = [
        Phase("thread", args.kills),
        Phase("process", args.process_kills, ("--executor", "process", "--workers", "2")),
        Phase("processes-2", args.child_kills, processes=2),
    ]
    phases = [p for p in phases if p.kills]
    with LocalBroker() as broker:
        report = crash_loop(
            broker,
            common.Workload(args.records, seed=args.seed),
            phases,
            args.logs,
            concurrency=args.concurrency,
            seed=args.seed,
            echo=common.say,
        )
    assert report.tally is not None
    ok = report.tally.missing == 0 and report.tally.unexpected == 0
    ok = ok and all(k.above_committed <= report.bound(k) for k in report.kills)
    return common.verdict(report.lines(), ok)


if __name__ == "__main__":
    sys.exit(main())
