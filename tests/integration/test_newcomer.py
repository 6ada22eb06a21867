"""The first hour of a newcomer (issue 13), as they would meet it: the CLI on a terminal,
a real local broker. Every wait has a deadline."""

from __future__ import annotations

import time
from pathlib import Path

from parafka.testing import LocalBroker

from .test_cli import QUICK_GROUP, cli_env, run_cli
from .test_views_cli import run_on_terminal

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
SUBSCRIPT_INT = f"{HANDLERS / 'newcomer.py'}:subscript_int"
RETURNS_OUTPUT = f"{HANDLERS / 'newcomer.py'}:returns_output"
TWO_ARGUMENTS = f"{HANDLERS / 'newcomer.py'}:two_arguments"


def _log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]


def test_a_handler_that_does_not_match_the_data_says_where_in_a_few_lines(
    broker: LocalBroker,
) -> None:
    """Items 1, 3 and 11: file:line on the first failure, repeats grouped (not 400+ lines
    for 2,000 records), and a summary line with the active time and the rate."""
    topic = broker.new_topic("mismatch", partitions=2)
    broker.produce(topic, [(str(i).encode(), b"{}") for i in range(2000)])
    args = ["run", SUBSCRIPT_INT, "-b", broker.bootstrap_servers, "-g", f"g-{topic}", "-t", topic,
            "--until-idle", "2", "--on-failure", "skip", "--max-attempts", "2",
            "--retry-backoff", "0", "--no-dashboard", *QUICK_GROUP]  # fmt: skip
    code, text, _ = run_on_terminal(args, cli_env(), timeout=90)
    assert code == 0, text
    warnings = _log_lines(text)
    assert len(warnings) <= 6, "\n".join(warnings)
    assert "TypeError: 'int' object is not subscriptable (at " in warnings[0]
    assert "newcomer.py:11)" in warnings[0]
    assert any("again on" in line and "newcomer.py:11" in line for line in warnings)
    summary = next(line for line in text.splitlines() if line.startswith("parafka: processed"))
    assert " s active (" in summary and "records/s); " in summary and " s in all" in summary
    assert "2000 skipped after failure" in summary


def test_an_output_with_no_topic_stops_at_once(broker: LocalBroker) -> None:
    """Item 2: one attempt, no retry lines, exit 1 with the fix."""
    topic = broker.new_topic("no-output")
    broker.produce(topic, [(b"k", b"v") for _ in range(20)])
    started = time.monotonic()
    result = run_cli(
        [
            "run",
            RETURNS_OUTPUT,
            "-b",
            broker.bootstrap_servers,
            "-g",
            f"g-{topic}",
            "-t",
            topic,
            "--until-idle",
            "20",
            "--no-dashboard",
            *QUICK_GROUP,
        ],
        cli_env(),
        timeout=90,
    )
    assert result.returncode == 1, result.stderr
    assert "retrying" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "failed after 1 attempt(s): NoOutputTopic" in error, result.stderr
    assert "--output-topic" in error
    assert time.monotonic() - started < 60


def test_a_handler_with_the_wrong_signature_is_one_line_and_exit_2() -> None:
    result = run_cli(
        ["run", TWO_ARGUMENTS, "-b", "127.0.0.1:1", "-g", "g", "-t", "t"], cli_env(), timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "two_arguments(record, context) cannot be called" in lines[0]


def test_a_refused_connection_fails_fast() -> None:
    """Item 4: no 15 s of silence when nothing listens at the address."""
    started = time.monotonic()
    result = run_cli(
        ["run", SUBSCRIPT_INT, "-b", "127.0.0.1:1", "-g", "g", "-t", "t", "--no-dashboard"],
        cli_env(),
        timeout=60,
    )
    assert result.returncode == 1
    assert "parafka: error: connection refused by 127.0.0.1:1" in result.stderr
    assert time.monotonic() - started < 10
    assert "Traceback" not in result.stderr


def test_until_idle_gives_up_after_the_join_grace_and_says_what_it_waits_for(
    broker: LocalBroker,
) -> None:
    """Item 4: the default session timeout makes the local broker take about 23 s to
    assign a new group; a 6 s grace ends the run first, after one 'waiting' line."""
    topic = broker.new_topic("join-grace")
    result = run_cli(
        [
            "run",
            SUBSCRIPT_INT,
            "-b",
            broker.bootstrap_servers,
            "-g",
            f"g-{topic}",
            "-t",
            topic,
            "--until-idle",
            "1",
            "--join-grace",
            "6",
            "--no-dashboard",
        ],
        cli_env(),
        timeout=90,
    )
    assert result.returncode == 1, result.stderr
    assert f"waiting for group 'g-{topic}' to assign partitions of {topic}" in result.stderr
    assert "-X session.timeout.ms=6000" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("parafka: error: no partitions assigned by group"), last
    assert "--join-grace 6 s" in last


def test_produce_and_tail_round_trip(broker: LocalBroker, tmp_path: Path) -> None:
    """Item 9: data in one command, and a look at a topic."""
    topic = broker.new_topic("produced", partitions=2)
    b = ["-b", broker.bootstrap_servers]
    made = run_cli(["produce", topic, *b, "--generate", "names", "--count", "50"], cli_env(), 60)
    assert made.returncode == 0, made.stderr
    assert f"produced 50 records to {topic}" in made.stderr
    lines = tmp_path / "lines.txt"
    lines.write_text("alice:hello\nbob:world\n", encoding="utf-8")
    sent = run_cli(["produce", topic, *b, "-f", str(lines), "-K", ":"], cli_env(), 60)
    assert sent.returncode == 0, sent.stderr
    shown = run_cli(["tail", topic, *b, "--from-beginning", "--exit-at-end"], cli_env(), 60)
    assert shown.returncode == 0, shown.stderr
    rows = shown.stdout.splitlines()
    assert len(rows) == 52
    assert any(row.split("\t")[1:] == ["alice", "hello"] for row in rows)
    assert sum('"first_name"' in row for row in rows) == 50
    first = run_cli(["tail", topic, *b, "--from-beginning", "-n", "3"], cli_env(), 60)
    assert first.returncode == 0 and len(first.stdout.splitlines()) == 3


def test_produce_progress_bar_on_a_terminal(broker: LocalBroker) -> None:
    topic = broker.new_topic("progress")
    code, text, _ = run_on_terminal(
        [
            "produce",
            topic,
            "-b",
            broker.bootstrap_servers,
            "--generate",
            "sleep:1:2",
            "--count",
            "300",
            "--rate",
            "1000",
        ],
        cli_env(),
        timeout=60,
    )
    assert code == 0, text
    assert "producing" in text and "300/300" in text
