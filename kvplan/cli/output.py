"""Shared rendering helpers for commands: consoles, tables, ``--json`` and Parquet.

Console width: a terminal's own width (or ``COLUMNS`` when set). Output piped into a file, a
log or CI has no width: there kvplan uses ``PIPED_WIDTH`` columns and never wraps a line of
prose, so tables keep their headers whole and each sentence stays on one line (grep-able).

Numbers in tables are written by kvplan.report.numbers: never in scientific notation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console, ConsoleDimensions
from rich.table import Table

from kvplan.atomic import write_parquet_atomic
from kvplan.report.numbers import number

PIPED_WIDTH = 240
"""Columns of piped output (no terminal, no COLUMNS): wide tables keep their headers."""


class _Console(Console):
    """A rich Console that is wide and does not wrap prose when its output is piped."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return ConsoleDimensions(PIPED_WIDTH, size.height) if self.piped else size

    @property
    def piped(self) -> bool:
        """No terminal and no COLUMNS: a file, a pipe, a log."""
        return not self.is_terminal and not self._environ.get("COLUMNS", "").isdigit()

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if self.piped and kwargs.get("soft_wrap") is None:
            kwargs["soft_wrap"] = True
        super().print(*objects, **kwargs)


console = _Console()
err_console = _Console(stderr=True)


def rich_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
               right: Sequence[str] = ()) -> Table:
    """A rich table from a list of dict rows (a column of numbers right-aligned, by its first
    row, and the ``right`` columns; cells formatted by :func:`cell`)."""
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title, title_justify="left", min_width=min(len(title), 80))
    for c in cols:
        numeric = c in right or (rows and _is_num(rows[0].get(c)))
        table.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*(cell(r.get(c)) for c in cols))
    return table


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def cell(v: Any) -> str:
    """A table cell: '-' for None, a number by :func:`number`, anything else as text."""
    if v is None:
        return "-"
    if _is_num(v):
        return number(v)
    return str(v)


def print_json(obj: Any) -> None:
    """Print an object as JSON on stdout (no rich markup)."""
    print(json.dumps(obj, indent=2, default=str))


def write_frame(df: pl.DataFrame, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a polars frame to Parquet atomically."""
    write_parquet_atomic(df.to_arrow(), path, metadata)
