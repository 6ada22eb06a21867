"""concurrency="auto" through the engine: settings, the CLI, the pacer the control loop
calls, and a run over the in-memory cluster."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from parafka import ConfigError, Overloaded, ParallelConsumer, Record
from parafka.core.flow import MOST_BUFFERED
from parafka.core.outcomes import NOT_RUN
from parafka.engine.pacing import Pacer
from parafka.engine.settings import Settings
from parafka.executors.chunks import Chunk
from parafka.executors.threads import ThreadExecutor
from parafka.testing import InMemoryCluster
from parafka.testing.memory import VirtualClock
from tests.unit.cli.test_cli_usage import BASE, HANDLER, usage_error


def settings(**overrides: Any) -> Settings:
    return Settings("h:1", "g", ("t",), **overrides)


def test_auto_is_bounded_by_min_and_max_concurrency() -> None:
    s = settings(concurrency="auto", min_concurrency=2, max_concurrency=40)
    assert s.adaptive and s.concurrency_cap == 40
    assert s.buffer_limit == 1000
    assert not settings(concurrency=8).adaptive and settings(concurrency=8).concurrency_cap == 8


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"concurrency": "fast"}, "concurrency='fast' is invalid: use a whole number >= 1 or"),
        ({"concurrency": 0}, "concurrency=0 is invalid"),
        ({"min_concurrency": 0}, "min_concurrency=0 is invalid"),
        ({"concurrency": "auto", "min_concurrency": 9, "max_concurrency": 8}, "raise --max"),
    ],
)
def test_bad_concurrency_settings_name_the_value_and_the_fix(
    overrides: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        settings(**overrides)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-c", "lots"], "'lots' is not a whole number >= 1 or 'auto': use -c 16 or -c auto"),
        (["-c", "0"], "use -c 16 or -c auto"),
        (["-c", "auto", "--min-concurrency", "0"], "--min-concurrency"),
        (["-c", "auto", "--min-concurrency", "50", "--max-concurrency", "10"], "min_concurr"),
    ],
)
def test_the_cli_refuses_bad_concurrency_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert needle in usage_error(capsys, ["run", HANDLER, *BASE, *argv])


class Running:
    def __init__(self, in_flight: int) -> None:
        self.in_flight = in_flight


def test_the_pacer_feeds_each_chunk_to_the_limiter() -> None:
    clock = VirtualClock()
    pacer = Pacer(settings(concurrency="auto", max_concurrency=64), clock)
    assert pacer.adaptive is not None
    start = pacer.limit
    assert pacer.window(1000) == start and pacer.window(3) == 3
    for _ in range(30):  # a steady 20 ms per record with the limit in use: it grows
        entries: list[Any] = [object() for _ in range(pacer.limit)]
        pacer.dispatched([entries])
        clock.advance(0.02)
        for entry in entries:
            pacer.completed([entry], None, Running(len(entries)))
    assert pacer.limit > start
    grown = pacer.limit
    entries = [object() for _ in range(3)]
    pacer.dispatched([entries])
    clock.advance(0.02)
    outcomes: list[Any] = [None, (None, Overloaded("429")), NOT_RUN]
    pacer.completed(entries, outcomes, Running(3))
    assert pacer.limit == grown - 1  # the failure's slot is taken away


def test_a_fixed_concurrency_passes_the_capacity_through() -> None:
    pacer = Pacer(settings(concurrency=8), VirtualClock())
    assert pacer.adaptive is None and pacer.limit == 8 and pacer.window(200) == 200
    pacer.dispatched([[object()]])  # type: ignore[list-item]
    pacer.completed([object()], None, Running(1))  # type: ignore[list-item]


def test_auto_runs_over_the_in_memory_cluster_within_its_bounds() -> None:
    cluster = InMemoryCluster()
    cluster.create_topic("in", 4)
    for i in range(400):
        cluster.produce("in", b"x", key=str(i).encode())
    lock = threading.Lock()
    running, most = 0, 0
    refused = {7, 99}

    def handle(record: Record) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.001)
            if record.offset in refused and record.attempt == 1:
                raise Overloaded("429 Too Many Requests")
        finally:
            with lock:
                running -= 1

    pc = ParallelConsumer(
        handle,
        bootstrap_servers="memory",
        group_id="g",
        topics=["in"],
        ordering="unordered",
        concurrency="auto",
        min_concurrency=2,
        max_concurrency=12,
        kafka=cluster,
    )
    stats = pc.run(until_idle=0.3)
    assert stats.processed == 400
    assert stats.failed == stats.retried >= 4  # offsets 7 (and 99 where it exists) once each
    assert 2 <= stats.concurrency_limit <= 12
    assert most <= 12


def test_the_adaptive_limit_counts_handler_turns_not_records() -> None:
    """A fast handler runs chunks of many records, one after another in one handler's
    turn: the limit allows that many chunks, not that many records (a window of one record
    per slot spent the time in hand-overs: 12,000 records/s where a fixed concurrency gave
    57,000), and the limit in use is judged in chunks."""
    clock = VirtualClock()
    pacer = Pacer(settings(concurrency="auto", max_concurrency=64), clock)
    assert pacer.adaptive is not None
    start = pacer.limit
    assert pacer.window(100_000, 50) == start * 50
    assert pacer.window(120, 50) == 120  # never past what the executor can take
    for _ in range(30):  # every slot holds a chunk of 50 records: the limit is in use
        entries: list[Any] = [object() for _ in range(pacer.limit * 50)]
        pacer.window(100_000, 50)
        pacer.dispatched([entries])
        clock.advance(0.02 * 50)
        pacer.completed(entries, None, Running(len(entries)))
    assert pacer.limit > start


def test_a_thread_executor_spreads_a_hand_over_over_the_limit_only() -> None:
    executor = ThreadExecutor(16)  # not started: its queue keeps what is handed over
    executor._mean_seconds = 1e-6  # a fast handler: chunks of many records
    executor._unordered = True
    runs: list[Any] = [[Record("t", 0, o, None) for o in range(400)]]

    def chunks() -> list[int]:
        sizes = []
        while not executor._queue.empty():
            chunk = executor._queue.get_nowait()
            assert isinstance(chunk, Chunk)
            sizes.append(len(chunk.units))
        return sizes

    executor.submit(runs)
    assert chunks() == [25] * 16
    executor.active = 2
    executor.submit(runs)
    assert chunks() == [200, 200]


def test_without_max_buffered_the_buffer_follows_a_fast_loops_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 10 s of records instead of 50 ms: any machine's rate grows the limit (the arithmetic
    # is tests/unit/core/test_flow.py's), so this checks that the loop feeds it its rate.
    monkeypatch.setattr("parafka.core.flow.BUFFER_SECONDS", 10.0)
    cluster = InMemoryCluster()
    cluster.create_topic("in", 2)
    for i in range(40_000):
        cluster.produce("in", b"x", key=str(i % 100).encode())

    def run(**overrides: Any) -> int:
        pc = ParallelConsumer(
            lambda record: None,
            bootstrap_servers="memory",
            group_id=f"g{len(overrides)}",
            topics=["in"],
            kafka=cluster,
            **overrides,
        )
        stats = pc.run(until_idle=0.3)
        assert stats.processed == 40_000
        return stats.buffer_limit

    assert 1000 < run() <= MOST_BUFFERED  # from the default, for 16 workers (flow.py)
    assert run(max_buffered=500) == 500  # a limit the user set stays
