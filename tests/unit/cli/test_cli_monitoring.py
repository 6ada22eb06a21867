"""`parafka run --metrics-port` and `parafka lag` mistakes: exit 2 and one line, no broker."""

from __future__ import annotations

import os
import socket

import pytest

from tests.unit.cli.test_cli_usage import BASE, HANDLER, usage_error


def test_metrics_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = usage_error(capsys, ["run", HANDLER, *BASE, "--metrics-port", str(port)])
    assert f"metrics port {port} is already in use" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["--metrics-port", "70000"], "'--metrics-port'", id="port-out-of-range"),
        pytest.param(["--stuck-after", "0"], "'--stuck-after'", id="zero-stuck-after"),
        pytest.param(
            ["--metrics-port", "9400", "--processes", "2"],
            "--metrics-port 9400 serves one process",
            id="metrics-with-processes",
        ),
        pytest.param(
            ["--processes", "0"],
            "'0' is not a whole number >= 1 or 'auto'",
            id="zero-processes",
        ),
        pytest.param(
            ["--processes", "many"],
            "use --processes 2, or --processes auto for one per core",
            id="processes-not-a-number",
        ),
    ],
)
def test_run_monitoring_options(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert expected in usage_error(capsys, ["run", HANDLER, *BASE, *argv])


def test_processes_auto_names_the_count_it_chose(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    argv = ["run", HANDLER, *BASE, "--processes", "auto", "--metrics-port", "9400"]
    assert "with --processes 4 the children would share it" in usage_error(capsys, argv)


def test_lag_needs_a_group(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARAFKA_GROUP", raising=False)
    assert "'-g' / '--group'" in usage_error(capsys, ["lag", "-b", "127.0.0.1:1"])
