"""Exactly-once: outputs and offsets in one transaction; a read_committed reader sees
every input once, across restarts and kill -9."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from parafka.testing import LocalBroker

from .helpers import committed, consumer, end_offsets, produce_keyed, wait_until
from .test_cli import HANDLERS, cli_env, run_args, run_cli, started_cli

ECHO = f"{HANDLERS / 'echo_source.py'}:handle"


def sources(broker: LocalBroker, out: str, at_least: int) -> Counter[tuple[int, int]]:
    """(partition, offset) of each source record, counted over the output topic as a
    read_committed reader sees it (the client's default isolation level)."""
    found = broker.consume_all(out, expected=at_least, timeout=30)
    return Counter((d["p"], d["o"]) for d in (json.loads(m.value() or b"{}") for m in found))


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_every_input_once_in_the_output(broker: LocalBroker, executor: str) -> None:
    topic, out = broker.new_topic("eos", 4), broker.new_topic("eos-out", 2)
    produce_keyed(broker, topic, 1000, keys=50)
    handler = "tests.handlers.echo_source:handle" if executor == "process" else ECHO_FN
    pc = consumer(broker, handler, topic, "g-" + uuid.uuid4().hex[:8], output_topic=out,
                  exactly_once=True, executor=executor, commit_interval=0.3,
                  workers=2 if executor == "process" else None)  # fmt: skip
    stats = pc.run(until_idle=1.5)
    assert stats.processed == 1000 and stats.commits >= 1
    seen = sources(broker, out, 1000)
    assert sum(seen.values()) == 1000 and set(seen.values()) == {1}
    group = pc.settings.group_id
    assert committed(broker, group, topic, 4) == end_offsets(broker, topic, 4, 1000)


def _echo(record):  # type: ignore[no-untyped-def]
    from tests.handlers.echo_source import handle

    return handle(record)


ECHO_FN = _echo


def transactions(logs: Path) -> int:
    """How many transactions the CLI run logging to `logs` has committed."""
    return (logs / "stderr").read_text(errors="replace").count("transaction committed")


def run_and_kill(args: list[str], logs: Path, delay: float) -> None:
    """Start the CLI, let it commit a few transactions, kill -9 it `delay` s after one."""
    with started_cli(args, cli_env(), logs) as proc:
        wait_until(lambda: transactions(logs) >= 2, 60, "two transactions")
        before = transactions(logs)
        wait_until(lambda: transactions(logs) > before, 10, "the next transaction")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def test_exactly_once_survives_kill_9(broker: LocalBroker, tmp_path: Path) -> None:
    """kill -9 mid-run, three times, then run to the end: each input once in the output.

    The local broker shows the records of aborted transactions to read_committed readers
    (it sends no aborted-transaction list), so the kills land between two transaction
    bursts (parafka produces a transaction's outputs only when it commits it); records in
    flight, held outputs and uncommitted progress are still lost at every kill.
    """
    total = 20_000
    topic, out = broker.new_topic("eos-kill", 4), broker.new_topic("eos-kill-out", 2)
    produce_keyed(broker, topic, total, keys=100)
    group = f"g-{uuid.uuid4().hex[:8]}"
    args = run_args(broker, ECHO, topic, group, "-o", out, "--exactly-once", "-c", "4",
                    "--commit-interval", "1", "--log-level", "DEBUG")  # fmt: skip
    rng = random.Random(7)
    for kill in range(3):
        run_and_kill(args, tmp_path / f"run{kill}", rng.uniform(0.0, 0.4))
    result = run_cli([*args, "--until-idle", "3"], cli_env(), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = sources(broker, out, total)
    missing = total - len(seen)
    duplicated = sum(count - 1 for count in seen.values())
    assert (missing, duplicated) == (0, 0)
    assert committed(broker, group, topic, 4) == end_offsets(broker, topic, 4, total)
