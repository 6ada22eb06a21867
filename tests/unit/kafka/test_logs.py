"""Folding repeated log lines (parafka.kafka.logs) and what the CLI's log handler shows."""

from __future__ import annotations

import io
import logging

from parafka.cli.common import log_handler
from parafka.kafka.logs import QuietRepeats


def _record(message: str, level: int = logging.WARNING, name: str = "parafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_a_repeated_line_is_shown_once_per_window_with_its_count() -> None:
    now = [0.0]
    quiet = QuietRepeats(window=30.0, clock=lambda: now[0])
    line = "Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)"
    assert quiet.filter(_record(line))
    now[0] = 1.0
    assert not quiet.filter(_record(line.replace("0ms", "3ms")))  # timing differs: a repeat
    now[0] = 31.0
    shown = _record(line)
    assert quiet.filter(shown)
    assert shown.getMessage().endswith("(repeated 1 more times)")


def test_lines_below_min_level_always_pass() -> None:
    quiet = QuietRepeats(min_level=logging.WARNING, clock=lambda: 0.0)
    assert all(quiet.filter(_record("assigned t[0]", logging.INFO)) for _ in range(3))
    assert quiet.filter(_record("commit failed"))
    assert not quiet.filter(_record("commit failed"))


def test_the_cli_shows_every_rebalance_and_folds_repeated_warnings() -> None:
    # A partition assigned, revoked and assigned again within seconds (rebalance churn):
    # every line is a state change an operator needs; folding hid the second "assigned".
    stream = io.StringIO()
    handler = log_handler("INFO", stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for message in ["assigned t[0]", "revoked t[0]", "assigned t[0]"]:
        handler.handle(_record(message, logging.INFO))
    for _ in range(3):
        handler.handle(_record("kafka: broker down"))
    assert stream.getvalue().splitlines() == [
        "assigned t[0]",
        "revoked t[0]",
        "assigned t[0]",
        "kafka: broker down",
    ]
