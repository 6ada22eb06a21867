"""What a scene hands back: its measured figures and its checks, and the summary table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text


@dataclass(frozen=True, slots=True)
class Row:
    """One run of a scene: what it is, what was measured, how it compares, what was checked."""

    run: str
    measured: str
    compared: str
    check: str
    ok: bool = True
    rate: float = float("nan")  # records/s, when the run measured one (for comparisons)


class Skip(Exception):
    """A scene cannot run here (a missing extra, no examples/); the message says why."""


@dataclass
class Played:
    """What a scene returns: a row per run and the line that sums it up."""

    rows: list[Row]
    headline: str


@dataclass
class SceneResult:
    """Everything one scene measured; `skipped` says why it did not run."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    headline: str = ""  # the one line left on screen once the scene is over
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(row.ok for row in self.rows)

    @property
    def mark(self) -> Text:
        if self.skipped is not None:
            return Text("-", style="yellow")
        return Text("✓", style="green") if self.ok else Text("✗", style="bold red")


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s" if value == value else "-"  # NaN: not measured


def fmt_ratio(value: float) -> str:
    return f"{value:.1f}x" if value == value else "-"


def summary_table(results: Sequence[SceneResult], seconds: float) -> Table:
    """The table printed at the end: a section per scene, a row per run."""
    table = Table(
        title=f"parafka demo: {len(results)} scene(s) in {seconds:.0f} s",
        caption=(
            "measured: each run's own figure, over its own processing (group joins "
            "excluded). check: what the scene verified from the records themselves."
        ),
        caption_justify="left",
    )
    table.add_column("run")
    table.add_column("measured", justify="right")
    table.add_column("compared")
    table.add_column("check")
    for result in results:
        heading = Text.assemble(result.mark, " ", (result.title, "bold"))
        if result.skipped is not None:
            table.add_row(heading, "", "", Text(f"skipped: {result.skipped}", "yellow"))
            table.add_section()
            continue
        table.add_row(heading)
        rows = list(result.rows)
        if result.error is not None:
            rows.append(Row("(the scene)", "-", "-", f"error: {result.error}", ok=False))
        for row in rows:
            check = Text(row.check, style="" if row.ok else "bold red")
            table.add_row(f"  {row.run}", row.measured, row.compared, check)
        table.add_section()
    return table
