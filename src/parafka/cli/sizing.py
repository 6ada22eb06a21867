"""`parafka partitions`: the sizing of sizing.py as a table, plain text or JSON."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from parafka.cli.config import ParafkaCommand
from parafka.core.sizing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HEADROOM,
    MODES,
    Mode,
    Plan,
    SizingError,
    Target,
    plans,
)

if TYPE_CHECKING:
    from rich.console import Console

_COLUMNS = ("ordering", "partitions", "instances", "concurrency", "capacity/s", "")


def _finite(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number.")
    return value


@click.command(cls=ParafkaCommand)
@click.option(
    "--target-rate",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    callback=_finite,
    metavar="RECORDS/S",
    help="Records per second the deployment must sustain.",
)
@click.option(
    "--per-record-ms",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    callback=_finite,
    metavar="MS",
    help="Mean handler time of one record, in milliseconds.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Records processed at the same time by one instance (parafka run -c).",
)
@click.option(
    "--ordering",
    type=click.Choice([*MODES, "all"]),
    default="all",
    show_default=True,
    help="The ordering mode to size, or all of them.",
)
@click.option(
    "--keys",
    type=click.IntRange(min=1),
    default=None,
    help="Distinct keys with records waiting at once (key mode)  [default: plenty]",
)
@click.option(
    "--headroom",
    type=click.FloatRange(min=1),
    default=DEFAULT_HEADROOM,
    show_default=True,
    callback=_finite,
    help="Plan for the target rate times this (spare capacity for bursts and catch-up).",
)
@click.option(
    "--instances-max",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many instances; the concurrency per instance is raised to fit.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def partitions(
    target_rate: float,
    per_record_ms: float,
    concurrency: int,
    ordering: str,
    keys: int | None,
    headroom: float,
    instances_max: int | None,
    as_json: bool,
) -> None:
    """How many partitions and instances a target rate needs, per ordering mode."""
    try:
        target = Target(
            rate=target_rate,
            per_record_ms=per_record_ms,
            concurrency=concurrency,
            keys=keys,
            headroom=headroom,
            instances_max=instances_max,
        )
    except SizingError as exc:  # the option types catch these first; kept as a guard
        raise click.UsageError(str(exc)) from None
    modes: tuple[Mode, ...] = MODES if ordering == "all" else (ordering,)  # type: ignore[assignment]
    results = plans(target, modes)
    if as_json:
        click.echo(json.dumps(as_document(target, results), indent=2))
    elif sys.stdout.isatty():
        print_rich(target, results)
    else:
        click.echo(plain_text(target, results), nl=False)


def headline(target: Target) -> str:
    keys = f", {target.keys:,} distinct keys" if target.keys is not None else ""
    cap = f", at most {target.instances_max:,} instances" if target.instances_max else ""
    return (
        f"Sizing for {_num(target.rate)} records/s at {_num(target.per_record_ms)} ms per "
        f"record, concurrency {target.concurrency} per instance{keys}{cap}, with headroom "
        f"x{_num(target.headroom)} (--headroom; 1 for none)"
    )


def _row(plan: Plan) -> tuple[str, ...]:
    return (
        plan.ordering,
        f"{plan.partitions:,}",
        f"{plan.instances:,}",
        f"{plan.concurrency:,}",
        f"{plan.capacity:,.0f}",
        "" if plan.reachable else "unreachable",
    )


def plain_text(target: Target, results: Sequence[Plan]) -> str:
    """Aligned columns, then one sentence per mode: for logs and pipes."""
    rows = [_COLUMNS, *(_row(p) for p in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [headline(target), ""]
    for row in rows:
        cells = [
            cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines.extend(f"{p.ordering}: {p.explanation}" for p in results)
    return "\n".join(lines) + "\n"


def print_rich(target: Target, results: Sequence[Plan], console: Console | None = None) -> None:
    """A rich table and the sentences below it, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(headline(target), highlight=False)
    table = Table()
    for i, name in enumerate(_COLUMNS):
        table.add_column(name or "note", justify="left" if i in (0, 5) else "right")
    for plan in results:
        style = None if plan.reachable else "red"
        table.add_row(*_row(plan), style=style)
    console.print(table)
    for plan in results:
        console.print(f"[bold]{plan.ordering}[/bold]: {plan.explanation}", highlight=False)


def as_document(target: Target, results: Sequence[Plan]) -> dict[str, Any]:
    return {
        "target": {
            "rate": target.rate,
            "per_record_ms": target.per_record_ms,
            "concurrency": target.concurrency,
            "keys": target.keys,
            "headroom": target.headroom,
            "instances_max": target.instances_max,
        },
        "plans": [
            {
                "ordering": p.ordering,
                "partitions": p.partitions,
                "instances": p.instances,
                "concurrency": p.concurrency,
                "handlers_needed": p.slots,
                "capacity": p.capacity,
                "reachable": p.reachable,
                "explanation": p.explanation,
            }
            for p in results
        ],
    }


def _num(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"
