"""Every setting is declared once (parafka.core.options); everything else agrees with it.

A setting added in one place only fails here: ParallelConsumer's keyword arguments,
Settings' fields, the `parafka run` options (and so their PARAFKA_* variables, `--config`
keys and `--print-config` lines), help(ParallelConsumer), the table in docs/usage.md and
the README's core flags.

`python -m tests.unit.core.test_options` rewrites the docs table from the declarations.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from parafka import ParallelConsumer
from parafka.cli import cli
from parafka.cli.config import command_spec, envvar_for
from parafka.cli.config_file import file_key
from parafka.core.options import EXECUTORS, KINDS, OPTIONS, Option, option
from parafka.core.retry import RetryPolicy
from parafka.engine.settings import Settings
from parafka.observe.health import HealthPolicy
from parafka.observe.monitor import MonitorSettings

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "usage.md"
BEGIN = (
    "<!-- every setting: generated from parafka.core.options "
    "(python -m tests.unit.core.test_options) -->"
)
END = "<!-- end of every setting -->"
# `parafka run` options that belong to the command, not to a ParallelConsumer.
RUN_OWN = {
    "target",
    "until_idle",
    "log_level",
    "processes",
    "no_dashboard",
    "dashboard_port",
    "dashboard_host",
    "control_token",
    "config",
    "print_config",
}
# The positional arguments: the handler, or a settings dict and then the handler.
POSITIONAL = {"self", "handler", "config_handler"}


def _run() -> tuple[click.Context, click.Command]:
    root = click.Context(cli, info_name="parafka")
    command = cli.commands["run"]
    return click.Context(command, info_name="run", parent=root), command


def _run_params() -> dict[str, click.Parameter]:
    ctx, command = _run()
    return {p.name: p for p in command.get_params(ctx) if p.name and "--help" not in p.opts}


def _flagged() -> list[Option]:
    return [o for o in OPTIONS if o.flags]


# -- the declarations themselves -------------------------------------------------------


def test_each_setting_is_declared_once_and_well_formed() -> None:
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names)), "a setting is declared twice"
    flags = [f for o in OPTIONS for f in o.flags]
    assert len(flags) == len(set(flags)), "two settings share a flag"
    for o in OPTIONS:
        assert o.kind in KINDS, (o.name, o.kind)
        assert bool(o.choices) == (o.kind == "choice"), o.name
        assert o.help.strip() and o.group, o.name
        if o.kind == "choice" and o.command_default is not None:
            assert o.command_default in o.choices, o.name
        if o.kind == "flag":
            assert o.default is False, o.name
        assert not (o.required and o.default not in (None, ())), o.name


def test_value_objects_keep_the_declared_defaults() -> None:
    """A value object's own defaults are the declaration's, or the declaration's source."""
    retry = RetryPolicy()
    assert option("max_attempts").command_default == retry.max_attempts
    assert option("retry_backoff").default == retry.initial_backoff
    assert option("max_backoff").default == retry.max_backoff
    health = HealthPolicy()
    assert (health.stuck_after, health.join_grace) == (
        option("stuck_after").default,
        option("join_grace").default,
    )
    assert MonitorSettings(0).host == option("metrics_host").default


# -- the API ---------------------------------------------------------------------------


def test_every_keyword_argument_is_declared_with_the_same_default() -> None:
    parameters = inspect.signature(ParallelConsumer.__init__).parameters
    keywords = {n: p for n, p in parameters.items() if n not in POSITIONAL}
    declared = {o.name: o for o in OPTIONS if o.keyword}
    assert set(keywords) == set(declared), (
        f"keyword arguments without a declaration: {sorted(set(keywords) - set(declared))}; "
        f"declarations without a keyword argument: {sorted(set(declared) - set(keywords))}"
    )
    for name, parameter in keywords.items():
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameter.default == declared[name].default, (name, parameter.default)


def test_settings_fields_take_the_declared_defaults() -> None:
    for f in fields(Settings):
        if f.default is MISSING:
            continue  # required, or a default_factory (kafka_config, retry)
        if f.name == "executor":  # ParallelConsumer resolves executor=None
            assert f.default == EXECUTORS[0] == option("executor").unset
            continue
        assert f.default == option(f.name).default, f.name


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def test_help_of_parallel_consumer_states_every_default() -> None:
    doc = inspect.getdoc(ParallelConsumer) or ""
    for o in OPTIONS:
        if not o.keyword:
            continue
        said = f"- {o.name}:" if o.required else f"- {o.name}={_shown(o.default)}"
        assert said in doc, f"help(ParallelConsumer) should say {said!r}"
        if o.flags:
            long = next((f for f in o.flags if f.startswith("--")), o.flags[0])
            assert long in doc, (o.name, long)


# -- the command line ------------------------------------------------------------------


def test_every_declared_setting_is_a_run_option_built_from_its_declaration() -> None:
    params = _run_params()
    spec = command_spec(cli.commands["run"]).options
    for o in _flagged():
        param = params.get(o.name)
        assert isinstance(param, click.Option), f"`parafka run` has no option for {o.name}"
        assert tuple(param.opts + param.secondary_opts) == o.flags, o.name
        assert (param.help or "").startswith(o.help), o.name
        assert param.required == o.required and param.multiple == o.multiple, o.name
        if not (o.required or o.multiple):
            assert param.default == o.command_default, (o.name, param.default)
        if o.choices:
            assert isinstance(param.type, click.Choice)
            assert tuple(param.type.choices) == o.choices, o.name
        assert param.envvar == envvar_for(param), o.name  # PARAFKA_<LONG FLAG>
        long = next((f for f in o.flags if f.startswith("--")), None)
        if long is not None:  # the --config key is the long flag (-X: the [kafka] table)
            assert spec[file_key(long)].param == o.name, o.name


def test_every_run_option_is_declared_or_the_commands_own() -> None:
    declared = {o.name for o in _flagged()}
    for name in _run_params():
        assert name in declared or name in RUN_OWN, (
            f"`parafka run` option {name!r}: declare it in parafka.core.options (a consumer "
            "setting) or add it to RUN_OWN here (the command's own)"
        )


def test_run_hands_every_setting_on() -> None:
    """An option `run` accepts but never reads would be silently ignored."""
    run = cli.commands["run"].callback
    assert run is not None
    tree = ast.parse(textwrap.dedent(inspect.getsource(run)))
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for o in _flagged():
        assert o.name in read, f"`parafka run` takes {o.name} but does not use it"


def _print_config() -> dict[str, str]:
    args = ["run", "json:dumps", "-b", "h:1", "-g", "g", "-t", "t", "--print-config"]
    result = CliRunner().invoke(cli, args, env={})
    assert result.exit_code == 0, result.output
    lines: dict[str, str] = {}
    for line in result.output.splitlines():
        text = line.partition("  # ")[0].strip()
        if text.startswith("# ") and text.endswith(": not set"):
            lines[text[2 : -len(": not set")]] = "not set"
        elif " = " in text and not text.startswith("#"):
            key, _, value = text.partition(" = ")
            lines[key] = value
    return lines


def test_print_config_shows_every_declared_default() -> None:
    shown = _print_config()
    for o in _flagged():
        long = next((f for f in o.flags if f.startswith("--")), None)
        if long is None or o.required:
            continue
        value = o.command_default
        if value is None or value == ():
            expected = "not set"
        elif isinstance(value, bool):
            expected = "true" if value else "false"
        else:
            expected = _shown(value)
        assert shown.get(file_key(long)) == expected, (o.name, shown.get(file_key(long)))


# -- the docs --------------------------------------------------------------------------


def _cell_default(o: Option) -> str:
    value = o.command_default
    if o.required:
        return "required"
    if value is None:
        return o.unset or "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        return f"`{value}`"
    if value == ():
        return "none"
    return repr(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """The "Every setting" tables of docs/usage.md, one per group, in declaration order."""
    lines = [BEGIN]
    groups: dict[str, list[Option]] = {}
    for o in OPTIONS:
        groups.setdefault(o.group, []).append(o)
    for group, declared in groups.items():
        lines += ["", f"**{group}**", ""]
        lines += ["| `ParallelConsumer` | `parafka run` | default | what it does |"]
        lines += ["| --- | --- | --- | --- |"]
        for o in declared:
            api = f"`{o.api or o.name + '='}`"
            flags = "/".join(f"`{f}`" for f in o.flags) or "(API only)"
            lines.append(f"| {api} | {flags} | {_cell_default(o)} | {_cell(o.help)} |")
    lines += ["", END]
    return "\n".join(lines)


def _docs_table(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def test_the_docs_table_lists_every_setting_with_its_default() -> None:
    text = DOCS.read_text()
    assert BEGIN in text and END in text, f"{DOCS} lost its table markers"
    assert _docs_table(text) == markdown_table(), (
        "docs/usage.md's settings table is out of date: run python -m tests.unit.core.test_options"
    )


def test_the_readme_core_flags_say_the_declared_defaults() -> None:
    """README's "Core flags" table picks some flags; each one's default must be true."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Core flags") :]
    section = section[: section.index("\n## ", 1)]
    by_flag = {f: o for o in OPTIONS for f in o.flags}
    checked = 0
    for first, second in re.findall(r"^\|([^|]*)\|([^|]*)\|", section, re.M):
        flags = re.findall(r"--[a-z-]+|-[A-Za-z]\b", first)
        declared = list(dict.fromkeys(by_flag[f] for f in flags if f in by_flag))
        defaults = [d.strip().strip("`") for d in second.split(",")]
        if not declared or not second.strip():
            continue
        if len(defaults) == 1:  # one default said for all the row's flags
            defaults *= len(declared)
        for o, said in zip(declared, defaults, strict=True):
            expected = _cell_default(o).strip("`")
            assert said in (expected, "required"), (o.name, said, expected)
            checked += 1
    assert checked >= 10, checked


if __name__ == "__main__":
    docs = DOCS.read_text()
    DOCS.write_text(docs.replace(_docs_table(docs), markdown_table()))
    print(f"rewrote the settings table in {DOCS}")
