"""Checks on input files shared by the readers: the file itself, JSON records, CSV columns.

Every problem is a one-line InputError naming the file and the line (or record) and field.
A UTF-8 byte-order mark is accepted at the start of every text format; a value echoed in a
message is cut to :data:`ECHO_CHARS` characters.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from kvplan.errors import InputError
from kvplan.workload.validate import MAX_ARRIVAL_S, MAX_TOKENS

ECHO_CHARS = 40
"""Longest piece of an input value quoted in an error message."""
BOM = b"\xef\xbb\xbf"


def check_file(path: Path) -> Path:
    """Return ``path`` if it is a readable, non-empty file; else a one-line InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a trace file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty, expected trace records")
    return path


def echo(value: object) -> str:
    """``value`` as JSON for a message, at most ECHO_CHARS characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS - 3] + "..."


def json_error(path: Path, exc: json.JSONDecodeError, line: int | None = None) -> InputError:
    """A malformed-JSON InputError at the decoder's line (or ``line``) and column."""
    msg = exc.msg.removesuffix(" at")  # "Unterminated string starting at" + " at column 5"
    return InputError(path, f"malformed JSON ({msg} at column {exc.colno})",
                      line=exc.lineno if line is None else line)


def parse_json(text: str | bytes, path: Path, line: int | None = None) -> object:
    """``json.loads`` with one-line InputErrors (malformed, or nested too deeply)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise json_error(path, exc, line) from None
    except ValueError as exc:  # an integer of over 4,300 digits
        raise InputError(path, f"malformed JSON ({str(exc)[:80]})", line=line) from None
    except RecursionError:
        raise InputError(path, "JSON nested too deeply", line=line) from None


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object) for each non-blank line of a JSONL file."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            obj = parse_json(line.rstrip("\r\n"), path, lineno)
            if not isinstance(obj, dict):
                raise InputError(path, f"expected a JSON object, got {type(obj).__name__}",
                                 line=lineno)
            yield lineno, obj


def json_records(path: Path) -> Iterator[tuple[str, int | None, dict]]:
    """Yield (place, line, record) for a JSON array of objects or a JSONL file.

    ``place`` names the record for error messages ("record 3"); ``line`` is its line number
    in a JSONL file (None inside a JSON array, whose records span many lines).
    """
    with open(path, "rb") as f:
        first = f.read(4096).removeprefix(BOM).lstrip(b" \t\r\n")[:1]
    if first != b"[":
        for i, (lineno, obj) in enumerate(json_lines(path)):
            yield f"record {i}", lineno, obj
        return
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        records = parse_json(f.read(), path)
    if not isinstance(records, list):
        raise InputError(path, f"expected a JSON array of objects, got {type(records).__name__}")
    for i, obj in enumerate(records):
        if not isinstance(obj, dict):
            raise InputError(path, f"record {i}: expected a JSON object, got "
                             f"{type(obj).__name__}")
        yield f"record {i}", None, obj


def check_lengths(path: Path, values: np.ndarray, name: str, place) -> None:
    """Every length in 0..MAX_TOKENS, else an InputError at ``place(i)`` (line, or None and
    a record name) of the first one outside."""
    bad = (values < 0) | (values > MAX_TOKENS)
    if bad.any():
        i = int(np.argmax(bad))
        line, where = place(i)
        raise InputError(path, f"{where}expected a length in 0..{MAX_TOKENS:,} tokens (the "
                         f"per-request limit, docs/workload.md), got {values[i]:,}",
                         line=line, field=name)


def check_span(path: Path, seconds: np.ndarray, name: str, place) -> None:
    """Times finite and spanning at most MAX_ARRIVAL_S, else an InputError at the first
    non-finite one or at the latest one."""
    finite = np.isfinite(seconds)
    i = int(np.argmin(finite)) if not finite.all() else int(np.argmax(seconds))
    if finite.all() and seconds[i] - seconds.min() <= MAX_ARRIVAL_S:
        return
    line, where = place(i)
    problem = ("expected a finite number" if not finite.all() else
               f"{seconds[i] - seconds.min():.3g} s after the earliest time; expected a trace "
               f"spanning at most {MAX_ARRIVAL_S:.0e} s")
    raise InputError(path, where + problem, line=line, field=name)


def read_csv_columns(path: Path, required: dict[str, str]) -> pl.DataFrame:
    """Read a CSV with polars, checking that each required column is present and of its kind.

    ``required`` maps a column name to "int" (a length, 0..MAX_TOKENS), "float" (finite,
    >= 0) or "datetime". Errors name the file line (the header is line 1), the column and
    what was expected. Invalid UTF-8 is read as U+FFFD (so the cell holding it is reported).
    """
    try:
        df = pl.read_csv(path, infer_schema_length=0, encoding="utf8-lossy")
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise InputError(path, f"malformed CSV ({problem})", line=_ragged_line(path)) from None
    for name in required:
        if name not in df.columns:
            header = ",".join(c[:30] for c in df.columns[:8])
            raise InputError(path, f"missing column; the header found is {header[:200]!r}",
                             line=1, field=name)
    if df.height == 0:
        raise InputError(path, "no data rows after the CSV header")
    return pl.DataFrame({name: _typed(df[name], kind, path) for name, kind in required.items()})


def _ragged_line(path: Path) -> int | None:
    """Line of the first CSV row whose field count differs from the header's, if any."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        rows = csv.reader(f)
        try:
            width = len(next(rows))
            for row in rows:
                if len(row) != width:
                    return rows.line_num
        except (csv.Error, StopIteration):
            return rows.line_num or None
    return None


def _typed(raw: pl.Series, kind: str, path: Path) -> pl.Series:
    text = raw.str.strip_chars()
    if kind == "datetime":
        col = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
        if col.null_count():
            col = col.fill_null(text.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False,
                                                     time_unit="us"))
        bad = col.is_null()
        expected = "a timestamp like 2023-11-16 18:17:03.98"
    elif kind == "int":
        col = text.cast(pl.Int64, strict=False)
        bad = col.is_null() | (col < 0) | (col > MAX_TOKENS)
        expected = f"an integer in 0..{MAX_TOKENS:,} (the per-request token limit)"
    else:
        col = text.cast(pl.Float64, strict=False)
        bad = col.is_null() | ~col.is_finite() | (col < 0)
        expected = "a finite number >= 0"
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(path, f"expected {expected}, got {echo(raw[row])}", line=row + 2,
                         field=raw.name)
    return col


def csv_place(i: int) -> tuple[int, str]:
    """(line, prefix) of data row ``i`` of a CSV file: the header is line 1."""
    return i + 2, ""
