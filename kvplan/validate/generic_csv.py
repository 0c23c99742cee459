"""Generic CSV of measured requests, for engines kvplan has no reader for (docs/validate.md).

One successful request a row (leave failed requests out); header names the columns, any order,
extra columns ignored::

    arrival_s,input_tokens,output_tokens,ttft_ms,e2e_ms
    0.000,2358,531,689.4,17570.3
    0.387,1034,769,302.5,25232.3

``arrival_s``: seconds on one clock (any origin); ``ttft_ms`` and ``e2e_ms`` measured from
that arrival, in milliseconds, ``e2e_ms >= ttft_ms``. An optional ``request_id`` column names
the rows in the per-request output. The file records no settings: pass them as flags.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kvplan.errors import InputError
from kvplan.trace.inputs import check_file, read_csv_columns
from kvplan.validate.fields import TIME_MAX_S, TOKENS_MAX
from kvplan.validate.run import EngineRun, RunSettings, measured_frame

COLUMNS = {"arrival_s": "float", "input_tokens": "int", "output_tokens": "int",
           "ttft_ms": "float", "e2e_ms": "float"}


def is_generic_csv(header: str) -> bool:
    """A CSV header line naming every required column."""
    return set(COLUMNS) <= {c.strip().strip('"') for c in header.split(",")}


def read_generic_csv(path: Path) -> EngineRun:
    """Read the generic CSV; each number is checked (line and column named on error)."""
    path = check_file(path)
    df = read_csv_columns(path, COLUMNS)
    for name, top in (("arrival_s", TIME_MAX_S), ("ttft_ms", TIME_MAX_S * 1e3),
                      ("e2e_ms", TIME_MAX_S * 1e3)):
        _check(path, df, name, df[name].is_finite() & (df[name] <= top),
               f"a number from 0 to {top:g}")
    for name in ("input_tokens", "output_tokens"):
        _check(path, df, name, df[name].is_between(1, TOKENS_MAX),
               f"an integer from 1 to {TOKENS_MAX:,}")
    _check(path, df, "e2e_ms", df["e2e_ms"] >= df["ttft_ms"], "a value >= ttft_ms")
    ids = _ids(path, df.height)
    frame, _ = measured_frame(path, ids, df["arrival_s"].to_numpy(),
                              df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy(),
                              df["ttft_ms"].to_numpy() / 1e3, df["e2e_ms"].to_numpy() / 1e3)
    return EngineRun(path=path, source_format="csv", engine="unknown", requests=frame,
                     failed=0, settings=RunSettings(),
                     clocks="as written in the CSV: arrival_s, and ttft_ms / e2e_ms from it")


def _check(path: Path, df: pl.DataFrame, name: str, ok: pl.Series, expected: str) -> None:
    bad = ~ok
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(path, f"expected {expected}, got {df[name][row]!r}", line=row + 2,
                         field=name)


def _ids(path: Path, n: int) -> list[str]:
    try:
        ids = pl.read_csv(path, columns=["request_id"], infer_schema_length=0)["request_id"]
    except pl.exceptions.ColumnNotFoundError:
        return [str(i) for i in range(n)]
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(path, f"malformed CSV ({str(exc).splitlines()[0][:120]})",
                         field="request_id") from None
    return [x if x is not None else str(i) for i, x in enumerate(ids.to_list())]

