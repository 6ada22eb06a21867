"""`parafka run` with its views: the live terminal panel and the web dashboard around
`ParallelConsumer.run()`, both stopped (threads joined, port released) when it returns."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from rich.console import Console

from parafka.cli.views.terminal import LiveView
from parafka.cli.views.web import Dashboard
from parafka.core.stats import Activity, Stats
from parafka.engine.consumer import ParallelConsumer


def terminal_console() -> Console | None:
    """A console on stderr when stderr is a terminal that can redraw; else None.

    stderr itself must be a TTY (FORCE_COLOR makes rich treat a file as a terminal), and
    rich's own checks apply too (TERM=dumb, TTY_INTERACTIVE=0 turn the panel off).
    """
    console = Console(stderr=True)
    if sys.stderr.isatty() and console.is_interactive:
        return console
    return None


def run_with_views(
    consumer: ParallelConsumer,
    until_idle: float | None,
    *,
    live: bool,
    dashboard_port: int | None,
    dashboard_host: str,
    title: str,
    control_token: str | None = None,
    activity: Activity | None = None,
) -> Stats:
    """Run the consumer in the foreground with the views asked for.

    `live`: the terminal panel, when stderr is a terminal. The dashboard binds its port
    before the consumer starts, so a port in use fails at once (ConfigError); with
    `control_token` it serves the control plane's actions too. `activity`
    is fed the consumer's snapshots, for the summary line.
    """
    with ExitStack() as views:
        if activity is not None:
            views.enter_context(_watched(consumer, activity))
        if dashboard_port is not None:
            views.enter_context(
                Dashboard(
                    consumer,
                    dashboard_port,
                    dashboard_host,
                    title=title,
                    control_token=control_token,
                )
            )
        console = terminal_console() if live else None
        if console is not None:
            progress = until_idle is not None  # a finite job: show how far it got
            views.enter_context(
                LiveView(consumer.stats, console, title=title, show_progress=progress)
            )
        return consumer.run(until_idle=until_idle)


@contextmanager
def _watched(consumer: ParallelConsumer, activity: Activity) -> Iterator[None]:
    """Feed `activity` the consumer's snapshots while the block runs (and the last one)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(activity.every):
            activity.observe(time.monotonic(), consumer.stats().processed)

    thread = threading.Thread(target=watch, name="parafka-activity", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        activity.observe(time.monotonic(), consumer.stats().processed)
