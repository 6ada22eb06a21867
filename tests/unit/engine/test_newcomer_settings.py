"""Settings a newcomer gets wrong are refused in one line, naming the flag (issue 13, item 6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from parafka import ParallelConsumer
from parafka.cli import main
from parafka.core.errors import ConfigError

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
BASE = ["run", "json:dumps", "-b", "127.0.0.1:1", "-g", "group", "-t", "topic"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PARAFKA_BOOTSTRAP_SERVERS", "PARAFKA_GROUP", "PARAFKA_KAFKA_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    yield


def one_line_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("parafka: error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    ("setting", "flag"),
    [
        ("group.id=other", "-g/--group"),
        ("bootstrap.servers=elsewhere:9092", "-b/--bootstrap-servers"),
    ],
)
def test_a_setting_parafka_takes_from_an_option_is_refused_in_x(
    capsys: pytest.CaptureFixture[str], setting: str, flag: str
) -> None:
    line = one_line_usage_error(capsys, [*BASE, "-X", setting, "--print-config"][:-1])
    assert f"Kafka setting {setting} conflicts with" in line and flag in line
    assert "remove" in line


def test_the_same_value_is_accepted_and_lag_refuses_a_conflict_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ParallelConsumer(
        print,
        bootstrap_servers="k:9092",
        group_id="g",
        topics="t",
        kafka_config={"bootstrap.servers": "k:9092", "group.id": "g"},
    )
    line = one_line_usage_error(
        capsys, ["lag", "-b", "127.0.0.1:1", "-g", "g", "-X", "bootstrap.servers=other:1"]
    )
    assert "bootstrap.servers=other:1 conflicts" in line


def test_a_session_timeout_at_or_below_the_heartbeat_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = one_line_usage_error(capsys, [*BASE, "-X", "session.timeout.ms=10"])
    assert "session.timeout.ms=10 is not above heartbeat.interval.ms=3000" in line
    assert "session.timeout.ms=6000" in line
    with pytest.raises(ConfigError):
        ParallelConsumer(
            print,
            bootstrap_servers="k:9092",
            group_id="g",
            topics="t",
            kafka_config={"session.timeout.ms": 500, "heartbeat.interval.ms": 500},
        )
    # Below Kafka's default minimum but above the heartbeat: a broker may allow it.
    ParallelConsumer(
        print,
        bootstrap_servers="k:9092",
        group_id="g",
        topics="t",
        kafka_config={"session.timeout.ms": 2000, "heartbeat.interval.ms": 300},
    )


def test_auto_offset_reset_default_is_documented_in_the_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "auto.offset.reset=earliest" in text
