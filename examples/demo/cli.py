"""The demo's command line (`make demo`, `python -m examples.demo`): its scenes against a local
broker or any cluster. It uses parafka's shared options, so PARAFKA_* variables and --config work
as they do for `parafka run`."""

from __future__ import annotations

import click

from examples.demo.catalog import NAMES
from parafka.cli.common import connect_timeout_option, kafka_config_option
from parafka.cli.config import ParafkaCommand


@click.command(cls=ParafkaCommand)
@click.option(
    "-b",
    "--bootstrap-servers",
    default=None,
    help="Run on this cluster (host:port[,host:port])  [default: start a local broker]",
)
@kafka_config_option
@click.option("--quick", is_flag=True, help="Tiny sizes: every scene in seconds (for tests).")
@click.option(
    "--scene",
    "scenes",
    multiple=True,
    type=click.Choice(NAMES),
    help="Play only this scene; repeatable  [default: all, in order]",
)
@click.option("--no-live", is_flag=True, help="Log lines instead of the live view.")
@connect_timeout_option
def demo(
    bootstrap_servers: str | None,
    kafka_config: dict[str, str],
    quick: bool,
    scenes: tuple[str, ...],
    no_live: bool,
    connect_timeout: float,
) -> None:
    """Show what parafka does, measured: IO-bound jobs, an md5 transformer, an anomaly
    detector under rising load, ordering modes on few partitions, two groups on one topic.

    Each scene checks what it claims (every record processed, order held); the exit status
    is 1 if a check failed. On a cluster given with -b the demo creates topics and groups
    named parafka-demo-* and deletes them at the end. Run it from the root of a parafka
    checkout: the md5 and anomaly scenes use the examples beside it.
    """
    from examples.demo.runner import main

    code = main(bootstrap_servers, kafka_config, quick, scenes, not no_live, connect_timeout)
    click.get_current_context().exit(code)
