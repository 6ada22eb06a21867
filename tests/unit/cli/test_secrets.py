"""Security settings reach the Kafka clients unchanged and are shown nowhere: the client
configs parafka builds, the settings' repr, and the command lines of `--processes` children.
(The broker-side checks, with one password searched for in every output, are in
tests/integration/test_secrets.py.)"""

from __future__ import annotations

import json
import os
import secrets

import pytest

from parafka import ParallelConsumer
from parafka.cli import cli, main
from parafka.cli.config import INHERITED_SECRETS, effective_values
from parafka.cli.supervisor import run_arguments, secret_settings
from parafka.kafka.config import admin_config, consumer_config, masked, producer_config

PASSWORD = "pw-" + secrets.token_hex(8) + " =\"'$x"  # spaces and quotes survive too
SECURITY = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "PLAIN",
    "sasl.username": "u",
    "sasl.password": PASSWORD,
    "ssl.key.password": PASSWORD,
    "ssl.keystore.password": PASSWORD,
}
SECRET_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password")


@pytest.fixture(autouse=True)
def no_parafka_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("PARAFKA_", INHERITED_SECRETS))]:
        monkeypatch.delenv(name)


def test_security_settings_reach_every_client_unchanged() -> None:
    built = [
        consumer_config("h:1", "g", SECURITY),
        producer_config("h:1", SECURITY),
        admin_config("h:1", SECURITY),
    ]
    for config in built:
        assert {k: config[k] for k in SECURITY} == SECURITY


def test_the_settings_repr_masks_secrets() -> None:
    pc = ParallelConsumer(
        lambda r: None,
        bootstrap_servers="h:1",
        group_id="g",
        topics="t",
        kafka_config={**SECURITY, "security.protocol": "SASL_PLAINTEXT"},
    )
    assert pc.settings.kafka_config["sasl.password"] == PASSWORD  # what the clients get
    text = repr(pc.settings)
    assert PASSWORD not in text
    assert "'sasl.password': '*****'" in text and "'sasl.username': 'u'" in text
    assert masked({"ssl.key.password": PASSWORD, "acks": "all"}) == {
        "ssl.key.password": "*****",
        "acks": "all",
    }


def _run_context(*extra: str) -> object:
    run = cli.commands["run"]
    given = ["json:dumps", "-b", "h:1", "-g", "g", "-t", "t", "--processes", "2"]
    flags = [a for k, v in SECURITY.items() for a in ("-X", f"{k}={v}")]
    return run.make_context("run", [*given, *flags, "-X", "linger.ms=1", *extra])


def test_children_get_secret_flags_in_their_environment_not_their_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = _run_context()
    arguments = run_arguments(ctx, reset="processes")  # type: ignore[arg-type]
    assert not any(PASSWORD in a for a in arguments)
    assert "sasl.username=u" in arguments and "linger.ms=1" in arguments
    handed = secret_settings(ctx)  # type: ignore[arg-type]
    assert handed == {k: PASSWORD for k in SECRET_KEYS}

    # The child: the command line it gets, plus the variable the supervisor sets.
    monkeypatch.setenv(INHERITED_SECRETS, json.dumps(handed))
    child = cli.commands["run"].make_context("run", arguments[1:])
    values, origins = effective_values(child)
    assert values["kafka_config"] == {**SECURITY, "linger.ms": "1"}
    assert all(origins[k] == "flag" for k in SECURITY)


def test_an_inherited_secret_overrides_the_environment_like_the_flag_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARAFKA_KAFKA_CONFIG", "sasl.password=from-env acks=all")
    monkeypatch.setenv(INHERITED_SECRETS, json.dumps({"sasl.password": PASSWORD}))
    child = cli.commands["run"].make_context("run", ["json:dumps", "-b", "h", "-g", "g", "-t", "t"])
    values, _ = effective_values(child)
    assert values["kafka_config"] == {"sasl.password": PASSWORD, "acks": "all"}


def test_no_secret_flags_no_variable() -> None:
    run = cli.commands["run"]
    ctx = run.make_context("run", ["json:dumps", "-b", "h", "-g", "g", "-t", "t", "-X", "acks=1"])
    assert secret_settings(ctx) == {}


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["-X", f"sasl.password:{PASSWORD}"], {}),  # ':' for '='
        ([], {"PARAFKA_KAFKA_CONFIG": "sasl.password=pw-first half-" + PASSWORD}),  # a space
    ],
    ids=["colon", "space-in-env"],
)
def test_a_malformed_setting_next_to_a_secret_is_not_echoed(
    argv: list[str],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["run", "json:dumps", "-b", "h:1", "-g", "g", "-t", "t", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is not KEY=VALUE" in err and PASSWORD not in err
