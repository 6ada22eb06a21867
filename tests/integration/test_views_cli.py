"""`parafka run` with its views, as a user runs it: on a terminal (a pseudo-terminal here),
with `--no-dashboard`, and with `--dashboard-port`."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from parafka.testing import LocalBroker

from .test_cli import RECORD_OFFSETS, cli_env, error_lines, line_count, run_args, run_cli

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_URL = re.compile(rb"dashboard on (http://127\.0\.0\.1:\d+/)")


def run_on_terminal(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal, to its end.

    Returns the exit code, everything it wrote (escape codes removed) and the `/api/stats`
    answer of its web dashboard, read once while it ran ("" without one)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "parafka.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env={**env, "COLUMNS": "140", "LINES": "50", "TERM": "xterm"},
    )
    os.close(slave)
    output, api = b"", ""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process has exited
                    break
                if not chunk:
                    break
                output += chunk
                found = _URL.search(output)
                if found and not api:
                    url = found.group(1).decode() + "api/stats"
                    with urllib.request.urlopen(url, timeout=5) as response:
                        api = response.read().decode()
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        os.close(master)
    text = _ANSI.sub("", output.decode("utf-8", errors="replace"))
    return code, text, api


def test_live_panel_on_a_terminal_with_log_lines_and_dashboard(
    broker: LocalBroker, tmp_path: Path
) -> None:
    topic = broker.new_topic(partitions=2)
    broker.produce(topic, [(None, str(i).encode()) for i in range(2000)])
    out = tmp_path / "out"
    args = run_args(broker, RECORD_OFFSETS, topic, f"g-{uuid.uuid4().hex[:8]}")
    args += ["--until-idle", "1.5", "--dashboard-port", "0"]
    env = cli_env(PARAFKA_TEST_OUT=str(out), PARAFKA_TEST_SLEEP_MS="1")
    code, text, api = run_on_terminal(args, env, timeout=90)
    assert code == 0, text
    assert line_count(out) == 2000
    assert "records/s" in text and "in flight" in text and "lag" in text
    assert re.search(r"2,000 / 2,000\s+100%", text), text[-3000:]  # the progress bar
    assert f"{topic}[1]" in text  # the partition table
    # Log lines are printed whole, on lines of their own, above the panel.
    lines = [line.split("\r")[-1] for line in text.splitlines()]
    assigned = re.compile(r"\d{4}-\d\d-\d\d .* INFO +parafka\.engine\.control: assigned ")
    assert any(assigned.match(line) for line in lines)
    assert "parafka: processed 2000 records" in text
    doc = json.loads(api)
    assert doc["samples"] and "partitions" in doc


def test_no_dashboard_on_a_terminal_prints_plain_lines(broker: LocalBroker) -> None:
    topic = broker.new_topic(partitions=1)
    broker.produce(topic, [(None, b"x")] * 10)
    args = run_args(broker, RECORD_OFFSETS, topic, f"g-{uuid.uuid4().hex[:8]}")
    args += ["--until-idle", "1", "--no-dashboard"]
    code, text, _ = run_on_terminal(args, cli_env(PARAFKA_TEST_OUT=os.devnull), timeout=90)
    assert code == 0, text
    panel = [line for line in text.splitlines() if not line.startswith("parafka: processed")]
    assert not any("records/s" in line for line in panel)  # the summary line gives a rate too
    assert "INFO    parafka.engine.control: assigned" in text


def test_dashboard_port_in_use_is_one_line_and_exit_2(broker: LocalBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = run_args(broker, RECORD_OFFSETS, "t", "g", "--dashboard-port", str(port))
        result = run_cli(args, cli_env(PARAFKA_TEST_OUT=os.devnull), timeout=60)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [
        f"parafka: error: dashboard port {port} is already in use: choose another "
        "--dashboard-port (port=), or 0 for any free one"
    ]
    assert "Traceback" not in result.stderr


def test_dashboard_port_is_refused_with_several_processes(broker: LocalBroker) -> None:
    args = run_args(broker, RECORD_OFFSETS, "t", "g", "--dashboard-port", "0", "--processes", "2")
    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=os.devnull), timeout=60)
    assert result.returncode == 2, result.stderr
    (line,) = error_lines(result.stderr)
    assert "--dashboard-port 0" in line and "--processes 2" in line
