"""Pieces every `parafka` subcommand shares: common options, `-X` parsing and logging."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from typing import TextIO

import click

from parafka.kafka_config import is_secret
from parafka.logs import QuietRepeats

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


# Options several commands take, declared once (each use makes a new click.Option).
bootstrap_option = click.option(
    "-b", "--bootstrap-servers", required=True, help="Kafka bootstrap servers, host:port[,...]."
)
kafka_config_option = click.option(
    "-X",
    "kafka_config",
    multiple=True,
    callback=key_values,
    metavar="KEY=VALUE",
    help="Any librdkafka setting, e.g. -X security.protocol=SASL_SSL; repeatable. One default "
    "differs from librdkafka's: auto.offset.reset=earliest (a new group starts at the oldest "
    "record; -X auto.offset.reset=latest for new records only). bootstrap.servers and group.id "
    "come from -b and -g.",
)
connect_timeout_option = click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the cluster before giving up.",
)
log_level_option = click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="How much to log; debug shows every handler failure with its traceback.",
)
