"""`parafka partitions`: plain text off a terminal, a rich table on one, JSON for scripts."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from parafka.cli import cli, main
from parafka.cli.sizing import print_rich
from parafka.core.sizing import Target, plans

BASE = ["partitions", "--target-rate", "2000", "--per-record-ms", "10"]


@pytest.fixture(autouse=True)
def no_parafka_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("PARAFKA_")]:
        monkeypatch.delenv(name)


def invoke(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(cli, [*BASE, *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_plain_text_has_a_row_and_a_sentence_per_mode_and_states_the_headroom() -> None:
    out = invoke()
    assert "headroom x1.25" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["key"],
            ["partition"], ["unordered"])]  # fmt: skip
    assert rows == [
        ["key", "2", "2", "16", "3,200"],
        ["partition", "25", "2", "16", "2,500"],
        ["unordered", "2", "2", "16", "3,200"],
    ]
    for mode in ("key", "partition", "unordered"):
        assert sum(line.startswith(f"{mode}: ") for line in out.splitlines()) == 1
    assert "\x1b[" not in out  # no terminal codes in a pipe


def test_one_ordering_and_the_options_reach_the_arithmetic() -> None:
    out = invoke("--ordering", "partition", "-c", "8", "--headroom", "1", "--instances-max", "2")
    assert "key:" not in out and "unordered:" not in out
    assert "with at most 2 instances that needs --concurrency 10" in out
    assert "x 1 headroom = 20 partitions" in out


def test_json_for_scripts() -> None:
    document = json.loads(invoke("--json", "--keys", "10"))
    assert document["target"]["keys"] == 10
    by_mode = {p["ordering"]: p for p in document["plans"]}
    assert by_mode["partition"]["partitions"] == 25
    assert by_mode["key"]["reachable"] is False
    assert by_mode["key"]["capacity"] == pytest.approx(1000)
    assert "explanation" in by_mode["unordered"]


def test_values_from_the_environment() -> None:
    out = invoke(
        "--json", env={"PARAFKA_PARTITIONS_KEYS": "30", "PARAFKA_PARTITIONS_HEADROOM": "1"}
    )
    target = json.loads(out)["target"]
    assert (target["keys"], target["headroom"]) == (30, 1.0)


def test_rich_table_on_a_terminal() -> None:
    buffer = io.StringIO()
    target = Target(rate=2000, per_record_ms=10, keys=10)
    console = Console(file=buffer, force_terminal=True, width=400)
    print_rich(target, plans(target), console)
    out = buffer.getvalue()
    assert "\x1b[" in out  # styled for the terminal
    for text in ("partitions", "instances", "capacity/s", "unreachable", "headroom"):
        assert text in out
    assert "A partition runs one record at a time" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target-rate", "-5"], "'--target-rate': -5.0 is not in the range x>0"),
        (["--target-rate", "0"], "'--target-rate'"),
        (["--target-rate", "inf"], "'--target-rate': inf is not a finite number"),
        (["--per-record-ms", "0"], "'--per-record-ms': 0.0 is not in the range x>0"),
        (["--per-record-ms", "soon"], "'--per-record-ms'"),
        (["-c", "0"], "'--concurrency'"),
        (["--keys", "0"], "'--keys'"),
        (["--headroom", "0.5"], "'--headroom'"),
        (["--instances-max", "0"], "'--instances-max'"),
        (["--ordering", "fifo"], "'--ordering'"),
    ],
)
def test_bad_values_are_one_line_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert main([*BASE, *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("parafka: error: ")
    assert needle in lines[0]
    assert captured.out == ""


def test_missing_target_rate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["partitions", "--per-record-ms", "10"]) == 2
    assert "'--target-rate'" in capsys.readouterr().err
