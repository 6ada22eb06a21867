"""Secrets (issue 6, point 7): one random password, given as sasl.password,
ssl.key.password and ssl.keystore.password, is searched for in everything parafka shows:
logs at DEBUG, error lines, /metrics, /healthz, --print-config, `parafka lag`, dead letters,
and the command lines of `--processes` children. That the settings reach the clients
unchanged is checked in tests/unit/cli/test_secrets.py.

The local broker has no SASL listener: with security.protocol=SASL_PLAINTEXT the connection
fails (a predictable error to check); the other runs keep the PLAINTEXT protocol, where the
client holds the secret settings without using them.
"""

from __future__ import annotations

import json
import secrets
import signal
import uuid
from pathlib import Path

import pytest

from parafka.cli.config import INHERITED_SECRETS
from parafka.testing import LocalBroker
from parafka.testing.broker import free_port

from .helpers import wait_until
from .test_cli import (
    FAIL_AT_SEVEN,
    cli_env,
    error_lines,
    line_count,
    produced,
    run_args,
    run_cli,
    started_cli,
    wait_exit,
)
from .test_monitoring import _get
from .test_processes import RECORD_PIDS, children_of, supervisor

PASSWORD = "pw-" + secrets.token_hex(12)
SECRET_FLAGS = ["-X", "sasl.username=u", "-X", f"sasl.password={PASSWORD}",
                "-X", f"ssl.key.password={PASSWORD}",
                "-X", f"ssl.keystore.password={PASSWORD}"]  # fmt: skip
SASL = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN"]


def assert_hidden(**outputs: str | bytes) -> None:
    for name, text in outputs.items():
        data = text.encode() if isinstance(text, str) else text
        assert PASSWORD.encode() not in data, f"the password shows in {name}"


def test_nothing_shows_the_password(broker: LocalBroker, tmp_path: Path) -> None:
    topic, group = broker.new_topic("sec", partitions=1), f"g-{uuid.uuid4().hex[:8]}"
    dlq = broker.new_topic("sec-dlq")
    produced(broker, topic, 20, keys=5)
    port = free_port()
    args = run_args(broker, FAIL_AT_SEVEN, topic, group, *SECRET_FLAGS, "--log-level", "DEBUG",
                    "--dead-letter-topic", dlq, "--max-attempts", "2", "--retry-backoff", "0.05",
                    "--metrics-port", str(port), "--until-idle", "3")  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    with started_cli(args, cli_env(), tmp_path) as proc:

        def scraped() -> bool:
            try:
                text = _get(f"{url}/metrics")[1]
            except OSError:  # not serving yet
                text = ""
            return "parafka_records_dead_lettered_total 1.0" in text or proc.poll() is not None

        wait_until(scraped, 60, "the dead letter in /metrics")
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        metrics, health = _get(f"{url}/metrics")[1], _get(f"{url}/healthz")[1]
        code = wait_exit(proc, 30, tmp_path)
    stdout, stderr = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert code == 0, stderr
    assert "DEBUG" in stderr and "19 records" in stderr  # it logged, and it worked

    [letter] = broker.consume_all(dlq, expected=1)
    dead_letter = repr((letter.key(), letter.value(), letter.headers()))
    assert "parafka.dlq.group" in dead_letter

    lag = run_cli(["lag", "-b", broker.bootstrap_servers, "-g", group, *SECRET_FLAGS],
                  cli_env(), timeout=60)  # fmt: skip
    assert lag.returncode == 0, lag.stderr
    assert topic in lag.stdout

    printed = run_cli([*args, "--print-config"], cli_env(), timeout=30)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.count('"*****"') == 3

    assert_hidden(run_stdout=stdout, run_stderr=stderr, metrics=metrics, healthz=health,
                  dead_letter=dead_letter, lag=lag.stdout + lag.stderr,
                  print_config=printed.stdout + printed.stderr)  # fmt: skip


def test_a_sasl_connection_to_a_broker_without_sasl_fails_without_the_password(
    broker: LocalBroker,
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    run = run_cli(
        ["run", "json:dumps", "-b", broker.bootstrap_servers, "-g", group, "-t", "any",
         *SASL, *SECRET_FLAGS, "--connect-timeout", "3", "--log-level", "DEBUG"],
        cli_env(), timeout=60,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    [line] = error_lines(run.stderr)
    assert broker.bootstrap_servers in line and "security.protocol" in line
    assert "Traceback" not in run.stderr

    lag = run_cli(["lag", "-b", broker.bootstrap_servers, "-g", group, "-t", "any", *SASL,
                   *SECRET_FLAGS, "--connect-timeout", "3"], cli_env(), timeout=60)  # fmt: skip
    assert lag.returncode == 1, lag.stderr
    assert len(error_lines(lag.stderr)) == 1, lag.stderr
    assert_hidden(run=run.stdout + run.stderr, lag=lag.stdout + lag.stderr)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux /proc")
def test_processes_children_get_secrets_outside_their_command_lines(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """Before, the supervisor repeated every -X flag on its children's command lines, which
    any user of the machine can read (ps). Secrets now go through their environment, which
    only the same user can read. (The supervisor's own command line holds what was typed on
    it: give secrets through PARAFKA_KAFKA_CONFIG or a --config file to keep them off every
    command line.)"""
    topic, group = broker.new_topic("sec-procs", partitions=2), f"g-{uuid.uuid4().hex[:8]}"
    produced(broker, topic, 200, keys=20)
    out = tmp_path / "out.txt"
    args = run_args(broker, RECORD_PIDS, topic, group, *SECRET_FLAGS, "--processes", "2")
    logs = tmp_path / "logs"
    with supervisor(args, cli_env(PARAFKA_TEST_OUT=str(out)), logs, group) as proc:
        wait_until(lambda: line_count(out) >= 200 or proc.poll() is not None, 60, "200 records")
        assert proc.poll() is None, (logs / "stderr").read_text()
        children = children_of(proc.pid)
        assert len(children) == 2
        command_lines = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children}
        environments = [Path(f"/proc/{pid}/environ").read_bytes() for pid in children]
        proc.send_signal(signal.SIGTERM)
        code = wait_exit(proc, 30, logs)
    stderr = (logs / "stderr").read_text()
    assert code == 0, stderr
    for pid, command_line in command_lines.items():
        assert b"sasl.username=u" in command_line  # the other -X flags are still repeated
        assert_hidden(**{f"command line of child {pid}": command_line})
    for environment in environments:
        handed = dict(v.split("=", 1) for v in environment.decode().split("\0") if "=" in v)
        assert json.loads(handed[INHERITED_SECRETS]) == {
            "sasl.password": PASSWORD,
            "ssl.key.password": PASSWORD,
            "ssl.keystore.password": PASSWORD,
        }
    assert_hidden(supervisor_output=stderr + (logs / "stdout").read_text())
