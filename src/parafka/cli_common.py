"""Pieces every `parafka` subcommand shares: common options, `-X` parsing and logging."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from parafka.logs import QuietRepeats

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def key_values(
    _ctx: click.Context, _param: click.Parameter, values: Sequence[str]
) -> dict[str, str]:
    """Click callback for repeated `-X KEY=VALUE` options: a dict of librdkafka settings."""
    config = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{item!r} is not KEY=VALUE: write it like -X fetch.max.bytes=1048576"
            )
        config[key.strip()] = value
    return config


def setup_logging(level: str) -> None:
    """Log lines to stderr; librdkafka's repeats folded unless at DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    if level.upper() != "DEBUG":
        handler.addFilter(QuietRepeats())
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        handlers=[handler],
    )


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
    help="Any librdkafka setting, e.g. -X security.protocol=SASL_SSL; repeatable.",
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
    default="INFO",
    show_default=True,
)
