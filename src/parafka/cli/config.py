"""Where each `parafka` option's value comes from: flag > PARAFKA_* env > --config > default.

`ParafkaGroup` makes every command it creates a `ParafkaCommand`, which

- gives each option an environment variable by one convention, so options added later
  get one too: the options every Kafka command shares (`SHARED`) and those of `run`, the
  main command, are PARAFKA_<OPTION> (`--max-buffered` -> PARAFKA_MAX_BUFFERED; an option
  with only a short flag uses its parameter name: `-X` -> PARAFKA_KAFKA_CONFIG); another
  command's own options are PARAFKA_<COMMAND>_<OPTION> (`broker --port` ->
  PARAFKA_BROKER_PORT), so a generic name such as PARAFKA_PORT never leaks between
  commands; `--print-config` has none (it would make every command print and exit);
- adds `--config FILE`: a TOML file read before the other options, fed to click as the
  context's `default_map` (click's own order is command line > envvar > default_map >
  default), its `[kafka]` table merged under `-X`;
- adds `--print-config`: print the effective values and their origins, secrets masked,
  and exit 0 before the command runs (nothing connects).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource

from parafka.cli import config_file
from parafka.cli.config_file import CommandSpec, FileValues, OptionSpec
from parafka.kafka.config import is_secret

ENV_PREFIX = "PARAFKA_"
KAFKA_PARAM = "kafka_config"  # -X KEY=VALUE, a dict after its callback
CONFIG_PARAM, PRINT_PARAM = "config", "print_config"
_OWN = (CONFIG_PARAM, PRINT_PARAM)
_FILE_META = "parafka.config_file"
MASK = "*****"
# A `--processes` supervisor hands its children the secret -X flags here (JSON), not on
# their command lines (supervisor.secret_settings).
INHERITED_SECRETS = "_PARAFKA_INHERITED_SECRETS"


def long_name(option: click.Option) -> str | None:
    """The option's first `--name`, without the dashes (None for `-X` alone)."""
    return next((o[2:] for o in option.opts if o.startswith("--")), None)


# Options that mean the same on every command: one variable serves them all.
SHARED = frozenset(
    {"bootstrap-servers", "group", "kafka_config", "connect-timeout", "log-level", "config"}
)
MAIN_COMMAND = ("run",)  # its options keep the short PARAFKA_<OPTION> names


def envvar_for(option: click.Option, command: Sequence[str] = MAIN_COMMAND) -> str:
    """PARAFKA_[COMMAND_]OPTION, upper case (see the module's docstring for the rule)."""
    base = long_name(option) or option.name or ""
    words = [] if base in SHARED or tuple(command) == MAIN_COMMAND else list(command)
    return ENV_PREFIX + "_".join([*words, base]).replace("-", "_").upper()


def name_envvars(params: Sequence[click.Parameter], command: Sequence[str]) -> None:
    """Give every option without an environment variable its PARAFKA_* one."""
    for param in params:
        if not isinstance(param, click.Option) or param.envvar or not param.name:
            continue
        if param.name == PRINT_PARAM or param.name == "help":
            continue
        param.envvar = envvar_for(param, command)
        param.show_envvar = True


def command_words(ctx: click.Context) -> tuple[str, ...]:
    """The command's names below the program: ("dlq", "replay") for `parafka dlq replay`."""
    chain = _chain(ctx)
    if len(chain) == 1:
        return ()  # a lone command is a program of its own: no prefix
    return tuple(c.info_name or c.command.name or "" for c in chain[1:])


class ParafkaCommand(click.Command):
    """A command whose options also come from PARAFKA_* variables and `--config`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = {p.name for p in self.params}
        if CONFIG_PARAM not in names:
            self.params.append(
                click.Option(
                    ["--config"],
                    metavar="FILE",
                    is_eager=True,  # read before the options it supplies
                    expose_value=True,
                    callback=_read_config_file,
                    help="TOML file with option values"
                    + (" and a [kafka] table for -X settings." if KAFKA_PARAM in names else "."),
                )
            )
        if PRINT_PARAM not in names:
            self.params.append(
                click.Option(
                    ["--print-config"],
                    is_flag=True,
                    help="Print the effective settings and where each came from, then exit.",
                )
            )

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        name_envvars(self.params, command_words(ctx))  # options added later get theirs too
        return super().get_params(ctx)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.MissingParameter:
            raise  # its hint names the variable that would have supplied it
        except click.BadParameter as exc:
            raise _noted(exc, _origin_note(ctx, exc.param)) from None

    def invoke(self, ctx: click.Context) -> Any:
        values, kafka_origins = effective_values(ctx)
        if ctx.params.get(PRINT_PARAM):
            click.echo(render_settings(describe(ctx, values, kafka_origins)), nl=False)
            ctx.exit(0)
        if self.callback is None:
            return None
        return ctx.invoke(self.callback, **values)


class ParafkaGroup(click.Group):
    """A group whose commands (and sub-groups) are ParafkaCommands."""

    command_class = ParafkaCommand
    group_class = type  # sub-groups are ParafkaGroups too


def command_spec(command: click.Command, ctx: click.Context | None = None) -> CommandSpec:
    """What the config file may say to `command` (and, for a group, to its commands)."""
    if isinstance(command, click.Group):
        context = ctx or click.Context(command)
        subs = {}
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None:
                subs[name] = command_spec(sub, context)
        return CommandSpec(commands=subs)
    options = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in _OWN or param.name is None:
            continue
        option_name = long_name(param)
        if option_name is not None:  # -X has none: its values live in [kafka]
            options[config_file.file_key(option_name)] = OptionSpec(
                param=param.name, multiple=param.multiple, flag=param.is_flag
            )
    return CommandSpec(options=options)


def _read_config_file(ctx: click.Context, _param: click.Parameter, path: str | None) -> Any:
    """Eager callback of --config: load the file and hand its values to click."""
    if path is None or ctx.resilient_parsing:
        return path
    root_ctx = ctx.find_root()
    if root_ctx is ctx:  # a lone command, not inside a group
        name: str = ctx.info_name or ctx.command.name or "command"
        spec, names = CommandSpec(commands={name: command_spec(ctx.command)}), [name]
    else:
        spec = command_spec(root_ctx.command, root_ctx)
        names = [c.info_name or "" for c in _chain(ctx)][1:]
    values = config_file.load(path, spec, tuple(names))
    ctx.default_map = {**(ctx.default_map or {}), **values.options}
    ctx.meta[_FILE_META] = values
    return path


def _noted(exc: click.BadParameter, note: str) -> click.BadParameter:
    """The same error, saying where the bad value came from (click's own hint names the
    option's variable whatever the value's source, which misleads for a typed flag)."""
    hint = exc.param_hint
    if hint is None and exc.param is not None:
        hint = " / ".join(f"'{o}'" for o in exc.param.opts)
    return click.BadParameter(exc.message + note, ctx=exc.ctx, param=exc.param, param_hint=hint)


def _chain(ctx: click.Context) -> list[click.Context]:
    chain = []
    node: click.Context | None = ctx
    while node is not None:
        chain.append(node)
        node = node.parent
    return chain[::-1]


def _origin_note(ctx: click.Context, param: click.Parameter | None) -> str:
    """' (from PARAFKA_X)' or ' (from config file f.toml)' for a value not typed as a flag."""
    if param is None or param.name is None:
        return ""
    source = ctx.get_parameter_source(param.name)
    if source is ParameterSource.ENVIRONMENT:
        return f" (from {param.envvar})"
    if source is ParameterSource.DEFAULT_MAP:
        loaded = ctx.meta.get(_FILE_META)
        return f" (from config file {loaded.path!r})" if loaded else ""
    return ""


def effective_values(ctx: click.Context) -> tuple[dict[str, Any], dict[str, str]]:
    """The values the command runs with, and where each -X setting came from.

    `-X` is merged key by key: [kafka] in the file, then PARAFKA_KAFKA_CONFIG, then -X
    flags. ctx.params keeps the flags alone, which is what a supervisor repeats.
    """
    values = {k: v for k, v in ctx.params.items() if k not in _OWN}
    if KAFKA_PARAM not in values:
        return values, {}
    param = next(p for p in ctx.command.params if p.name == KAFKA_PARAM)
    loaded: FileValues | None = ctx.meta.get(_FILE_META)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if loaded is not None:
        layers.append((f"file {loaded.path}", loaded.kafka))
    source = ctx.get_parameter_source(KAFKA_PARAM)
    if source is ParameterSource.COMMANDLINE and isinstance(param.envvar, str):
        layers.append((f"env {param.envvar}", _from_env(ctx, param)))
    if source is ParameterSource.ENVIRONMENT:
        layers.append((f"env {param.envvar}", values[KAFKA_PARAM] or {}))
    elif source is ParameterSource.COMMANDLINE:
        layers.append(("flag", values[KAFKA_PARAM] or {}))
    inherited = _inherited_secrets()
    if inherited:
        layers.append(("flag", inherited))
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for origin, layer in layers:
        merged.update(layer)
        origins.update(dict.fromkeys(layer, origin))
    values[KAFKA_PARAM] = merged
    return values, origins


def _inherited_secrets() -> dict[str, str]:
    """Secret -X flags of the supervisor that started this process, if any."""
    raw = os.environ.get(INHERITED_SECRETS)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise click.UsageError(f"{INHERITED_SECRETS} is not a JSON object; unset it")
    return {str(k): str(v) for k, v in value.items()}


def _from_env(ctx: click.Context, param: click.Parameter) -> Mapping[str, Any]:
    """-X settings in the environment when -X flags were given too (click then ignores the
    variable; parafka merges them under the flags)."""
    raw = os.environ.get(param.envvar) if isinstance(param.envvar, str) else None
    if not raw:
        return {}
    try:
        value = param.type_cast_value(ctx, param.type.split_envvar_value(raw))
        return param.callback(ctx, param, value) if param.callback else {}
    except click.BadParameter as exc:
        located = click.BadParameter(exc.message, ctx=ctx, param=param)
        raise _noted(located, f" (from {param.envvar})") from None


@dataclass(frozen=True)
class Setting:
    """One line of --print-config."""

    key: str
    value: Any  # None: not set
    origin: str
    secret: bool = False
    kafka: bool = False  # a librdkafka setting ([kafka] table)


def describe(
    ctx: click.Context, values: Mapping[str, Any], kafka_origins: Mapping[str, str]
) -> list[Setting]:
    """Every option of the command with its effective value and origin."""
    loaded: FileValues | None = ctx.meta.get(_FILE_META)
    settings = []
    for param in ctx.command.params:
        if param.name is None or param.name in _OWN:
            continue
        if isinstance(param, click.Argument):
            settings.append(Setting(param.human_readable_name, values.get(param.name), "argument"))
            continue
        if param.name == KAFKA_PARAM:
            settings.extend(
                Setting(key, value, kafka_origins.get(key, "flag"), is_secret(key), kafka=True)
                for key, value in (values.get(param.name) or {}).items()
            )
            continue
        key = config_file.file_key(
            (long_name(param) if isinstance(param, click.Option) else None) or param.name
        )
        origin = _origin(ctx, param, loaded)
        settings.append(Setting(key, values.get(param.name), origin, is_secret(key)))
    config_origin = _origin(ctx, _param(ctx, CONFIG_PARAM), loaded)
    if loaded is not None:
        settings.insert(0, Setting("config", loaded.path, config_origin))
    return settings


def _param(ctx: click.Context, name: str) -> click.Parameter:
    return next(p for p in ctx.command.params if p.name == name)


def _origin(ctx: click.Context, param: click.Parameter, loaded: FileValues | None) -> str:
    source = ctx.get_parameter_source(param.name or "")
    if source is ParameterSource.COMMANDLINE:
        return "flag"
    if source is ParameterSource.ENVIRONMENT:
        return f"env {param.envvar}"
    if source is ParameterSource.DEFAULT_MAP and loaded is not None:
        return f"file {loaded.path}"
    return "default"


def render_settings(settings: Sequence[Setting]) -> str:
    """The settings as a TOML document (a config file, secrets masked), origins as comments."""
    header = [
        "# effective settings; precedence: flag > env (PARAFKA_*) > file (--config) > default",
    ]
    lines: list[tuple[str, str]] = []
    kafka: list[tuple[str, str]] = []
    for setting in settings:
        if setting.origin == "argument":
            header.append(f"# {setting.key}: {_toml(setting.value)}")
            continue
        if setting.kafka:
            kafka.append((f"{json.dumps(setting.key)} = {_shown(setting)}", setting.origin))
        elif setting.key == "config":
            header.append(f"# config file: {setting.value} ({setting.origin})")
        elif setting.value is None or setting.value == ():
            lines.append((f"# {setting.key}: not set", setting.origin))
        else:
            lines.append((f"{setting.key} = {_shown(setting)}", setting.origin))
    width = max((len(text) for text, _ in lines + kafka), default=0)
    body = [f"{text:<{width}}  # {origin}" for text, origin in lines]
    if kafka:
        body += ["", f"[{config_file.KAFKA_TABLE}]"]
        body += [f"{text:<{width}}  # {origin}" for text, origin in kafka]
    return "\n".join(header + body) + "\n"


def _shown(setting: Setting) -> str:
    return json.dumps(MASK) if setting.secret else _toml(setting.value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))
