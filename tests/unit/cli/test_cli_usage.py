"""`parafka` usage and configuration errors: exit 2 and one clear line, never a traceback.

None of these reach a broker: each mistake is caught before connecting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from parafka.cli import main

SRC = str(Path(__file__).resolve().parents[3] / "src")
# A valid run, to which each case adds or removes one thing. Port 1 is never dialled.
BASE = ["-b", "127.0.0.1:1", "-g", "group", "-t", "topic"]
HANDLER = "json:dumps"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PARAFKA_BOOTSTRAP_SERVERS", "PARAFKA_GROUP"):
        monkeypatch.delenv(name, raising=False)
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path  # loading a handler may add the current directory
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run main(argv), check it is a usage error told in one line; return that line."""
    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("parafka: error: ")
    assert "Traceback" not in captured.err
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["--ordering", "fifo"],
            ["'--ordering'", "'fifo'", "'key', 'partition', 'unordered'"],
            id="unknown-ordering",
        ),
        pytest.param(["-c", "many"], ["'--concurrency'", "'many'"], id="non-numeric-concurrency"),
        pytest.param(["-c", "0"], ["'--concurrency'", "0"], id="zero-concurrency"),
        pytest.param(
            ["--max-attempts", "x"], ["'--max-attempts'", "'x'"], id="non-numeric-attempts"
        ),
        pytest.param(["--until-idle", "soon"], ["'--until-idle'", "'soon'"], id="non-numeric-idle"),
        pytest.param(
            ["--connect-timeout", "-1"], ["'--connect-timeout'", "-1"], id="negative-timeout"
        ),
        pytest.param(
            ["-X", "fetch.max.bytes"],
            ["'-X'", "'fetch.max.bytes'", "KEY=VALUE", "-X fetch.max.bytes=1048576"],
            id="X-without-equals",
        ),
        pytest.param(["-X", "=1"], ["'-X'", "'=1'", "KEY=VALUE"], id="X-without-key"),
        pytest.param(["--log-level", "LOUD"], ["'--log-level'", "'LOUD'"], id="log-level"),
        pytest.param(["--concurency", "3"], ["--concurency", "--concurrency"], id="typo"),
    ],
)
def test_bad_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: list[str]
) -> None:
    line = usage_error(capsys, ["run", HANDLER, *BASE, *argv])
    for text in expected:
        assert text in line
    assert "parafka run --help" in line


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("-b", ["'--bootstrap-servers'", "PARAFKA_BOOTSTRAP_SERVERS"]),
        ("-g", ["'--group'", "PARAFKA_GROUP"]),
        ("-t", ["'--topic'"]),
    ],
)
def test_missing_required_option(
    capsys: pytest.CaptureFixture[str], drop: str, expected: list[str]
) -> None:
    index = BASE.index(drop)
    argv = BASE[:index] + BASE[index + 2 :]
    line = usage_error(capsys, ["run", HANDLER, *argv])
    assert line.startswith("parafka: error: Missing option")
    for text in expected:
        assert text in line


def test_bootstrap_servers_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable stands in for -b: the next problem reported is the handler's."""
    monkeypatch.setenv("PARAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    line = usage_error(capsys, ["run", "json:no_such_function", "-g", "group", "-t", "topic"])
    assert "no_such_function" in line


def test_missing_handler_argument(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, ["run", *BASE])
    assert "Missing argument 'MODULE:FUNCTION'" in line


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, ["consume"])
    assert "'consume'" in line


def test_unimportable_module(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, ["run", "parafka_no_such_module:handle", *BASE])
    assert "'parafka_no_such_module'" in line
    assert "no such module" in line


def test_module_whose_import_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    handler = tmp_path / "needs_missing.py"
    handler.write_text("import parafka_absent_dependency\n\ndef handle(record): pass\n")
    line = usage_error(capsys, ["run", f"{handler}:handle", *BASE])
    assert "No module named 'parafka_absent_dependency'" in line


def test_missing_function(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, ["run", "json:dump_s", *BASE])
    assert "'dump_s'" in line
    assert "did you mean" in line


def test_not_callable(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, ["run", "os:sep", *BASE])
    assert "'os:sep' is a str, not a function" in line


def test_malformed_target(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, ["run", "handlers.py", *BASE])
    assert "'handlers.py' is not of the form MODULE:FUNCTION" in line


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_auto_commit_is_refused(capsys: pytest.CaptureFixture[str], value: str) -> None:
    line = usage_error(capsys, ["run", HANDLER, *BASE, "-X", f"enable.auto.commit={value}"])
    assert f"enable.auto.commit={value} is not allowed" in line


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("no.such.setting=1", ["no.such.setting=1", "No such configuration property"]),
        ("session.timeout.ms=soon", ["session.timeout.ms=soon", "Invalid value"]),
        ("linger.ms=soon", ["linger.ms=soon", "Invalid value"]),  # producer side
    ],
)
def test_kafka_setting_rejected_by_librdkafka(
    capsys: pytest.CaptureFixture[str], setting: str, expected: list[str]
) -> None:
    line = usage_error(capsys, ["run", HANDLER, *BASE, "-X", setting])
    for text in expected:
        assert text in line


def test_async_handler_with_thread_executor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    handler = tmp_path / "coroutine.py"
    handler.write_text("async def handle(record):\n    pass\n")
    line = usage_error(capsys, ["run", f"{handler}:handle", *BASE, "--executor", "thread"])
    assert "'handle' is an async function" in line and "--executor async" in line


def test_plain_handler_with_async_executor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    handler = tmp_path / "plain.py"
    handler.write_text("def handle(record):\n    pass\n")
    line = usage_error(capsys, ["run", f"{handler}:handle", *BASE, "--executor", "async"])
    assert "needs an async def handler" in line


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    assert "--bootstrap-servers" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "parafka" in capsys.readouterr().out


def test_no_arguments_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "Commands:" in capsys.readouterr().err


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFKA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "parafka.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", HANDLER, *BASE, "--ordering", "fifo"], "'fifo'"),
        (["run", "parafka_no_such_module:handle", *BASE], "'parafka_no_such_module'"),
    ],
)
def test_as_a_process(argv: list[str], expected: str) -> None:
    """The real exit status and stderr of the command, as a shell sees them."""
    result = _cli(*argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("parafka: error: ")
    assert expected in lines[0]


def test_a_rejected_setting_never_shows_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-X", "sasl.password=hunter2-secret", "-X", "no.such.setting=1"]
    line = usage_error(capsys, ["run", HANDLER, *BASE, *argv])
    assert "no.such.setting=1" in line
    assert "hunter2" not in line
