"""`parafka run --processes N`: a supervisor and N consumer children in one group, run as a
user runs them (real processes, real broker).

Children are found through /proc (Linux). Every process is killed in a `finally`, found by
the test's unique group id in its command line, so none outlives a failed test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from parafka.testing import LocalBroker

from .helpers import wait_until, written_lines
from .test_cli import (
    HANDLERS,
    cli_env,
    error_lines,
    line_count,
    produced,
    run_args,
    started_cli,
    wait_exit,
)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds child processes through Linux /proc"
)

RECORD_PIDS = f"{HANDLERS / 'record_pids.py'}:handle"
# Two records of a partition at a time per child, 5 ms each (partition order): one child
# alone would need seconds for the topic, so both children get a share of the work.
SLOW = ["--ordering", "partition", "-c", "2"]


def processed(path: Path) -> list[tuple[int, int, int]]:
    """The (partition, offset, pid) triples the record_pids handler wrote."""
    lines = written_lines(path)
    return [(int(p), int(o), int(pid)) for p, o, pid in (line.split() for line in lines)]


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (the ppid is the 4th field of /proc/PID/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone
        fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def processes_of(group: str) -> list[int]:
    """Processes (supervisor or children) whose command line names consumer group `group`."""
    needle = group.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"parafka.cli" in cmdline and needle in cmdline:
            found.append(int(entry.name))
    return found


@contextmanager
def supervisor(
    args: list[str], env: dict[str, str], logs: Path, group: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `parafka run ... --processes N`; at the end, kill it and every child of it."""
    try:
        with started_cli(args, env, logs) as proc:
            yield proc
    finally:
        for pid in processes_of(group):  # only if the test failed
            os.kill(pid, signal.SIGKILL)


def test_two_processes_share_the_work_and_exit_0_when_idle(
    broker: LocalBroker, tmp_path: Path
) -> None:
    topic, group = broker.new_topic("procs-idle", partitions=4), f"g-{uuid.uuid4().hex[:8]}"
    expected = produced(broker, topic, 1000, keys=50)
    out = tmp_path / "out.txt"
    args = run_args(broker, RECORD_PIDS, topic, group, *SLOW, "--processes", "2",
                    "--until-idle", "3")  # fmt: skip
    env = cli_env(PARAFKA_TEST_OUT=str(out), PARAFKA_TEST_SLEEP_MS="5")

    with supervisor(args, env, tmp_path / "logs", group) as proc:
        code = wait_exit(proc, 45, tmp_path / "logs")
        stderr = (tmp_path / "logs" / "stderr").read_text()
        assert processes_of(group) == []
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert f"parafka: 2 consumer processes in group {group}" in stderr
    assert stderr.count(") started") == 2, stderr
    assert stderr.count("exited with 0; finished") == 2, stderr
    done = processed(out)
    assert {(p, o) for p, o, _ in done} == expected  # every record, at least once
    by_pid = {pid for _, _, pid in done}
    assert len(by_pid) == 2, f"one process did all the work: {stderr}"


def test_a_killed_child_is_restarted_and_nothing_is_lost(
    broker: LocalBroker, tmp_path: Path
) -> None:
    topic, group = broker.new_topic("procs-kill", partitions=4), f"g-{uuid.uuid4().hex[:8]}"
    expected = produced(broker, topic, 1000, keys=50)
    out = tmp_path / "out.txt"
    # No --until-idle: on the local broker, a rebalance whose leader leaves the group while
    # it runs (a child going idle) never completes, which is not what this test is about.
    args = run_args(broker, RECORD_PIDS, topic, group, *SLOW, "--processes", "2")
    env = cli_env(PARAFKA_TEST_OUT=str(out), PARAFKA_TEST_SLEEP_MS="20")
    logs = tmp_path / "logs"

    def covered() -> bool:
        return {(p, o) for p, o, _ in processed(out)} == expected or proc.poll() is not None

    with supervisor(args, env, logs, group) as proc:
        wait_until(lambda: line_count(out) >= 100 or proc.poll() is not None, 30, "100 records")
        assert proc.poll() is None, (logs / "stderr").read_text()
        children = children_of(proc.pid)
        assert len(children) == 2, children
        os.kill(children[0], signal.SIGKILL)
        # The group waits for the killed member's session to expire, then shares again.
        wait_until(covered, 45, "every record processed")
        assert proc.poll() is None, (logs / "stderr").read_text()
        proc.send_signal(signal.SIGTERM)
        code = wait_exit(proc, 30, logs)
    stderr = (logs / "stderr").read_text()
    assert code == 0, stderr
    assert f"(pid {children[0]}) was killed by SIGKILL; restarting in 1.0 s" in stderr
    started = re.findall(r"child \d \(pid (\d+)\) started", stderr)
    assert len(started) == 3, stderr
    restarted = int(started[2])
    assert restarted not in children
    assert restarted in {pid for _, _, pid in processed(out)}, "the new child did no work"


def test_sigterm_stops_every_child_and_exits_0(broker: LocalBroker, tmp_path: Path) -> None:
    topic, group = broker.new_topic("procs-term", partitions=4), f"g-{uuid.uuid4().hex[:8]}"
    produced(broker, topic, 1000, keys=50)
    out = tmp_path / "out.txt"
    args = run_args(broker, RECORD_PIDS, topic, group, *SLOW, "--processes", "2",
                    "--shutdown-timeout", "10")  # fmt: skip
    env = cli_env(PARAFKA_TEST_OUT=str(out), PARAFKA_TEST_SLEEP_MS="20")
    logs = tmp_path / "logs"

    with supervisor(args, env, logs, group) as proc:
        wait_until(lambda: line_count(out) >= 50 or proc.poll() is not None, 30, "50 records")
        assert proc.poll() is None, (logs / "stderr").read_text()
        children = children_of(proc.pid)
        assert len(children) == 2, children
        proc.send_signal(signal.SIGTERM)
        code = wait_exit(proc, 10 + 5, logs)  # --shutdown-timeout + margin
        left = [pid for pid in children if Path(f"/proc/{pid}").exists()]
        assert left == [], f"children left running: {left}"
        assert processes_of(group) == []
    stderr = (logs / "stderr").read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "SIGTERM received: sending SIGTERM to 2 child process(es)" in stderr
    assert stderr.count("exited with 0; stopped") == 2, stderr
    assert line_count(out) < 1000, "SIGTERM must land mid-run for this test to mean anything"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["-X", "no.such.setting=1"], "no.such.setting=1"),
        (["--executor", "async"], "executor 'async' needs an async def handler"),
    ],
    ids=["bad-setting", "bad-executor"],
)
def test_a_configuration_error_is_exit_2_before_any_child_starts(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    args = ["run", RECORD_PIDS, "-b", "127.0.0.1:1", "-g", group, "-t", "t",
            "--processes", "2", *extra]  # fmt: skip
    env = cli_env(PARAFKA_TEST_OUT=str(tmp_path / "out.txt"))
    with supervisor(args, env, tmp_path / "logs", group) as proc:
        code = wait_exit(proc, 30, tmp_path / "logs")
    stderr = (tmp_path / "logs" / "stderr").read_text()
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # no "child N started" line: none was
    assert error_lines(stderr) == lines
    assert expected in lines[0]


def test_a_bad_handler_target_is_exit_2_before_any_child_starts(tmp_path: Path) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    target = f"{HANDLERS / 'record_pids.py'}:no_such_function"
    args = ["run", target, "-b", "127.0.0.1:1", "-g", group, "-t", "t", "--processes", "3"]
    env = cli_env(PARAFKA_TEST_OUT=str(tmp_path / "out.txt"))
    with supervisor(args, env, tmp_path / "logs", group) as proc:
        code = wait_exit(proc, 30, tmp_path / "logs")
    stderr = (tmp_path / "logs" / "stderr").read_text()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("parafka: error:")
    assert "no_such_function" in lines[0]
