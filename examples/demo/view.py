"""What the demo shows while it runs: a live panel per scene on a terminal, log lines
otherwise.

Scenes draw through `Panel`: a `Lane` per run (a progress bar fed by a function the view
polls, so nothing in the scene's hot path reports to the view) and short notes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel as RichPanel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from examples.demo.results import SceneResult

_NOTES_SHOWN = 4


class Lane:
    """One run of a scene as a progress bar: `done()` is polled when the view redraws."""

    def __init__(self, name: str, total: int, done: Callable[[], int]) -> None:
        self.name = name
        self.total = total
        self._done = done
        self.status = "starting"
        self.finished = False
        self._listeners: list[Callable[[Lane], None]] = []

    def done(self) -> int:
        try:
            return max(0, min(self.total, int(self._done())))
        except Exception:  # the run is being torn down: show what was last seen
            return 0

    def on_finish(self, listener: Callable[[Lane], None]) -> None:
        self._listeners.append(listener)

    def finish(self, status: str) -> None:
        self.status, self.finished = status, True
        for listener in self._listeners:
            listener(self)


class Panel(Protocol):
    """How a scene shows its progress."""

    def lane(self, name: str, total: int, done: Callable[[], int]) -> Lane: ...

    def note(self, text: str) -> None: ...


class View(Protocol):
    def begin(self, headline: str) -> None: ...

    def scene(self, number: int, title: str, story: str) -> Panel: ...

    def scene_done(self, result: SceneResult) -> None: ...

    def end(self) -> None: ...


# -- live (a terminal) ----------------------------------------------------------------------
class _LivePanel:
    def __init__(self, number: int, title: str, story: str) -> None:
        self.number, self.title, self.story = number, title, story
        self.lanes: list[Lane] = []
        self.notes: list[str] = []
        self.started = time.monotonic()

    def lane(self, name: str, total: int, done: Callable[[], int]) -> Lane:
        lane = Lane(name, total, done)
        self.lanes.append(lane)
        return lane

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self, scenes: int) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(width=32)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column()
        for lane in list(self.lanes):
            done = lane.done() if not lane.finished else lane.total
            grid.add_row(
                lane.name,
                ProgressBar(total=max(1, lane.total), completed=done, width=32),
                f"{done:,}/{lane.total:,}",
                Text(lane.status, style="green" if lane.finished else "cyan"),
            )
        parts: list[RenderableType] = [Text(self.story, style="dim")]
        if self.lanes:
            parts.append(grid)
        for note in self.notes[-_NOTES_SHOWN:]:
            parts.append(Text(f"· {note}"))
        return RichPanel(
            Group(*parts),
            title=f"[bold]{self.number}/{scenes} {self.title}[/bold]",
            subtitle=f"{time.monotonic() - self.started:.0f} s",
            title_align="left",
            subtitle_align="right",
        )


class LiveView:
    """A rich Live display: finished scenes as one line each, the running one as a panel."""

    def __init__(self, console: Console, scenes: int) -> None:
        self.console = console
        self.scenes = scenes
        self.headline = ""
        self.done: list[SceneResult] = []
        self.current: _LivePanel | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._live = Live(console=console, refresh_per_second=4, get_renderable=self._render)

    def _render(self) -> RenderableType:
        with self._lock:
            lines: list[RenderableType] = [Text(self.headline, style="bold")]
            for result in self.done:
                line = Text.assemble(
                    result.mark, f" {result.title} ", (f"({result.seconds:.0f} s) ", "dim")
                )
                line.append(result.headline or (result.skipped or result.error or ""))
                lines.append(line)
            if self.current is not None:
                lines.append(self.current.render(self.scenes))
            total = time.monotonic() - self.started
            lines.append(Text(f"elapsed {total:.0f} s", style="dim"))
        return Group(*lines)

    def begin(self, headline: str) -> None:
        self.headline = headline
        self._live.start()

    def scene(self, number: int, title: str, story: str) -> Panel:
        with self._lock:
            self.current = _LivePanel(number, title, story)
        return self.current

    def scene_done(self, result: SceneResult) -> None:
        with self._lock:
            self.done.append(result)
            self.current = None

    def end(self) -> None:
        self._live.stop()


# -- plain lines (not a terminal, or --no-live) ----------------------------------------------
class _LogPanel:
    def __init__(self, view: LogView, title: str) -> None:
        self.view, self.title = view, title

    def lane(self, name: str, total: int, done: Callable[[], int]) -> Lane:
        lane = Lane(name, total, done)
        lane.on_finish(lambda ln: self.view.say(f"  {ln.name}: {ln.status}"))
        return lane

    def note(self, text: str) -> None:
        self.view.say(f"  {text}")


class LogView:
    """One line per event, for logs, pipes and tests."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def say(self, text: str | Text) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.console.print(Text.assemble((stamp, "dim"), " ", text), highlight=False)

    def begin(self, headline: str) -> None:
        self.say(headline)

    def scene(self, number: int, title: str, story: str) -> Panel:
        self.say(Text.assemble((f"scene {number}: {title}", "bold"), f" — {story}"))
        return _LogPanel(self, title)

    def scene_done(self, result: SceneResult) -> None:
        text = result.headline or result.skipped or result.error or ""
        self.say(f"{result.title}: {text} ({result.seconds:.0f} s)")

    def end(self) -> None:
        return None
