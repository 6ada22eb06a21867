"""Pieces every `parafka` subcommand shares: common options, `-X` parsing and logging."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO, TypeVar

import click

from parafka.core.options import AUTO, Kind, Option, option
from parafka.core.ratelimit import parse_rate
from parafka.executors import usable_cores
from parafka.kafka.config import is_secret
from parafka.kafka.logs import QuietRepeats

FC = TypeVar("FC", bound=Callable[..., Any])

LOG_LEVELS = ("debug", "info", "warning", "error")
_SETTING_NAME = re.compile(r"[A-Za-z0-9._-]+")  # librdkafka's setting names


def key_values(
    _ctx: click.Context, _param: click.Parameter, values: Sequence[str]
) -> dict[str, str]:
    """Click callback for repeated `-X KEY=VALUE` options: a dict of librdkafka settings."""
    config = {}
    # A malformed item may be (part of) a password: `sasl.password:x`, or the tail of a
    # value with a space in PARAFKA_KAFKA_CONFIG. Never echo it when secrets are around.
    hide = any(is_secret(item) for item in values)
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or (hide and not _SETTING_NAME.fullmatch(key.strip())):
            shown = "an item (not shown: it is next to secret settings)" if hide else repr(item)
            raise click.BadParameter(
                f"{shown} is not KEY=VALUE: write it like -X fetch.max.bytes=1048576"
            )
        config[key.strip()] = value
    return config


def setup_logging(level: str) -> None:
    """Log lines to stderr; repeated warnings folded unless at DEBUG."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        handlers=[log_handler(level)],
    )


def log_handler(level: str, stream: TextIO | None = None) -> logging.Handler:
    """The CLI's log handler: repeated warnings and errors are folded (librdkafka's own
    lines are folded where they are logged, `client_logger`); information lines such as
    "assigned ..." and "revoked ..." are state changes and always shown."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if level.upper() != "DEBUG":
        handler.addFilter(QuietRepeats(min_level=logging.WARNING))
    return handler


class Concurrency(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """-c N (a whole number >= 1) or -c auto."""

    name = "N|auto"
    examples = "use -c 16 or -c auto"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        text = str(value).strip().lower()
        if text == AUTO:
            return AUTO
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"{value!r} is not a whole number >= 1 or 'auto': {self.examples}")


class Processes(Concurrency):
    """--processes N (a whole number >= 1) or --processes auto: one per usable core."""

    examples = "use --processes 2, or --processes auto for one per core"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        count = super().convert(value, param, ctx)
        return usable_cores() if count == AUTO else int(count)  # as the advice counts them


class Rate(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """N/s, N/min or N (per second): records per second."""

    name = "N/s"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            return parse_rate(value if isinstance(value, int | float) else str(value))
        except ValueError as exc:
            self.fail(str(exc))


def click_type(option: Option) -> click.ParamType | None:  # type: ignore[type-arg]
    """How the command line reads a value of `option.kind` (None: a plain string)."""
    kinds: dict[Kind, click.ParamType | None] = {  # type: ignore[type-arg]
        "text": None,
        "count": click.IntRange(min=1),
        "size": click.IntRange(min=0),
        "seconds": click.FloatRange(min=0, min_open=True),
        "delay": click.FloatRange(min=0),
        "port": click.IntRange(0, 65535),
        "rate": Rate(),
        "concurrency": Concurrency(),
        "choice": click.Choice(option.choices),
        "flag": None,
        "kafka": None,
    }
    return kinds[option.kind]


def setting_option(name: str) -> Callable[[FC], FC]:
    """The click option of setting `name`, from its declaration (options.py): flags,
    default, choices and help are written there only."""
    declared = option(name)
    default = declared.command_default
    seconds = declared.kind in ("seconds", "delay")
    settings: dict[str, Any] = {
        "type": click_type(declared),
        "required": declared.required,
        "multiple": declared.multiple,
        "metavar": declared.metavar or ("SECONDS" if seconds else None),
        "help": declared.help,
    }
    if declared.kind == "kafka":
        settings["callback"] = key_values
    if declared.kind == "flag":
        settings.update(is_flag=True, default=default)
    elif not (declared.required or declared.multiple):
        settings["default"] = default
        if default is not None:
            settings["show_default"] = True
        elif declared.unset:
            settings["help"] += f"  [default: {declared.unset}]"
    return click.option(*declared.flags, name, **settings)


# Options several commands take, declared once (each use makes a new click.Option).
bootstrap_option = setting_option("bootstrap_servers")
kafka_config_option = setting_option("kafka_config")
connect_timeout_option = setting_option("connect_timeout")
log_level_option = click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="How much to log; debug shows every handler failure with its traceback.",
)
