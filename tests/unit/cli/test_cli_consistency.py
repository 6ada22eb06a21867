"""One convention for every command, pinned (issue 13, item 7).

- every ParallelConsumer parameter has a `parafka run` flag with the same default;
- every option says what it does (help text) and has a PARAFKA_* variable named by one
  rule: PARAFKA_<OPTION> for shared and `run` options, PARAFKA_<COMMAND>_<OPTION> else;
- timeouts to reach the cluster are `--connect-timeout` everywhere;
- `--log-level` choices and default are spelled alike;
- `help(ParallelConsumer)` documents every parameter.
"""

from __future__ import annotations

import inspect

import click

from parafka import ParallelConsumer
from parafka.cli import cli
from parafka.cli.config import MAIN_COMMAND, SHARED, long_name

# ParallelConsumer parameter -> `parafka run` parameter name, where they differ.
RENAMED = {"topics": "topics", "handler": "target", "retry": "max_attempts"}
# Parameters the CLI sets another way (with the flags that do it).
CLI_OTHERWISE = {
    "config_handler": "the settings dict form is the API's; the CLI has -b, -g and -X",
    "retry": "--max-attempts, --retry-backoff, --max-backoff, --no-retry",
    "kafka": "a client object (the in-memory cluster in tests); the CLI always uses Kafka",
}


def _commands(
    group: click.Group, parent: click.Context
) -> list[tuple[click.Context, click.Command]]:
    found = []
    for name in group.list_commands(parent):
        command = group.get_command(parent, name)
        assert command is not None
        ctx = click.Context(command, info_name=name, parent=parent)
        if isinstance(command, click.Group):
            found += _commands(command, ctx)
        else:
            found.append((ctx, command))
    return found


def _all() -> list[tuple[click.Context, click.Command]]:
    return _commands(cli, click.Context(cli, info_name="parafka"))


def _words(ctx: click.Context) -> tuple[str, ...]:
    words = []
    node: click.Context | None = ctx
    while node is not None and node.parent is not None:
        words.append(node.info_name or "")
        node = node.parent
    return tuple(reversed(words))


def _run_options() -> dict[str, click.Parameter]:
    ctx, command = next((c, cmd) for c, cmd in _all() if c.info_name == "run")
    return {p.name: p for p in command.get_params(ctx) if p.name}


def test_every_consumer_parameter_has_a_run_flag_with_the_same_default() -> None:
    options = _run_options()
    signature = inspect.signature(ParallelConsumer.__init__)
    for name, parameter in signature.parameters.items():
        if name == "self" or name in CLI_OTHERWISE:
            continue
        option = options.get(RENAMED.get(name, name))
        assert option is not None, f"ParallelConsumer({name}=) has no `parafka run` flag"
        default = parameter.default
        if default is inspect.Parameter.empty or default is None or name == "topics":
            continue  # required, or "unset" with a derived default said in the help
        assert option.default == default, (name, option.default, default)


def test_every_consumer_parameter_is_documented_with_its_flag() -> None:
    doc = inspect.getdoc(ParallelConsumer) or ""
    options = _run_options()
    for name in inspect.signature(ParallelConsumer.__init__).parameters:
        if name in ("self", "config_handler"):
            continue
        assert f"- {name}" in doc, f"help(ParallelConsumer) does not document {name}"
        option = options.get(RENAMED.get(name, name))
        if isinstance(option, click.Option) and name not in CLI_OTHERWISE:
            flag = long_name(option)
            assert flag is None or f"--{flag}" in doc, (name, flag)


def test_every_option_has_help_and_a_variable_named_by_the_rule() -> None:
    commands = _all()
    assert {c.info_name for c, _ in commands} >= {
        "run",
        "lag",
        "broker",
        "partitions",
        "produce",
        "tail",
    }
    for ctx, command in commands:
        words = _words(ctx)
        for option in command.get_params(ctx):
            if not isinstance(option, click.Option) or "--help" in option.opts:
                continue
            where = (" ".join(words), option.opts)
            assert option.help and option.help.strip(), f"no help: {where}"
            if option.name == "print_config":
                assert not option.envvar, f"--print-config must have no variable: {where}"
                continue
            base = (long_name(option) or option.name or "").replace("-", "_").upper()
            shared = (long_name(option) or option.name) in SHARED or words == MAIN_COMMAND
            prefix = "" if shared else "_".join(words).upper() + "_"
            assert option.envvar == f"PARAFKA_{prefix}{base}", where


def test_no_generic_variable_names_outside_run() -> None:
    for ctx, command in _all():
        if _words(ctx) == MAIN_COMMAND:
            continue
        for option in command.get_params(ctx):
            assert option.envvar not in ("PARAFKA_PORT", "PARAFKA_FROM", "PARAFKA_RATE"), option


def test_cluster_timeouts_are_connect_timeout_and_log_levels_lowercase() -> None:
    for ctx, command in _all():
        for option in command.get_params(ctx):
            if not isinstance(option, click.Option):
                continue
            assert "--timeout" not in option.opts, (ctx.info_name, "use --connect-timeout")
            if option.name == "log_level":
                assert isinstance(option.type, click.Choice)
                assert option.default in option.type.choices
                assert all(c == c.lower() for c in option.type.choices)


def test_config_help_offers_a_kafka_table_only_where_there_is_x() -> None:
    for ctx, command in _all():
        params = {p.name: p for p in command.get_params(ctx)}
        config_help = getattr(params["config"], "help", "") or ""
        assert ("[kafka]" in config_help) == ("kafka_config" in params), ctx.info_name
