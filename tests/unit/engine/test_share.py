"""Share groups without a broker: what each outcome is acknowledged with, and the settings
a share group cannot honour (refused with the value and the fix; exit 2 from the CLI)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from parafka import ParallelConsumer
from parafka.cli import main
from parafka.core.deserializers import DeserializationError
from parafka.core.errors import ConfigError, NoOutputTopic
from parafka.core.retry import RetryPolicy
from parafka.engine.settings import Settings
from parafka.engine.share import Verdict, verdict
from parafka.testing import InMemoryCluster

RETRY = RetryPolicy(max_attempts=3, no_retry=(KeyError,))
BASE = {"bootstrap_servers": "127.0.0.1:1", "group_id": "g", "topics": ("t",)}


@pytest.mark.parametrize(
    ("error", "attempt", "policy", "expected"),
    [
        (None, 1, "stop", Verdict.ACCEPT),
        (None, 3, "dead-letter", Verdict.ACCEPT),
        (ValueError("x"), 1, "dead-letter", Verdict.RELEASE),
        (ValueError("x"), 2, "skip", Verdict.RELEASE),
        (ValueError("x"), 3, "dead-letter", Verdict.DEAD_LETTER),
        (ValueError("x"), 3, "skip", Verdict.REJECT),
        (ValueError("x"), 3, "stop", Verdict.STOP),
        # delivered more often than max_attempts (locks that expired): the last attempt
        (ValueError("x"), 7, "dead-letter", Verdict.DEAD_LETTER),
        # not worth retrying: gives up on the first attempt
        (KeyError("k"), 1, "dead-letter", Verdict.DEAD_LETTER),
        (DeserializationError("bad json"), 1, "skip", Verdict.REJECT),
        # a mistake fails every record: stop, whatever the policy
        (NoOutputTopic("no topic"), 1, "dead-letter", Verdict.STOP),
    ],
)
def test_the_acknowledgement_follows_the_outcome(
    error: BaseException | None, attempt: int, policy: str, expected: Verdict
) -> None:
    assert verdict(error, attempt, RETRY, policy) is expected


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"ordering": "key"}, ["ordering='key'", "ordering='unordered'", "--ordering unordered"]),
        ({"ordering": "partition"}, ["ordering='partition'", "--ordering unordered"]),
        (
            {"ordering": "unordered", "exactly_once": True, "output_topic": "o"},
            ["exactly_once", "--exactly-once", "--group-type consumer"],
        ),
        (
            {"ordering": "unordered", "kafka_config": {"session.timeout.ms": 6000}},
            ["session.timeout.ms=6000", "share consumer", "remove it"],
        ),
        (
            {"ordering": "unordered", "kafka_config": {"auto.offset.reset": "earliest"}},
            ["auto.offset.reset=earliest", "remove it"],
        ),
    ],
)
def test_settings_a_share_group_cannot_honour_are_refused(
    settings: dict[str, object], named: list[str]
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(**BASE, group_type="share", **settings)  # type: ignore[arg-type]
    for text in named:
        assert text in str(refused.value)


def test_unknown_group_type_is_refused_and_the_default_is_a_consumer_group() -> None:
    with pytest.raises(ConfigError, match="unknown group_type 'queue': use one of consumer, share"):
        Settings(**BASE, group_type="queue")  # type: ignore[arg-type]
    assert Settings(**BASE).group_type == "consumer"  # type: ignore[arg-type]
    Settings(**BASE, group_type="share", ordering="unordered")  # type: ignore[arg-type]


def test_the_in_memory_cluster_has_no_share_groups() -> None:
    with pytest.raises(ConfigError, match="group_type='share' runs on Kafka only"):
        ParallelConsumer(
            lambda record: None,
            bootstrap_servers="memory",
            group_id="g",
            topics="t",
            ordering="unordered",
            group_type="share",
            kafka=InMemoryCluster(),
        )


@pytest.fixture
def no_parafka_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PARAFKA_BOOTSTRAP_SERVERS", "PARAFKA_GROUP", "PARAFKA_GROUP_TYPE"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.mark.usefixtures("no_parafka_variables")
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ([], "--ordering unordered"),
        (["--ordering", "partition"], "ordering='partition'"),
        (["--ordering", "unordered", "--exactly-once", "-o", "out"], "--exactly-once"),
        (["--group-type", "queue"], "'queue' is not one of 'consumer', 'share'"),
    ],
)
def test_the_cli_refuses_them_in_one_line_with_exit_2(
    capsys: pytest.CaptureFixture[str], extra: list[str], named: str
) -> None:
    # The last --group-type counts: ["--group-type", "queue"] replaces "share".
    base = ["run", "json:dumps", "-b", "127.0.0.1:1", "-g", "g", "-t", "t"]
    code = main([*base, "--group-type", "share", *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("parafka: error: ") and named in lines[0], lines[0]
