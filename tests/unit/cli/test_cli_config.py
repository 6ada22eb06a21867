"""Configuration from PARAFKA_* variables and --config FILE: names, precedence, errors,
--print-config. No broker: --print-config exits before anything connects."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from parafka.cli import cli, main
from parafka.cli.config import ParafkaCommand, ParafkaGroup
from parafka.cli.supervisor import run_arguments

RUN = ["run", "json:dumps", "-b", "127.0.0.1:1", "-g", "group", "-t", "topic"]


@pytest.fixture(autouse=True)
def no_parafka_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("PARAFKA_")]:
        monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "parafka.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def effective(args: list[str], env: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """--print-config of `args`, as {key: (value, origin)}; [kafka] keys as 'kafka.KEY'."""
    result = CliRunner().invoke(cli, [*args, "--print-config"], env=env)
    assert result.exit_code == 0, result.output
    settings: dict[str, tuple[str, str]] = {}
    prefix = ""
    for line in result.output.splitlines():
        if line == "[kafka]":
            prefix = "kafka."
        elif " = " in line and not line.startswith("#"):
            key, _, rest = line.partition(" = ")
            value, _, origin = rest.partition("  # ")
            settings[prefix + key.strip().strip('"')] = (value.strip(), origin.strip())
    return settings


# -- names -------------------------------------------------------------------------------


def _options(group: click.Group) -> list[tuple[str, click.Option]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += [(f"{name} {n}", o) for n, o in _options(command)]
            continue
        found += [(name, p) for p in command.params if isinstance(p, click.Option)]
    return found


def test_every_option_of_every_command_has_a_parafka_variable() -> None:
    """The naming rule itself is pinned in test_cli_consistency.py."""
    options = _options(cli)
    assert {name for name, _ in options} >= {"run", "broker", "partitions"}
    for command in cli.commands.values():
        assert isinstance(command, ParafkaCommand | ParafkaGroup), command.name


@pytest.mark.parametrize(
    ("option", "variable"),
    [
        ("--group", "PARAFKA_GROUP"),
        ("--bootstrap-servers", "PARAFKA_BOOTSTRAP_SERVERS"),
        ("--max-buffered", "PARAFKA_MAX_BUFFERED"),
        ("--output-topic", "PARAFKA_OUTPUT_TOPIC"),
        ("-X", "PARAFKA_KAFKA_CONFIG"),
        ("--config", "PARAFKA_CONFIG"),
        ("--print-config", None),
    ],
)
def test_variable_names(option: str, variable: str | None) -> None:
    run = cli.commands["run"]
    root = click.Context(cli, info_name="parafka")
    params = run.get_params(click.Context(run, info_name="run", parent=root))
    param = next(p for p in params if option in p.opts)
    assert param.envvar == variable


def test_a_command_or_option_added_later_gets_its_variable_and_the_file(
    tmp_path: Path,
) -> None:
    @click.group(cls=ParafkaGroup)
    def app() -> None:
        pass

    seen: dict[str, Any] = {}

    @app.group()
    def dlq() -> None:
        pass

    @dlq.command()
    @click.option("--from-offset", type=int, default=0)
    @click.option("--limit", type=int, default=None)
    def replay(from_offset: int, limit: int | None, dry_run: bool) -> None:
        seen.update(from_offset=from_offset, limit=limit, dry_run=dry_run)

    replay.params.append(click.Option(["--dry-run"], is_flag=True))  # added after creation
    assert isinstance(dlq, ParafkaGroup) and isinstance(replay, ParafkaCommand)
    result = CliRunner().invoke(app, ["dlq", "replay", "--help"])
    assert "PARAFKA_DLQ_REPLAY_FROM_OFFSET" in result.output
    assert "PARAFKA_DLQ_REPLAY_DRY_RUN" in result.output
    path = write(tmp_path, "limit = 5\n[dlq.replay]\nfrom_offset = 2\n")
    env = {"PARAFKA_DLQ_REPLAY_DRY_RUN": "true"}
    result = CliRunner().invoke(app, ["dlq", "replay", "--config", path], env=env)
    assert result.exit_code == 0, result.output
    assert seen == {"from_offset": 2, "limit": 5, "dry_run": True}


# -- precedence: flag > env > file > default ----------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "file", "expected"),
    [
        (None, None, None, ("16", "default")),
        (None, None, "32", ("32", "file")),
        (None, "48", "32", ("48", "env PARAFKA_CONCURRENCY")),
        ("64", "48", "32", ("64", "flag")),
        ("64", None, "32", ("64", "flag")),
        ("64", "48", None, ("64", "flag")),
    ],
)
def test_precedence(
    tmp_path: Path, flag: str | None, env: str | None, file: str | None, expected: tuple[str, str]
) -> None:
    args = list(RUN)
    if file is not None:
        args += ["--config", write(tmp_path, f"concurrency = {file}\n")]
    if flag is not None:
        args += ["-c", flag]
    value, origin = effective(args, env={"PARAFKA_CONCURRENCY": env} if env else None)[
        "concurrency"
    ]
    assert value == expected[0]
    assert origin.startswith(expected[1])


def test_the_handler_runs_with_the_effective_values(tmp_path: Path) -> None:
    """Not only --print-config: the command's function gets what the sources say."""
    seen: dict[str, Any] = {}

    @click.command(cls=ParafkaCommand)
    @click.option("--group", required=True)
    @click.option("--ordering", default="key")
    @click.option("-c", "--concurrency", type=int, default=16)
    @click.option("-X", "kafka_config", multiple=True)
    def command(group: str, ordering: str, concurrency: int, kafka_config: Any) -> None:
        seen.update(group=group, ordering=ordering, concurrency=concurrency)

    path = write(tmp_path, 'group = "from-file"\nordering = "partition"\nconcurrency = 8\n')
    result = CliRunner().invoke(
        command, ["--config", path, "-c", "4"], env={"PARAFKA_ORDERING": "unordered"}
    )
    assert result.exit_code == 0, result.output
    assert seen == {"group": "from-file", "ordering": "unordered", "concurrency": 4}


def test_required_options_can_come_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'bootstrap-servers = "h:1"\ngroup = "g"\ntopic = ["a", "b"]\n')
    settings = effective(["run", "json:dumps", "--config", path])
    assert settings["bootstrap-servers"][0] == '"h:1"'
    assert settings["group"][0] == '"g"'
    assert settings["topic"][0] == '["a", "b"]'


def test_dashes_or_underscores_and_a_single_topic(tmp_path: Path) -> None:
    path = write(tmp_path, 'max_buffered = 5000\nretry-backoff = 2\ntopic = "only"\n')
    settings = effective([*RUN[:-2], "--config", path])
    assert settings["max-buffered"][0] == "5000"
    assert settings["retry-backoff"][0] == "2.0"
    assert settings["topic"][0] == '["only"]'


def test_the_config_file_itself_can_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "max-attempts = 9\n")
    settings = effective(RUN, env={"PARAFKA_CONFIG": path})
    assert settings["max-attempts"] == ("9", f"file {path}")


def test_kafka_settings_merge_key_by_key_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[kafka]\nsecurity.protocol = "SASL_SSL"\n"linger.ms" = 5\n"client.id" = "file"\n'
        "enable.idempotence = true\n",
    )
    settings = effective(
        [*RUN, "--config", path, "-X", "client.id=flag"],
        env={"PARAFKA_KAFKA_CONFIG": "linger.ms=7 client.id=env"},
    )
    assert settings["kafka.security.protocol"] == ('"SASL_SSL"', f"file {path}")
    assert settings["kafka.enable.idempotence"] == ('"true"', f"file {path}")
    assert settings["kafka.linger.ms"] == ('"7"', "env PARAFKA_KAFKA_CONFIG")
    assert settings["kafka.client.id"] == ('"flag"', "flag")


def test_top_level_keys_reach_every_command_that_has_the_option(tmp_path: Path) -> None:
    """`concurrency` sizes like it runs; a [partitions] table speaks to that command only."""
    path = write(tmp_path, "concurrency = 40\nper-record-ms = 10\n[partitions]\nkeys = 7\n")
    args = ["partitions", "--config", path, "--target-rate", "100", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert '"concurrency": 40' in result.output
    assert '"keys": 7' in result.output


def test_print_config_output_is_a_config_file(tmp_path: Path) -> None:
    first = write(tmp_path, 'group = "g"\nbatch-wait = 0.2\n[kafka]\n"linger.ms" = "3"\n')
    result = CliRunner().invoke(cli, [*RUN[:4], "--config", first, "-t", "a", "--print-config"])
    assert result.exit_code == 0, result.output
    document = tomllib.loads(result.output)
    assert document["batch-wait"] == 0.2
    assert document["kafka"] == {"linger.ms": "3"}
    again = write(tmp_path, result.output, "again.toml")
    values = {
        key: value
        for key, (value, _) in effective(["run", "json:dumps", "--config", again]).items()
    }
    assert values == {
        key: value
        for key, (value, _) in effective([*RUN[:4], "--config", first, "-t", "a"]).items()
    }


# -- --print-config ------------------------------------------------------------------------


def test_print_config_masks_secrets_and_does_not_connect_or_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[kafka]\n"sasl.password" = "file-secret-1"\n')
    os.environ["PARAFKA_KAFKA_CONFIG"] = "ssl.key.password=env-secret-2"
    try:
        code = main(
            ["run", "no_such_module_anywhere:handle", "-b", "127.0.0.1:1", "-g", "g", "-t", "t",
             "--config", path, "-X", "sasl.oauthbearer.config=flag-secret-3", "--print-config"]
        )  # fmt: skip
    finally:
        del os.environ["PARAFKA_KAFKA_CONFIG"]
    out = capsys.readouterr().out
    assert code == 0
    for secret in ("file-secret-1", "env-secret-2", "flag-secret-3"):
        assert secret not in out
    assert out.count('"*****"') == 3
    assert "no_such_module_anywhere:handle" in out  # shown, never imported


# -- file errors: one line naming the file and the key, exit 2 ----------------------------


def file_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("parafka: error: ")
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("concurency = 3\n", ["unknown key 'concurency'", "did you mean 'concurrency'"]),
        ("[partitions]\ngroup = 'g'\n", ["unknown key 'group' in [partitions]"]),
        ("[consumer]\nx = 1\n", ["unknown key 'consumer'"]),
        ("config = 'other.toml'\n", ["unknown key 'config'"]),
        ("kafka = 'x'\n", ["'kafka' must be a table"]),
        ("group = ['a', 'b']\n", ["'group' takes one value, not a list"]),
        ("group = {a = 1}\n", ["'group' is a table"]),
        ("max_buffered = 1\nmax-buffered = 2\n", ["'max-buffered' is set twice"]),
        ("[kafka]\n'linger.ms' = [1]\n", ["[kafka] 'linger.ms' is a list"]),
        ("group = \n", ["is not valid TOML"]),
        ('concurrency = "many"\n', ["'--concurrency'", "'many'", "(from config file"]),
    ],
)
def test_file_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needles: list[str]
) -> None:
    path = write(tmp_path, text)
    line = file_error(capsys, [*RUN, "--config", path])
    assert path in line
    for needle in needles:
        assert needle in line


def test_a_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = file_error(capsys, [*RUN, "--config", str(tmp_path / "absent.toml")])
    assert "absent.toml" in line and "does not exist" in line


def test_a_bad_value_from_the_environment_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARAFKA_MAX_ATTEMPTS", "lots")
    line = file_error(capsys, RUN)
    assert "'--max-attempts'" in line and "(from PARAFKA_MAX_ATTEMPTS)" in line


def test_a_bad_flag_is_not_blamed_on_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    line = file_error(capsys, [*RUN, "--max-attempts", "lots"])
    assert "PARAFKA_MAX_ATTEMPTS" not in line


# -- --processes children -----------------------------------------------------------------


def test_children_get_flags_and_the_file_but_not_values_from_env_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child inherits the environment and re-reads --config; secrets from either never
    reach its command line."""
    path = write(tmp_path, 'group = "g"\n[kafka]\n"sasl.password" = "file-secret"\n')
    monkeypatch.setenv("PARAFKA_OUTPUT_TOPIC", "out")
    monkeypatch.setenv("PARAFKA_PROCESSES", "2")  # the child must not supervise in turn
    run = cli.commands["run"]
    ctx = run.make_context(
        "run", ["json:dumps", "-b", "h:1", "-t", "a", "--config", path, "-X", "linger.ms=1"]
    )
    arguments = run_arguments(ctx, reset="processes")
    assert arguments == ["run", "--bootstrap-servers", "h:1", "--topic", "a", "-X",
                         "linger.ms=1", "--processes", "1", "--config", path, "--",
                         "json:dumps"]  # fmt: skip
