"""The control plane from the command line: `parafka run --dashboard-port` with the token
in PARAFKA_CONTROL_TOKEN serves the actions; the token never reaches the output;
`--control-token` without a dashboard is one line and exit 2."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

from parafka.testing import LocalBroker

from .test_cli import RECORD_OFFSETS, cli_env, error_lines, run_args, run_cli

TOKEN = "cli-control-token-0123"
_URL = re.compile(r"dashboard on (http://127\.0\.0\.1:\d+/)")


def post(url: str, token: str) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(
        url + "api/control/pause",
        data=json.dumps({"topic": "nothing-here", "partition": 0}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_run_serves_the_actions_with_the_token_from_the_environment(broker: LocalBroker) -> None:
    topic = broker.new_topic(partitions=1)
    args = run_args(broker, RECORD_OFFSETS, topic, f"g-{uuid.uuid4().hex[:8]}")
    env = cli_env(PARAFKA_TEST_OUT=os.devnull, PARAFKA_CONTROL_TOKEN=TOKEN)
    process = subprocess.Popen(
        [sys.executable, "-m", "parafka.cli", *args, "--dashboard-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    output = ""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        deadline = time.monotonic() + 30
        while "assigned" not in output and time.monotonic() < deadline:
            if selector.select(0.2):
                output += process.stdout.readline()
        found = _URL.search(output)
        assert found and "assigned" in output, output
        url = found.group(1)
        status, answer = post(url, "not-the-right-token")
        assert status == 401, answer
        status, answer = post(url, TOKEN)  # applied: refused, the partition is not ours
        assert status == 409 and "not assigned to this consumer" in answer["message"], answer
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
        output += rest
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "control: pause" in output  # logged...
    assert TOKEN not in output  # ...never with the token


def test_a_control_token_without_a_dashboard_is_one_line_and_exit_2(
    broker: LocalBroker,
) -> None:
    args = run_args(broker, RECORD_OFFSETS, "t", "g", "--control-token", TOKEN)
    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=os.devnull), timeout=30)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert "--control-token" in line and "--dashboard-port" in line
    assert TOKEN not in result.stderr
