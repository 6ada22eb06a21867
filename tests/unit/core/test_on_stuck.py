"""--on-stuck: which workers are hung (pure), the settings, and the process executor
replacing a worker whose record hangs, over the in-memory cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parafka import ConfigError, ParallelConsumer
from parafka.core.errors import RecordParked, RecordStuck
from parafka.core.retry import RetryPolicy
from parafka.core.stall import StallWatch
from parafka.engine.settings import Settings
from parafka.testing import InMemoryCluster
from tests.unit.cli.test_cli_usage import BASE, HANDLER, usage_error

HANDLERS = Path(__file__).resolve().parents[2] / "handlers" / "hang_stuck.py"


def test_a_worker_is_hung_once_its_progress_stands_still_for_the_threshold() -> None:
    watch = StallWatch(after=2.0)
    assert not watch.hung(0, (5, 1), 0.0)
    assert not watch.hung(0, (5, 2), 1.5)  # the next record started: progress
    assert not watch.hung(0, (5, 2), 3.0)
    assert watch.hung(0, (5, 2), 3.5)  # 2 s on the same call
    assert not watch.hung(0, (5, 2), 4.0)  # one verdict per stall
    assert not watch.hung(1, (-1, 0), 0.0) and not watch.hung(1, (-1, 0), 100.0)  # idle


def test_only_a_parked_record_skips_its_retries() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert policy.should_retry(1, RecordStuck("slow"))
    assert not policy.should_retry(1, RecordParked("slow"))


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"on_stuck": "kill"}, "unknown on_stuck 'kill': use one of report, restart-worker"),
        ({"on_stuck": "park"}, "needs executor='process'"),
    ],
)
def test_bad_on_stuck_settings(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings("h:1", "g", ("t",), **overrides)


def test_the_cli_refuses_restart_worker_without_processes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = usage_error(capsys, ["run", HANDLER, *BASE, "--on-stuck", "restart-worker"])
    assert "use --executor process, an async def handler, or --on-stuck report" in line


def run(function: str, on_stuck: str, **overrides: Any) -> tuple[Any, InMemoryCluster]:
    cluster = InMemoryCluster()
    cluster.create_topic("in", 2)
    cluster.create_topic("dlq", 1)
    for partition in (0, 1):
        for offset in range(8):
            cluster.produce("in", b"v", key=b"k%d" % offset, partition=partition)
    pc = ParallelConsumer(
        f"{HANDLERS}:{function}",
        bootstrap_servers="memory",
        group_id="g",
        topics="in",
        executor="process",
        workers=1,
        stuck_after=0.5,
        on_stuck=on_stuck,
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.01),
        shutdown_timeout=2.0,
        kafka=cluster,
        **overrides,
    )
    return pc.run(until_idle=1.0), cluster


def test_restart_worker_replaces_the_worker_and_retries_the_record() -> None:
    stats, _ = run("hang_once", "restart-worker")
    assert stats.processed == 16  # offset 3 of partition 0 too, on its second attempt
    assert stats.stuck_replaced == 1
    assert stats.failed == 1 and stats.retried == 1


def test_park_replaces_the_worker_and_dead_letters_the_record_at_once() -> None:
    stats, cluster = run("hang_always", "park", dead_letter_topic="dlq")
    assert stats.processed == 15 and stats.dead_lettered == 1
    assert stats.stuck_replaced == 1 and stats.retried == 0
    [letter] = cluster.messages("dlq", 0)
    headers = dict(letter.headers() or [])
    assert any(b"RecordParked" in value for value in headers.values() if value), headers


def test_async_handlers_are_cancelled_and_retried_or_parked() -> None:
    import asyncio

    from parafka import Record

    async def hang_once(record: Record) -> None:
        if (record.partition, record.offset) == (0, 3) and record.attempt == 1:
            await asyncio.sleep(3600)

    async def times_out(record: Record) -> None:
        if (record.partition, record.offset) == (1, 2) and record.attempt == 1:
            raise TimeoutError("the handler's own timeout")  # not a stuck record

    for handler, on_stuck, expect_stuck in (
        (hang_once, "restart-worker", 1),
        (times_out, "park", 0),
    ):
        cluster = InMemoryCluster()
        cluster.create_topic("in", 2)
        for partition in (0, 1):
            for offset in range(6):
                cluster.produce("in", b"v", key=b"k%d" % offset, partition=partition)
        stats = ParallelConsumer(
            handler,
            bootstrap_servers="memory",
            group_id="g",
            topics="in",
            stuck_after=0.3,
            on_stuck=on_stuck,
            retry=RetryPolicy(max_attempts=3, initial_backoff=0.01),
            kafka=cluster,
        ).run(until_idle=0.5)
        assert stats.processed == 12 and stats.retried == 1
        assert stats.stuck_replaced == expect_stuck
