"""`parafka dlq replay` usage errors: exit 2 and one clear line, before any connection."""

from __future__ import annotations

import pytest

from parafka.cli import main
from tests.unit.cli.test_cli_usage import usage_error

# Port 1 is never dialled: every case fails before connecting.
BASE = ["dlq", "replay", "--from", "orders.dlq", "-b", "127.0.0.1:1"]


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARAFKA_BOOTSTRAP_SERVERS", raising=False)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            ["--filter", "exceptoin=*Timeout*"],
            [
                "'exceptoin'",
                "attempts, exception, first-failure, group, last-failure, message, offset, "
                "partition, stage, topic",
            ],
            id="unknown-filter-name",
        ),
        pytest.param(["--filter", "TimeoutError"], ["is not NAME=PATTERN"], id="filter-no-equals"),
        pytest.param(["--to", "orders.dlq"], ["is the dead-letter topic itself"], id="to-is-from"),
        pytest.param(["--rate", "0"], ["'--rate'", "0"], id="zero-rate"),
        pytest.param(["--rate", "fast"], ["'--rate'", "'fast'"], id="non-numeric-rate"),
        pytest.param(["-X", "linger.ms"], ["'linger.ms' is not KEY=VALUE"], id="bad-X"),
        pytest.param(
            ["-X", "enable.auto.commit=true"], ["enable.auto.commit=true"], id="auto-commit"
        ),
        pytest.param(["-X", "no.such.setting=1"], ["no.such.setting=1"], id="unknown-setting"),
    ],
)
def test_bad_option(
    capsys: pytest.CaptureFixture[str], extra: list[str], expected: list[str]
) -> None:
    line = usage_error(capsys, [*BASE, *extra])
    for text in expected:
        assert text in line


def test_missing_from(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, ["dlq", "replay", "-b", "127.0.0.1:1"])
    assert "'--from'" in line


def test_missing_bootstrap_servers_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, ["dlq", "replay", "--from", "d"])
    assert "PARAFKA_BOOTSTRAP_SERVERS" in line


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "replay", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--from", "--to", "--filter", "--rate", "--group", "-X", "--connect-timeout"):
        assert option in out
    assert main(["dlq", "--help"]) == 0
    assert "replay" in capsys.readouterr().out
