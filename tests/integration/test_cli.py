"""`parafka run` and `parafka broker` as a user runs them: real processes, real broker.

Each test starts the CLI with `sys.executable -m parafka.cli`, so it runs in whatever
environment runs the tests. Every process is killed in a `finally`, every wait has a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from parafka.testing import LocalBroker
from parafka.testing.broker import free_port

from .helpers import wait_until, written_lines

SRC = Path(__file__).resolve().parents[2] / "src"
HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
RECORD_OFFSETS = f"{HANDLERS / 'record_offsets.py'}:handle"
FAIL_AT_SEVEN = f"{HANDLERS / 'fail_at_seven.py'}:handle"
GC_THRESHOLD = f"{HANDLERS / 'gc_threshold.py'}:handle"
# A new group gets its first assignment in about 3 s with these, not 23 s (DESIGN.md).
QUICK_GROUP = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFKA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end; subprocess.run kills it if `timeout` passes."""
    return subprocess.run(
        [sys.executable, "-m", "parafka.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@contextmanager
def started_cli(
    args: list[str], env: dict[str, str], logs: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the CLI in the background (output to files: no pipe can fill up); kill it at
    the end of the block if it still runs."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "parafka.cli", *args], stdout=out, stderr=err, env=env
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def wait_exit(proc: subprocess.Popen[bytes], timeout: float, logs: Path) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"still running after {timeout} s; stderr:\n{(logs / 'stderr').read_text()}"
        ) from None


def processed(path: Path) -> list[tuple[int, int]]:
    """The (partition, offset) pairs the record_offsets handler wrote, in order."""
    lines = written_lines(path)
    return [(int(p), int(o)) for p, o in (line.split() for line in lines)]


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("parafka: error:")]


def produced(broker: LocalBroker, topic: str, count: int, keys: int) -> set[tuple[int, int]]:
    """Produce `count` keyed records and return every (partition, offset) they landed at."""
    broker.produce(topic, [(f"k{i % keys}".encode(), str(i).encode()) for i in range(count)])
    messages = broker.consume_all(topic, expected=count)
    assert len(messages) == count
    return {(m.partition(), m.offset()) for m in messages}


def run_args(broker: LocalBroker, handler: str, topic: str, group: str, *extra: str) -> list[str]:
    return ["run", handler, "-b", broker.bootstrap_servers, "-g", group, "-t", topic,
            *QUICK_GROUP, *extra]  # fmt: skip


def test_unreachable_broker_fails_fast_with_one_line() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = run_cli(
        ["run", RECORD_OFFSETS, "-b", address, "-g", "g", "-t", "t", "--connect-timeout", "3"],
        cli_env(PARAFKA_TEST_OUT=os.devnull),
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 15
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert address in errors[0]
    # Refused for 2 s in a row ends the run (naming --bootstrap-servers); the 3 s
    # --connect-timeout may come first on a loaded machine. Either says what to check.
    assert "connection refused" in errors[0] or "--connect-timeout" in errors[0], errors[0]
    assert "--bootstrap-servers" in errors[0]
    assert "Traceback" not in result.stderr
    # librdkafka repeats each refused connection many times a second; the CLI shows it once.
    assert len(result.stderr.splitlines()) < 10, result.stderr


def test_until_idle_processes_everything_and_commits(broker: LocalBroker, tmp_path: Path) -> None:
    topic, group = broker.new_topic("cli-idle", partitions=4), f"g-{uuid.uuid4().hex[:8]}"
    expected = produced(broker, topic, 300, keys=20)
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    args = run_args(broker, RECORD_OFFSETS, topic, group, "--until-idle", "3")

    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=str(first)), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "processed 300 records" in result.stderr
    done = processed(first)
    assert set(done) == expected
    assert len(done) == 300  # and none twice

    # Same group again: the offsets were committed, so nothing is left to process.
    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=str(second)), timeout=60)
    assert result.returncode == 0, result.stderr
    assert processed(second) == []
    assert "processed 0 records" in result.stderr


def test_run_tunes_the_garbage_collector(broker: LocalBroker, tmp_path: Path) -> None:
    topic, group = broker.new_topic("cli-gc", partitions=1), f"g-{uuid.uuid4().hex[:8]}"
    produced(broker, topic, 3, keys=1)
    out = tmp_path / "threshold.txt"
    args = run_args(broker, GC_THRESHOLD, topic, group, "--until-idle", "1")
    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=str(out)), timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(out.read_text()) >= 50_000  # CPython's default is 700


def test_sigterm_finishes_running_work_and_commits(broker: LocalBroker, tmp_path: Path) -> None:
    topic, group = broker.new_topic("cli-term", partitions=4), f"g-{uuid.uuid4().hex[:8]}"
    expected = produced(broker, topic, 2000, keys=50)
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    # A periodic commit every 30 s never comes during this run: whatever the second run
    # skips, the commit made on SIGTERM saved.
    args = run_args(broker, RECORD_OFFSETS, topic, group, "-c", "8", "--commit-interval", "30",
                    "--shutdown-timeout", "10")  # fmt: skip
    env = cli_env(PARAFKA_TEST_OUT=str(first), PARAFKA_TEST_SLEEP_MS="5")

    with started_cli(args, env, tmp_path / "first") as proc:
        wait_until(lambda: line_count(first) >= 200 or proc.poll() is not None, 30, "200 records")
        assert proc.poll() is None, (tmp_path / "first" / "stderr").read_text()
        proc.send_signal(signal.SIGTERM)
        code = wait_exit(proc, 10 + 5, tmp_path / "first")  # --shutdown-timeout + margin
    stderr = (tmp_path / "first" / "stderr").read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    run1 = processed(first)
    assert 200 <= len(run1) < 2000, "SIGTERM must land mid-run for this test to mean anything"

    result = run_cli(
        [*args, "--until-idle", "3"], {**env, "PARAFKA_TEST_OUT": str(second)}, timeout=60
    )
    assert result.returncode == 0, result.stderr
    run2 = processed(second)

    assert set(run1) | set(run2) == expected  # none lost
    duplicates = sum((Counter(run1) + Counter(run2)).values()) - len(expected)
    # The SIGTERM drain lets the <= 8 running records finish and commits synchronously, so
    # the second run starts at each partition's lowest unfinished offset. It repeats only
    # records that had finished above that offset: in key order a record may overtake an
    # older one of another key that waits for its own key's running record. The commit
    # metadata listing them is dropped by the local broker (DESIGN.md), so those come back.
    # With 8 workers of 5 ms and 50 keys that is a few handler times' worth, a few dozen
    # at most. A lost shutdown commit would repeat all of run 1 (>= 200).
    assert duplicates < 100, f"{duplicates} duplicates; run 1 processed {len(run1)}"


def test_record_failing_every_attempt_stops_with_exit_1(
    broker: LocalBroker, tmp_path: Path
) -> None:
    topic, group = broker.new_topic("cli-fail", partitions=1), f"g-{uuid.uuid4().hex[:8]}"
    produced(broker, topic, 20, keys=5)
    args = run_args(broker, FAIL_AT_SEVEN, topic, group, "--max-attempts", "2",
                    "--retry-backoff", "0.05", "--until-idle", "10")  # fmt: skip

    result = run_cli(args, cli_env(), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert f"{topic}[0]@7" in errors[0]
    assert "after 2 attempt(s)" in errors[0]
    assert "ValueError: boom" in errors[0]
    assert "not committed" in errors[0]


def tansu_pids(port: int) -> list[int]:
    """Processes whose command line is a broker listening on `port` (Linux /proc)."""
    needle = f"tcp://127.0.0.1:{port}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if b"--listener-url" in cmdline and needle in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_broker_command_runs_until_signalled(
    broker: LocalBroker, tmp_path: Path, signum: signal.Signals
) -> None:
    # `broker` (the fixture) only proves the broker binary is installed; this test starts
    # its own broker on another port.
    port = free_port()
    address = f"127.0.0.1:{port}"
    logs = tmp_path / "broker"
    try:
        with started_cli(["broker", "--port", str(port)], cli_env(), logs) as proc:
            wait_until(
                lambda: address in (logs / "stdout").read_text() or proc.poll() is not None,
                30,
                f"'{address}' on stdout",
            )
            assert proc.poll() is None, (logs / "stderr").read_text()
            assert tansu_pids(port), "the broker child process should be running"
            proc.send_signal(signum)
            code = wait_exit(proc, 15, logs)
        assert code == 0, (logs / "stderr").read_text()
        assert "Traceback" not in (logs / "stderr").read_text()
        assert tansu_pids(port) == []
    finally:
        for pid in tansu_pids(port):  # only if the test failed: never leave one behind
            os.kill(pid, signal.SIGKILL)


def test_broker_command_on_a_port_in_use(broker: LocalBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["broker", "--port", str(port)], cli_env(), timeout=60)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("parafka: error:")
    assert f"port {port}" in lines[0]
    assert "already in use" in lines[0]
    assert "--port" in lines[0]
