"""`parafka lag` output: a rich table on a terminal, aligned plain text otherwise, or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from parafka.core.lag import CommittedLag

COLUMNS = ("TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "DONE-NOT-COMMITTED")
NOTE = (
    "DONE-NOT-COMMITTED: records above the committed offset that parafka already finished "
    "(from its commit metadata; '-' when there is none)"
)
UNKNOWN_NOTE = (
    "?: log end unknown on this broker: it reported a log end below the committed offset "
    "(the local development broker's watermark lags its log), so the lag cannot be told"
)


def as_dict(group: str, rows: Sequence[CommittedLag]) -> dict[str, Any]:
    return {
        "group": group,
        "total_lag": sum(row.lag or 0 for row in rows),
        "partitions": [
            {
                "topic": row.topic,
                "partition": row.partition,
                "committed": row.committed,
                "log_end": row.log_end,
                "lag": row.lag,
                "done_not_committed": row.done_not_committed,
                "log_end_unknown": row.log_end_unknown,
            }
            for row in rows
        ],
    }


def as_json(group: str, rows: Sequence[CommittedLag]) -> str:
    return json.dumps(as_dict(group, rows), indent=2)


def _cells(row: CommittedLag) -> tuple[str, ...]:
    def show(value: int | None) -> str:
        return "-" if value is None else str(value)

    return (
        row.topic,
        str(row.partition),
        show(row.committed),
        "?" if row.log_end_unknown else show(row.log_end),
        "?" if row.log_end_unknown else show(row.lag),
        show(row.done_not_committed),
    )


def _total(rows: Sequence[CommittedLag]) -> str:
    total = sum(row.lag or 0 for row in rows)
    unknown = sum(row.log_end_unknown for row in rows)
    if unknown:
        return (
            f"total lag unknown ({unknown} of {len(rows)} partition(s) without a log end; "
            f"{total} on the others)"
        )
    return f"total lag {total} over {len(rows)} partition(s)"


def as_text(group: str, rows: Sequence[CommittedLag]) -> str:
    """Space-aligned columns (numbers right-aligned), a total line and the note."""
    table = [COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = []
    for line in table:
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append(f"group {group}: {_total(rows)}")
    if any(row.done_not_committed is not None for row in rows):
        lines.append(NOTE)
    if any(row.log_end_unknown for row in rows):
        lines.append(UNKNOWN_NOTE)
    return "\n".join(lines)


def print_table(group: str, rows: Sequence[CommittedLag]) -> None:
    """The same as `as_text`, drawn with rich (for a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"group {group}: {_total(rows)}", title_justify="left")
    for index, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*_cells(row))
    console = Console()
    console.print(table)
    if any(row.done_not_committed is not None for row in rows):
        console.print(NOTE, style="dim")
    if any(row.log_end_unknown for row in rows):
        console.print(UNKNOWN_NOTE, style="yellow")
