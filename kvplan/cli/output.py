"""Shared rendering helpers for commands: a console, tables, ``--json`` and Parquet output."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from kvplan.atomic import write_parquet_atomic

console = Console()
err_console = Console(stderr=True)


def rich_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
               ) -> Table:
    """A rich table from a list of dict rows (floats shown with 4 significant digits)."""
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title, title_justify="left")
    for c in cols:
        table.add_column(c, justify="right" if rows and _is_num(rows[0].get(c)) else "left")
    for r in rows:
        table.add_row(*(_fmt(r.get(c)) for c in cols))
    return table


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def print_json(obj: Any) -> None:
    """Print an object as JSON on stdout (no rich markup)."""
    print(json.dumps(obj, indent=2, default=str))


def write_frame(df: pl.DataFrame, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a polars frame to Parquet atomically."""
    write_parquet_atomic(df.to_arrow(), path, metadata)
