"""Plays the chosen scenes in order on one stage, shows them, prints the summary table.

The exit status is 0 when every check of every scene that ran passed, 1 otherwise. A scene
that cannot run here (no examples/, a missing extra) is skipped with the reason and does
not fail the demo; a scene that raises is reported as failed and the next one still runs.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from examples.demo.catalog import SCENES
from examples.demo.kafka import Stage
from examples.demo.results import SceneResult, Skip, summary_table
from examples.demo.view import LiveView, LogView, View

log = logging.getLogger("parafka.demo")


def main(
    bootstrap_servers: str | None,
    user_settings: Mapping[str, Any],
    quick: bool,
    names: Sequence[str],
    live: bool,
    connect_timeout: float = 15.0,
    console: Console | None = None,
) -> int:
    """Run the demo on the cluster at `bootstrap_servers`, or on a local broker it starts."""
    console = console or Console()
    if not console.is_terminal:  # piped: do not squeeze the table into 80 columns
        console.width = max(console.width, 150)
    chosen = [scene for scene in SCENES if not names or scene.name in names]
    view: View = (
        LiveView(console, len(chosen)) if live and console.is_terminal else LogView(console)
    )
    if bootstrap_servers is not None:
        stage = Stage.create(bootstrap_servers, user_settings, quick, local=False)
        stage.check_reachable(connect_timeout)
        return play_all(stage, chosen, view, console, where=bootstrap_servers)

    from parafka.testing import LocalBroker

    console.print(Text("starting a local broker (in memory, on a free port) ...", style="dim"))
    with LocalBroker() as broker:
        stage = Stage.create(broker.bootstrap_servers, user_settings, quick, local=True)
        return play_all(stage, chosen, view, console, where="a local broker")


def play_all(stage: Stage, chosen: Sequence[Any], view: View, console: Console, where: str) -> int:
    started = time.monotonic()
    results: list[SceneResult] = []
    quick = " (quick sizes)" if stage.quick else ""
    view.begin(f"parafka demo on {where}{quick}: {len(chosen)} scene(s)")
    try:
        for number, info in enumerate(chosen, start=1):
            panel = view.scene(number, info.title, info.story)
            result = SceneResult(info.name, info.title)
            scene_started = time.monotonic()
            try:
                played = importlib.import_module(info.module).play(stage, panel)
                result.rows, result.headline = played.rows, played.headline
            except Skip as exc:
                result.skipped = str(exc)
            except Exception as exc:
                log.debug("scene %s failed", info.name, exc_info=True)
                result.error = f"{type(exc).__name__}: {exc}"
            result.seconds = time.monotonic() - scene_started
            results.append(result)
            view.scene_done(result)
    finally:
        view.end()
        left = stage.cleanup()
    elapsed = time.monotonic() - started
    console.print()
    console.print(summary_table(results, elapsed))
    if left:
        console.print(f"could not delete (delete them by hand): {', '.join(left)}")
    failed = [r.title for r in results if not r.ok and r.skipped is None]
    if failed:
        console.print(Text(f"a check failed in: {', '.join(failed)}", style="bold red"))
        return 1
    console.print(Text(f"every check passed ({elapsed:.0f} s)", style="green"))
    return 0
