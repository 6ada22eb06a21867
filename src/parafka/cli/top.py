"""`parafka top`: the live terminal panel of a consumer running in the background or on
another host, read from its web dashboard (`parafka run --dashboard-port`).

Exit codes as everywhere: 0 done (Ctrl-C leaves the live view), 1 nothing answers at the
URL, 2 bad input; one `parafka: error:` line each, never a traceback.
"""

from __future__ import annotations

import click

from parafka.cli.config import ParafkaCommand
from parafka.cli.views.top import DEFAULT_URL


@click.command(cls=ParafkaCommand)
@click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    help="The consumer's dashboard: the address of `parafka run --dashboard-port PORT`.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between two refreshes.",
)
@click.option("--once", is_flag=True, help="Print the panel once and exit (for scripts).")
def top(url: str, interval: float, once: bool) -> None:
    """Live view of a running consumer (records/s, lag per partition, errors), from its
    dashboard's /api/stats. Ctrl-C leaves."""
    from rich.console import Console

    from parafka.cli.views.top import top as show

    show(url, interval, once, Console())
