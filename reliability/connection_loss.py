"""Connection loss: every connection between parafka and the broker is dropped for a while in
the middle of a run, then let through again; processing must resume and lose nothing.

    .venv/bin/python reliability/connection_loss.py            # 20,000 records, 10 s outage
    .venv/bin/python reliability/connection_loss.py --outage 3 --records 3000

A broker of its own advertises the port of an asyncio TCP proxy (reliability/proxy.py), so
every client connection, including reconnections, goes through the proxy. Once a third of
the records are processed the proxy resets every connection and refuses new ones for
`--outage` seconds. The consumer's group session (2 s) expires meanwhile, so it also goes
through losing its partitions and joining again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parafka.testing import LocalBroker
from parafka.testing.broker import free_port
from reliability import common
from reliability.proxy import FlakyProxy
from tests.integration.helpers import wait_until
from tests.integration.test_cli import started_cli


@dataclass(frozen=True)
class OutageReport:
    outage: float
    done_before: int  # records processed when the connections were cut
    started_during: int  # handler runs that started while the proxy was cut
    resumed_after: float  # seconds from the restore to the first handler run after it
    finished_after: float  # seconds from the restore to every record processed
    refused: int  # connection attempts reset while cut
    uncommitted: int  # records not committed at the end
    exit_code: int
    log_lines: int  # lines the consumer wrote to stderr in all
    tally: common.Tally

    def lines(self) -> list[str]:
        return [
            f"connection loss: all connections dropped for {self.outage:g} s after "
            f"{self.done_before:,} records; {self.refused} reconnection attempts refused meanwhile",
            self.tally.line(),
            f"{self.started_during} handler runs started during the outage; first run "
            f"{self.resumed_after:.1f} s after the restore, every record done "
            f"{self.finished_after:.1f} s after it",
            f"uncommitted at the end: {self.uncommitted}; exit code {self.exit_code}; "
            f"{self.log_lines} stderr lines in all",
        ]

    @property
    def ok(self) -> bool:
        return (
            self.tally.missing == 0
            and self.tally.unexpected == 0
            and self.uncommitted == 0
            and self.exit_code == 0
        )


def connection_loss(
    workload: common.Workload,
    logs: Path,
    *,
    outage: float = 10.0,
    concurrency: int = 16,
    settle_timeout: float = 180.0,
    echo: common.Echo = common.quiet,
) -> OutageReport:
    """Run the scenario with a broker and a proxy of its own."""
    broker_port = free_port()
    with (
        FlakyProxy(broker_port) as proxy,
        LocalBroker(port=broker_port, advertised_port=proxy.port) as broker,
    ):
        produced = common.produce_workload(broker, workload, "outage")
        out = broker.new_topic("outage-out", partitions=workload.partitions)
        group = common.new_group("outage")
        args = common.run_args(proxy.address, common.REPORT, produced.topic, group, "-o", out,
                               "--ordering", "key", "-c", str(concurrency))  # fmt: skip
        echo(
            f"{produced.total:,} records in {produced.topic}; broker {broker.bootstrap_servers} "
            f"behind proxy {proxy.address}"
        )
        reader = common.OutputReader(broker, out)
        try:
            with started_cli(args, common.instance_env("outage"), logs) as proc:

                def a_third_done() -> bool:
                    reader.read(quiet_for=0.0, timeout=0.5)
                    return len(reader.distinct) >= produced.total // 3 or proc.poll() is not None

                wait_until(a_third_done, 120, "a third of the records processed")
                assert proc.poll() is None, (logs / "stderr").read_text()
                done_before = len(reader.distinct)
                cut_ns = time.time_ns()
                proxy.cut()
                echo(f"  cut after {done_before:,} records")
                time.sleep(outage)  # the outage itself
                restore_ns = time.time_ns()
                proxy.restore()
                restored = time.monotonic()
                echo(f"  restored after {outage:g} s")
                assert proc.poll() is None, (logs / "stderr").read_text()
                reader.read_until(produced.total, settle_timeout, "every record after the outage")
                finished_after = time.monotonic() - restored
                # Every record has an output by now, but records the group repeats after the
                # outage (a rebalance hands partitions back from their committed offsets) may
                # still be running: their commits follow within seconds.
                behind = common.uncommitted(
                    broker, group, produced, workload.partitions, lambda: proc.poll() is None
                )
                code = common.stop_run(proc, logs)
        finally:
            reader.close()
        after = [r.started_ns for r in reader.reports if r.started_ns >= restore_ns]
        return OutageReport(
            outage=outage,
            done_before=done_before,
            started_during=sum(1 for r in reader.reports if cut_ns <= r.started_ns < restore_ns),
            resumed_after=(min(after) - restore_ns) / 1e9 if after else float("inf"),
            finished_after=finished_after,
            refused=proxy.refused,
            uncommitted=behind,
            exit_code=code,
            log_lines=len((logs / "stderr").read_text(errors="replace").splitlines()),
            tally=common.tally(produced, reader.reports),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.scenario_parser(__doc__, "/tmp/parafka-connection-loss")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    report = connection_loss(
        common.Workload(args.records),
        args.logs,
        outage=args.outage,
        echo=common.say,
    )
    return common.verdict(report.lines(), report.ok)


if __name__ == "__main__":
    sys.exit(main())
