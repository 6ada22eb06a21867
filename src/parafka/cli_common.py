"""Pieces every `parafka` subcommand shares: `-X` parsing and logging."""

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
