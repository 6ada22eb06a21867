"""`parafka top` without a broker: the JSON of /api/stats turned back into the snapshot the
terminal panel draws, and the answers to bad input (one line, an exit code, no traceback)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from rich.console import Console

from parafka.cli.views.history import History
from parafka.cli.views.terminal import render
from parafka.cli.views.top import Remote, partition_from, stats_from
from parafka.cli.views.web import Dashboard
from parafka.cli.views.webdata import partition_json, sample_json
from parafka.core.stats import PartitionStats, Stats
from tests.unit.samples import busy_stats


def text(history: History) -> str:
    console = Console(width=140, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render(history, title="t"))
    return console.export_text()


PART = PartitionStats("orders", 3, 100, 104, 180, 80, 4, 1, 76, 2, 1, 1, 104, 12.5, 3, 120, False)
STATS = busy_stats(processed=1000, in_flight=1, queued=2, concurrency_limit=8, partitions=(PART,))


def test_the_json_round_trip_draws_the_same_panel() -> None:
    local = History(keep=10)
    local.add(Stats(), 0.0, 0.0)
    sample = local.add(STATS, 2.0, 2.0)
    remote = History(keep=10)
    remote.add(Stats(), 0.0, 0.0)
    remote.add(stats_from(sample_json(sample), (partition_from(partition_json(PART)),)), 2.0, 2.0)
    assert text(remote) == text(local)
    assert "orders[3]" in text(remote) and "1,000" in text(remote)


def test_top_shows_the_records_held_of_the_buffer_limit() -> None:
    full = replace(STATS, paused_partitions=1, buffer_limit=3)
    local = History(keep=10)
    sample = local.add(full, 2.0, 2.0)
    remote = History(keep=10)
    remote.add(stats_from(sample_json(sample), (partition_from(partition_json(PART)),)), 2.0, 2.0)
    assert "3 of 3 records held" in text(remote)


class Fixed:
    def stats(self) -> Stats:
        return STATS


def test_remote_reads_a_dashboard_and_asks_only_for_new_samples() -> None:
    with Dashboard(Fixed(), port=0, title="group g", sample_every=0.05) as board:
        remote = Remote(board.url)
        assert remote.poll() >= 1 and remote.title == "group g"
        latest = remote.history.latest
        assert latest is not None and latest.stats.partitions == (PART,)
        assert latest.stats.processed == 1000


def top(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parafka.cli", "top", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_nothing_answering_is_one_line_and_exit_1() -> None:
    result = top("--url", "http://127.0.0.1:9", "--once")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("parafka: error: no answer from http://127.0.0.1:9")


@pytest.fixture
def not_parafka() -> Iterator[str]:
    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_something_else_answering_is_one_line_and_exit_1(not_parafka: str) -> None:
    result = top("--url", not_parafka, "--once")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "answered HTTP 404" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [["--url", "localhost:8080"], ["--interval", "0"]])
def test_bad_input_is_a_usage_error(args: list[str]) -> None:
    result = top(*args, "--once")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("parafka: error:")


def test_the_panel_says_which_partitions_an_operator_paused() -> None:
    history = History(keep=10)
    paused = Stats(partitions=(PART,), paused_partitions=1, user_paused=(("orders", 3),))
    history.add(paused, 0.0, 0.0)
    assert "paused: 1 of 1 partitions (by an operator: orders[3])" in text(history)


def test_top_reads_the_operators_pauses_from_the_control_block() -> None:
    class Paused:
        def stats(self) -> Stats:
            return Stats(partitions=(PART,), paused_partitions=1, user_paused=(("orders", 3),))

    with Dashboard(Paused(), port=0, sample_every=0.05) as board:
        remote = Remote(board.url)
        remote.poll()
        assert "by an operator: orders[3]" in text(remote.history)


ADVICE = (
    "this process uses 98% of a core at 90,000 records/s while about 1.0 of 2 cores are "
    "idle; handlers take 7 us a record: `parafka run --processes auto` (2 here: one per "
    "core), or 2 processes with a ParallelConsumer each in the same group, would use them"
)


def test_top_shows_the_consumers_advice_as_the_run_panel_does() -> None:
    advised = replace(STATS, advice=(ADVICE,))

    class Advised:
        def stats(self) -> Stats:
            return advised

    local = History(keep=10)
    local.add(advised, 0.0, 0.0)
    assert "advice: this process uses 98% of a core" in text(local)
    with Dashboard(Advised(), port=0, sample_every=0.05) as board:
        remote = Remote(board.url)
        remote.poll()
        latest = remote.history.latest
        assert latest is not None and latest.stats.advice == (ADVICE,)
        assert "advice: this process uses 98% of a core" in text(remote.history)
    quiet = History(keep=10)
    quiet.add(STATS, 0.0, 0.0)
    assert "advice" not in text(quiet)  # nothing to say: no line
