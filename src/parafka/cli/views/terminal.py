"""The live terminal panel of `parafka run`: records/s, totals, errors, lag per partition.

`render` turns a stats history into a rich renderable (pure, unit-tested). `LiveView`
is the thin shell: one thread samples `stats()` and redraws a rich `Live` 4 times a second,
while log lines written to stderr are printed above the panel instead of through it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, NamedTuple, Self

from rich.console import Console, Group, RenderableType
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from parafka.cli.views.history import LAG_PARTS, History, lag_parts, oldest_age, progress
from parafka.core.lifecycle import Background
from parafka.core.stats import PartitionStats, Stats

log = logging.getLogger(__name__)

REFRESH = 0.25  # seconds between redraws: the stats are refreshed as often
MAX_ROWS = 20  # partitions shown, by lag, largest first
STUCK_AGE = 30.0  # seconds: an oldest unfinished record older than this is shown in red


def render(
    history: History, *, title: str = "parafka", show_progress: bool = False
) -> RenderableType:
    """The panel for the latest sample of `history` (an empty one before the first)."""
    sample = history.latest
    stats = sample.stats if sample is not None else Stats()
    rate = sample.rate if sample is not None else 0.0
    parts: list[RenderableType] = [_figures(stats, rate)]
    if show_progress:
        parts.append(_progress(stats))
    parts.append(_partitions(stats))
    parts.extend(_advice(stats))
    return Panel(Group(*parts), title=title, title_align="left", border_style="blue")


def _pair(label: str, value: str, style: str = "bold") -> Text:
    return Text.assemble((label + " ", "dim"), (value, style))


def _figures(stats: Stats, rate: float) -> RenderableType:
    grid = Table.grid(padding=(0, 3))
    for _ in range(6):
        grid.add_column()
    grid.add_row(
        _pair("records/s", f"{rate:,.0f}", "bold green"),
        _pair("processed", f"{stats.processed:,}"),
        _pair("in flight", _in_flight(stats)),
        _pair("queued", f"{stats.queued:,}"),
        _pair("waiting retry", f"{stats.waiting_retry:,}"),
        _pair("lag", f"{stats.lag:,}"),
    )
    errors = "bold red" if stats.failed else "bold"
    dead = "bold red" if stats.dead_lettered or stats.skipped_after_failure else "bold"
    grid.add_row(
        _pair("failed", f"{stats.failed:,}", errors),
        _pair("retried", f"{stats.retried:,}"),
        _pair("dead-lettered", f"{stats.dead_lettered:,}", dead),
        _pair("skipped after failing", f"{stats.skipped_after_failure:,}", dead),
        _pair("commits", f"{stats.commits:,}"),
        _pair("rebalances", f"{stats.rebalances:,}"),
    )
    if stats.paused_partitions:
        why = "the buffer is full" if stats.paused else "sharing the buffer"
        by_hand = getattr(stats, "user_paused", ())
        if by_hand and not stats.paused:
            names = ", ".join(f"{t}[{p}]" for t, p in by_hand[:5])
            more = f" and {len(by_hand) - 5} more" if len(by_hand) > 5 else ""
            why = f"by an operator: {names}{more}"
            if stats.paused_partitions > len(by_hand):
                why += "; the others sharing the buffer"
        total = len(stats.partitions)
        text = f"paused: {stats.paused_partitions} of {total} partitions ({why})"
        if stats.buffer_limit:  # 0: not known (a snapshot from before it was reported)
            text += f"; {stats.held:,} of {stats.buffer_limit:,} records held"
        return Group(grid, Text(text, style="yellow"))
    return grid


def _advice(stats: Stats) -> list[RenderableType]:
    """The consumer's advice (a setting that would help, observe/advice.py), under the
    table: logged once, it would scroll away while the panel stays."""
    return [Text(f"advice: {line}", style="cyan") for line in stats.advice]


def _in_flight(stats: Stats) -> str:
    """`12 of 32`: records in flight, of the concurrency limit (it moves with "auto")."""
    if not stats.concurrency_limit:
        return f"{stats.in_flight:,}"
    return f"{stats.in_flight:,} of {stats.concurrency_limit:,}"


def _progress(stats: Stats) -> RenderableType:
    done, total = progress(stats)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(width=40)
    grid.add_column()
    share = f"{100 * done / total:.0f}%" if total else "waiting for records"
    grid.add_row(
        ProgressBar(total=total or None, completed=done, width=40),
        Text(f"{done:,} / {total:,}  {share}"),
    )
    return grid


def _partitions(stats: Stats) -> RenderableType:
    if not stats.partitions:
        return Text("no partition assigned yet", style="dim")
    with_parts = any(lag_parts(p) is not None for p in stats.partitions)
    extra = _Extra(
        behind=any(getattr(p, "behind_retry", 0) for p in stats.partitions),
        metadata=any(
            getattr(p, "metadata_bytes", 0) or getattr(p, "metadata_throttled", False)
            for p in stats.partitions
        ),
    )
    table = Table(box=None, padding=(0, 1), header_style="dim", show_edge=False)
    names = [f"{p.topic}[{p.partition}]" for p in stats.partitions]
    table.add_column("partition", no_wrap=True, min_width=max(map(len, names)))
    table.add_column("lag", justify="right")
    if with_parts:
        for name in ("not fetched", "queued", "in flight", "done, not committed"):
            table.add_column(name, justify="right")
        table.add_column("oldest waits", justify="right")
        # Shown only while they say something: a record holding others back for its retry,
        # or commit metadata in use.
        if extra.behind:
            table.add_column("behind retry", justify="right")
        if extra.metadata:
            table.add_column("metadata", justify="right")
    else:
        table.add_column("pending", justify="right")
        table.add_column("done above", justify="right")
    table.add_column("committed", justify="right")
    table.add_column("high watermark", justify="right")
    ranked = sorted(stats.partitions, key=lambda p: (-(p.lag or 0), p.topic, p.partition))
    for p in ranked[:MAX_ROWS]:
        table.add_row(*_row(p, with_parts, extra))
    rest = ranked[MAX_ROWS:]
    if rest:
        lag = sum(p.lag or 0 for p in rest)
        table.caption = f"… and {len(rest)} more partitions (lag {lag:,})"
    return table


class _Extra(NamedTuple):
    """The optional head-of-line columns of the partitions table."""

    behind: bool
    metadata: bool


def _row(p: PartitionStats, with_parts: bool, extra: _Extra) -> list[RenderableType]:
    cells: list[RenderableType] = [f"{p.topic}[{p.partition}]", _number(p.lag)]
    if with_parts:
        parts = lag_parts(p)
        cells.extend(_number(parts[name]) if parts else "-" for name in LAG_PARTS)
        age = oldest_age(p)
        style = "red" if age is not None and age >= STUCK_AGE else ""
        cells.append(Text("" if age is None else f"{age:.1f} s", style=style))
        if extra.behind:
            behind = getattr(p, "behind_retry", 0)
            cells.append(Text(f"{behind:,}" if behind else "", style="yellow"))
        if extra.metadata:
            cells.append(_metadata(p))
    else:
        cells.extend([_number(p.pending), _number(p.done_above)])
    cells.extend([_number(p.committed), _number(p.high_watermark)])
    return cells


def _metadata(p: PartitionStats) -> Text:
    """The last commit's metadata size; "over cap" in red while the done set does not fit
    (nothing above the highest finished offset starts until it does)."""
    if getattr(p, "metadata_throttled", False):
        return Text("over cap", style="red")
    size = getattr(p, "metadata_bytes", 0)
    return Text(f"{size:,} B" if size else "")


def _number(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


class LiveView(Background):
    """Draws `render` of `stats()` on `console` until `stop()` (a context manager too).

    Log handlers of the root logger that write to stderr are pointed, while it runs, at a
    proxy that prints above the panel, so log lines never garble it.
    """

    def __init__(
        self,
        stats: Callable[[], Stats],
        console: Console,
        *,
        title: str = "parafka",
        show_progress: bool = False,
        every: float = REFRESH,
    ) -> None:
        self._stats = stats
        self.console = console
        self.title = title
        self.show_progress = show_progress
        self.every = every
        self.history = History(keep=10.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None
        self._swapped: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []
        self._failed = False

    def start(self) -> Self:
        stderr = sys.stderr
        self._live = Live(
            console=self.console,
            auto_refresh=False,
            redirect_stdout=sys.stdout.isatty(),  # print() goes to stdout only if it is ours
            redirect_stderr=True,
        )
        self._sample()
        self._live.update(self._renderable())
        self._live.start(refresh=True)
        proxy = FileProxy(self.console, stderr)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is stderr:
                old = handler.setStream(proxy)
                if old is not None:
                    self._swapped.append((handler, old))
        self._thread = threading.Thread(target=self._run, name="parafka-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Draw the last state, stop the thread and give the terminal back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._live is not None:
            self._sample()
            self._live.update(self._renderable(), refresh=True)
            self._live.stop()
            self._live = None
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._swapped.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self._sample()
                assert self._live is not None
                self._live.update(self._renderable(), refresh=True)
            except Exception:  # a drawing bug must not stop the consumer
                if not self._failed:
                    self._failed = True
                    log.warning("live view: drawing failed", exc_info=True)

    def _sample(self) -> None:
        self.history.add(self._stats(), time.monotonic(), time.time())

    def _renderable(self) -> RenderableType:
        return render(self.history, title=self.title, show_progress=self.show_progress)
