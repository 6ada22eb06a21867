"""Malformed group ids and topic names: a one-line error and exit 2 before anything connects.

A blank group id used to reach librdkafka, which aborts the whole process on it (exit 134,
an assertion in the client), so the CLI cases run in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parafka import ConfigError, ParallelConsumer
from parafka.kafka.config import consumer_config

SRC = str(Path(__file__).resolve().parents[3] / "src")


def make(group_id: str = "g", topics: list[str] | None = None) -> ParallelConsumer:
    return ParallelConsumer(
        lambda r: None, bootstrap_servers="h:1", group_id=group_id, topics=topics or ["t"]
    )


@pytest.mark.parametrize(
    ("group_id", "needle"),
    [
        ("", "no consumer group"),
        ("   ", "group id '   ' is blank"),
        ("\t", "is blank"),
        (" orders", "use 'orders'"),
        ("orders\n", "use 'orders'"),
        ("ord\x00ers", "control characters"),
    ],
)
def test_a_malformed_group_id_is_refused(group_id: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        make(group_id=group_id)
    with pytest.raises(ConfigError, match=needle):  # `parafka lag` builds this one
        consumer_config("h:1", group_id, {})


def test_ordinary_group_ids_are_accepted() -> None:
    for group_id in ("orders", "team.orders-v2", "a b", "ünïcode", "x" * 300):
        assert make(group_id=group_id).settings.group_id == group_id


@pytest.mark.parametrize("topic", ["my topic", "a/b", "x" * 250, ".", "..", "tab\t"])
def test_an_invalid_topic_name_is_refused(topic: str) -> None:
    with pytest.raises(ConfigError, match="not a valid Kafka topic name"):
        make(topics=[topic])


def test_valid_topic_names_and_patterns_are_accepted() -> None:
    topics = ["orders", "a.b_c-D9", "x" * 249, "^orders-.*"]
    assert make(topics=topics).settings.topics == tuple(topics)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFKA_")}
    env["PYTHONPATH"] = SRC
    return subprocess.run(
        [sys.executable, "-m", "parafka.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("group_id", ["", "  ", " g"])
@pytest.mark.parametrize("command", ["run", "lag"])
def test_the_cli_says_so_in_one_line_with_exit_2(command: str, group_id: str) -> None:
    base = ["-b", "127.0.0.1:1", "-g", group_id, "-t", "topic"]  # port 1: never dialled
    args = ["run", "json:dumps", *base] if command == "run" else ["lag", *base]
    result = _cli(*args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("parafka: error: "), result.stderr
    assert "group" in lines[0] and "-g" in lines[0]
