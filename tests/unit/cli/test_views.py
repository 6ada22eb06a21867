"""The views' pure parts: stats history, derived figures, the terminal panel, the JSON."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console

from parafka.cli.views.history import History, lag_parts, progress, remaining, total_lag_parts
from parafka.cli.views.terminal import LiveView, render
from parafka.cli.views.webdata import payload
from parafka.core.recent import RecentDeadLetters
from parafka.core.record import Record
from parafka.core.stats import PartitionStats, Stats
from tests.unit.samples import busy_stats


@dataclass(frozen=True)
class PlainPartition:
    """A partition snapshot without the lag parts (as PartitionStats first was)."""

    topic: str
    partition: int
    committed: int | None
    position: int | None
    high_watermark: int | None
    lag: int | None
    pending: int
    done_above: int


@dataclass(frozen=True)
class PartsPartition(PlainPartition):
    """A partition snapshot that carries the lag parts and the oldest record's age."""

    not_fetched: int | None = None
    queued: int = 0
    in_flight: int = 0
    done_not_committed: int = 0
    oldest_unfinished: int | None = None
    oldest_age: float | None = None


def part(p: int, lag: int, *, topic: str = "t", high: int = 100) -> Any:
    return PlainPartition(topic, p, high - lag, high - lag, high, lag, 0, 0)


def text_of(renderable: object, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


# -- history ----------------------------------------------------------------------------


def test_rate_is_measured_over_the_window() -> None:
    history = History(keep=60, window=2.0)
    history.add(Stats(processed=0), at=10.0, wall=0)
    history.add(Stats(processed=100), at=11.0, wall=0)
    sample = history.add(Stats(processed=300), at=12.0, wall=0)
    assert sample.rate == 150.0  # 300 records over 2 s, not the last second's 200


def test_rate_of_the_first_sample_is_zero_and_never_negative() -> None:
    history = History(keep=60)
    assert history.add(Stats(processed=50), at=1.0, wall=0).rate == 0.0
    assert history.add(Stats(processed=10), at=2.0, wall=0).rate == 0.0


def test_history_keeps_only_its_window_and_numbers_samples() -> None:
    history = History(keep=5)
    for second in range(10):
        history.add(Stats(processed=second), at=float(second), wall=float(second))
    assert len(history) == 6  # seconds 4..9
    assert [s.seq for s in history.since(7)] == [8, 9]
    assert history.since(-1)[0].seq == 4


# -- figures ----------------------------------------------------------------------------


def test_plain_snapshots_have_no_lag_parts() -> None:
    stats = Stats(partitions=(part(0, 5),))
    assert lag_parts(stats.partitions[0]) is None
    assert total_lag_parts(stats) is None


def test_lag_parts_are_read_when_the_snapshot_carries_them() -> None:
    a = PartsPartition("t", 0, 10, 12, 30, 20, 5, 1, 13, 3, 2, 2, 12, 4.5)
    b = PartsPartition("t", 1, 0, 0, 5, 5, 0, 0, None, 0, 0, 0)
    stats = Stats(partitions=(a, b))
    assert lag_parts(a) == {"not_fetched": 13, "queued": 3, "in_flight": 2, "done_not_committed": 2}
    assert lag_parts(b) == {"not_fetched": 0, "queued": 0, "in_flight": 0, "done_not_committed": 0}
    assert total_lag_parts(stats) == {
        "not_fetched": 13,
        "queued": 3,
        "in_flight": 2,
        "done_not_committed": 2,
    }
    assert remaining(a) == 18  # not fetched + queued + in flight


def test_remaining_without_parts_leaves_out_what_is_done() -> None:
    # committed 30, lowest unfinished 40, 10 done above it, log end 100: 50 to go.
    p = PlainPartition("t", 0, 30, 40, 100, 70, 20, 10)
    assert remaining(p) == 50
    assert progress(Stats(processed=40, partitions=(p,))) == (40, 90)
    unknown = PlainPartition("t", 1, None, None, None, None, 0, 0)
    assert remaining(unknown) == 0
    not_started = PlainPartition("t", 2, None, None, 80, None, 0, 0)  # no commit, no record
    assert remaining(not_started) == 80
    fetch_unknown = PartsPartition("t", 3, None, 10, 50, None, 4, 0, None, 3, 1, 0)
    assert remaining(fetch_unknown) == 40  # not fetched unknown: from the watermark


# -- terminal panel ---------------------------------------------------------------------


def test_panel_shows_rate_totals_errors_and_lag_per_partition() -> None:
    history = History(keep=10)
    history.add(Stats(processed=1000), at=0.0, wall=0)
    stats = busy_stats(
        processed=3000,
        failed=4,
        retried=3,
        in_flight=16,
        queued=250,
        waiting_retry=2,
        commits=7,
        paused_partitions=0,
        partitions=(part(0, 12), part(1, 4321)),
    )
    history.add(stats, at=2.0, wall=0)
    text = text_of(render(history, title="parafka · group g"))
    assert "parafka · group g" in text
    assert "records/s 1,000" in text
    assert "processed 3,000" in text
    assert "in flight 16" in text
    assert "queued 250" in text
    assert "waiting retry 2" in text
    assert "failed 4" in text and "retried 3" in text and "dead-lettered 1" in text
    assert "lag 4,333" in text
    rows = [line for line in text.splitlines() if "t[" in line]
    assert "t[1]" in rows[0] and "4,321" in rows[0]  # largest lag first
    assert "t[0]" in rows[1]
    assert "%" not in text  # no progress bar unless asked for


def test_panel_before_any_partition_and_before_any_sample() -> None:
    assert "no partition assigned yet" in text_of(render(History(keep=10)))


def test_panel_says_which_partitions_are_paused() -> None:
    history = History(keep=10)
    parts = tuple(part(p, 1) for p in range(6))
    history.add(Stats(paused_partitions=2, partitions=parts), at=0, wall=0)
    assert "paused: 2 of 6 partitions (sharing the buffer)" in text_of(render(history))
    full = Stats(paused_partitions=6, paused=True, partitions=parts, queued=1500, in_flight=500)
    history.add(replace(full, buffer_limit=2000), at=1, wall=1)
    text = text_of(render(history))
    assert "paused: 6 of 6 partitions (the buffer is full); 2,000 of 2,000 records held" in text


def test_panel_lists_the_largest_lags_and_sums_the_rest() -> None:
    history = History(keep=10)
    parts = tuple(part(p, p + 1) for p in range(25))
    history.add(Stats(partitions=parts), at=0, wall=0)
    text = text_of(render(history))
    rows = [line for line in text.splitlines() if "t[" in line]
    assert len(rows) == 20 and "t[24]" in rows[0]
    assert not any(f"t[{p}]" in row for row in rows for p in range(5))
    assert "and 5 more partitions (lag 15)" in text  # lags 1..5


def test_progress_bar_counts_processed_against_processed_plus_remaining() -> None:
    history = History(keep=10)
    p = PlainPartition("t", 0, 30, 40, 100, 70, 20, 10)
    history.add(Stats(processed=40, partitions=(p,)), at=0, wall=0)
    text = text_of(render(history, show_progress=True))
    assert "40 / 90  44%" in text


def test_panel_shows_lag_parts_and_the_oldest_record_age_when_known() -> None:
    history = History(keep=10)
    topic = "orders-c3684fe1f4fb"
    a = PartsPartition(topic, 0, 10, 12, 30, 20, 5, 1, 13, 3, 2, 2, 12, 4.5)
    b = PartsPartition(topic, 1, 0, 0, 5, 5, 0, 0, 5, 0, 0, 0)
    history.add(Stats(partitions=(a, b)), at=0, wall=0)
    text = text_of(render(history, show_progress=True), width=120)
    assert "not fetched" in text and "committed" in text and "oldest waits" in text
    row = next(line for line in text.splitlines() if f"{topic}[0]" in line)  # never cut short
    assert row.split("[0]")[1].split()[:7] == ["20", "13", "3", "2", "2", "4.5", "s"]


def test_head_of_line_columns_appear_only_while_they_say_something() -> None:
    """A record waiting for its retry with others behind it, and commit metadata in use or
    over its cap, get their columns; without them the table stays as it was."""
    history = History(keep=10)
    a = PartitionStats("o", 0, 10, 12, 30, 20, 5, 1, 13, 3, 2, 2, 12, 4.5, behind_retry=7)
    b = PartitionStats("o", 1, 0, 0, 5, 5, 0, 0, 5, 0, 0, 0, metadata_throttled=True)
    c = PartitionStats("o", 2, 0, 0, 5, 5, 0, 0, 5, 0, 0, 0, metadata_bytes=840)
    history.add(Stats(partitions=(a, b, c)), at=0, wall=0)
    text = text_of(render(history, show_progress=True), width=160)
    assert "behind retry" in text and "metadata" in text
    rows = {line.split("]")[0].split("[")[-1]: line for line in text.splitlines() if "o[" in line}
    assert "7" in rows["0"].split("4.5 s")[1]
    assert "over cap" in rows["1"] and "840 B" in rows["2"]
    plain = History(keep=10)
    plain.add(Stats(partitions=(PartitionStats("o", 0, 0, 0, 5, 5, 0, 0, 5, 0, 0, 0),)), 0, 0)
    quiet = text_of(render(plain, show_progress=True), width=160)
    assert "behind retry" not in quiet and "metadata" not in quiet


# -- live view --------------------------------------------------------------------------


def test_live_view_prints_log_lines_above_the_panel_and_stops_its_thread() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    counter = iter(range(1_000_000))
    try:
        view = LiveView(lambda: Stats(processed=next(counter)), console, every=0.01)
        with view:
            assert handler.stream is not sys.stderr  # printing through the console
            logging.getLogger("parafka.test").warning("hello above the panel")
            threading.Event().wait(0.1)  # a few redraws
        assert handler.stream is sys.stderr
    finally:
        root.removeHandler(handler)
    assert not [t for t in threading.enumerate() if t.name == "parafka-live"]
    text = out.getvalue()
    assert "LOG hello above the panel" in text
    assert "records/s" in text and "processed" in text


# -- dashboard JSON ---------------------------------------------------------------------


def test_payload_carries_samples_partitions_and_newest_dead_letters_first() -> None:
    history = History(keep=60)
    history.add(Stats(processed=10), at=0.0, wall=1000.0)
    latest = history.add(
        Stats(processed=30, dead_lettered=2, partitions=(part(0, 1), part(1, 9))),
        at=1.0,
        wall=1001.0,
    )
    letters = RecentDeadLetters(keep=2)
    for offset in range(3):
        letters.add(Record("t", 0, offset, key=b"k"), ValueError(f"bad {offset}"))
    doc = payload(history.since(0), latest, letters.snapshot(), title="x", keep=60)
    json.dumps(doc)  # serialisable as is
    assert doc["latest_seq"] == 1
    assert [s["processed"] for s in doc["samples"]] == [30]
    sample = doc["samples"][0]
    assert sample["rate"] == 20.0 and sample["dead_lettered"] == 2 and sample["lag"] == 10
    assert sample["lag_parts"] is None
    assert [p["partition"] for p in doc["partitions"]] == [1, 0]
    assert [e["offset"] for e in doc["dead_letters"]] == [2, 1]  # bounded, newest first
    assert doc["dead_letters"][0]["error"] == "ValueError: bad 2"
    assert doc["dead_letters"][0]["key"] == "k"
    assert payload([], None, None, title="x", keep=60)["dead_letters"] is None
    assert doc["advice"] == [] and payload([], None, None, title="x", keep=60)["advice"] == []
    advised = history.add(replace(latest.stats, advice=("use --processes auto",)), 2.0, 1002.0)
    assert payload([], advised, None, title="x", keep=60)["advice"] == ["use --processes auto"]


def test_dead_letter_events_are_short() -> None:
    letters = RecentDeadLetters()
    letters.add(Record("t", 3, 7, key=None), RuntimeError("x" * 1000))
    (event,) = letters.snapshot()
    assert event.key is None and event.partition == 3 and event.attempts == 1
    assert len(event.error) == 200 and event.error.endswith("…")
