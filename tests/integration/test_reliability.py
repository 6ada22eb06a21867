"""Short versions of the reliability scenarios in reliability/ (issue 6): crash loop,
rebalance churn, connection loss, memory under a backlog; plus a broker that never answers.

Each runs the very code of the long script with small figures (seconds, thousands of
records); `.venv/bin/python reliability/<scenario>.py` runs the long version.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from parafka import Record
from parafka.testing import LocalBroker
from reliability.common import MB, REPORT, Workload
from reliability.connection_loss import connection_loss
from reliability.crash_loop import Phase, crash_loop
from reliability.memory import LIMIT, memory_run
from reliability.rebalance_churn import churn

from .helpers import consumer, produce_keyed, wait_until
from .test_cli import cli_env, error_lines, run_cli

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads processes and memory through /proc"
)


def test_crash_loop_loses_nothing_and_bounds_duplicates(
    broker: LocalBroker, tmp_path: Path
) -> None:
    phases = [
        Phase("thread", 3),
        Phase("process", 1, ("--executor", "process", "--workers", "2")),
    ]
    report = crash_loop(broker, Workload(4000), phases, tmp_path, concurrency=8,
                        delay=(0.3, 1.5))  # fmt: skip
    tally = report.tally
    assert tally is not None
    assert tally.missing == 0, report.lines()
    assert tally.unexpected == 0, report.lines()
    assert report.final_runs > 0, "the kills must land mid-run for this test to mean anything"
    for kill in report.kills:
        assert kill.above_committed <= report.bound(kill), report.lines()
    # Every repeat is a record the killed consumer ran without its offset being committed.
    assert tally.duplicates <= sum(k.above_committed for k in report.kills), report.lines()


def test_rebalance_churn_keeps_order_and_leaves_no_consumer_stuck(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # settle_timeout under pytest's 180 s: a stuck run ends with the reader's own account
    # (records reported, offsets read) instead of a bare timeout
    report = churn(broker, Workload(3000, keys=200), tmp_path, events=4, interval=(1.5, 2.5),
                   concurrency=4, settle_timeout=90)  # fmt: skip
    assert report.tally is not None and report.order is not None
    assert report.tally.missing == 0, report.lines()
    assert report.order.violations == [], report.order.violations[:5]
    assert report.order.outside == [], report.order.outside[:5]
    assert report.order.sequences > 100, report.lines()  # the order check had work to do
    assert report.uncommitted == 0, report.lines()
    assert set(report.exit_codes.values()) == {0}, report.exit_codes
    assert report.after_churn > 0, "the churn must happen mid-run for this test to mean anything"


def test_processing_resumes_after_every_connection_is_dropped(tmp_path: Path) -> None:
    report = connection_loss(Workload(3000), tmp_path, outage=3.0, settle_timeout=90)
    assert report.tally.missing == 0, report.lines()
    assert report.refused > 0, "the consumer should have tried to reconnect during the outage"
    assert report.resumed_after < 30, report.lines()
    assert report.uncommitted == 0, report.lines()
    assert report.exit_code == 0, (tmp_path / "stderr").read_text()


def test_a_partition_paused_for_backpressure_fetches_again_after_a_rebalance(
    broker: LocalBroker,
) -> None:
    # Regression: the client keeps a partition's pause through a revoke or a loss. A resume
    # issued while the partition was unassigned reached nothing, so when it came back the
    # consumer never fetched it again (found by the connection-loss scenario).
    topic, group = broker.new_topic("stall-rebalance", partitions=2), f"g-{uuid.uuid4().hex[:8]}"
    produce_keyed(broker, topic, 300, keys=30)
    gate = threading.Event()
    done: set[tuple[int, int]] = set()

    def blocked(record: Record) -> None:
        gate.wait(30)
        done.add((record.partition, record.offset))

    def free(record: Record) -> None:
        done.add((record.partition, record.offset))

    first = consumer(broker, blocked, topic, group, concurrency=2, max_buffered=20,
                     revoke_timeout=0.2)  # fmt: skip
    with first:
        wait_until(lambda: first.stats().paused, 30, "the first consumer to pause (buffer full)")
        with consumer(broker, free, topic, group):
            wait_until(lambda: first.stats().rebalances >= 2, 30, "a second assignment")
            gate.set()
            wait_until(lambda: len(done) == 300, 30, "every record processed")


def test_a_broker_that_never_answers_fails_within_connect_timeout() -> None:
    with socket.socket() as silent:  # the kernel accepts connections; nothing ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(100)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = run_cli(
            ["run", REPORT, "-b", address, "-g", "g", "-t", "t", "--connect-timeout", "3"],
            cli_env(),
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 3 + 7, f"took {elapsed:.1f} s"  # the timeout, plus start-up and imports
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert address in errors[0] and "--connect-timeout" in errors[0]
    assert "Traceback" not in result.stderr


def test_memory_stays_bounded_with_a_backlog(broker: LocalBroker, tmp_path: Path) -> None:
    report = memory_run(broker, 150_000, tmp_path, seconds=15)
    series = report.series
    assert series.peak < LIMIT, report.lines()
    assert report.processed > 30_000, report.lines()  # it worked through the backlog
    # Level, not growing: the second half never goes far above the first half's peak.
    half = series.samples[-1][0] / 2
    assert series.window_max(half, 1e9) < series.window_max(0, half) + 30 * MB, report.lines()
