"""Checks on input files shared by the readers: exists, is a file, not empty; bad JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from kvplan.errors import InputError


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


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object) for each non-blank line of a JSONL file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(path, f"malformed JSON ({exc.msg} at column {exc.colno})",
                                 line=lineno) from None
            if not isinstance(obj, dict):
                raise InputError(path, f"expected a JSON object, got {type(obj).__name__}",
                                 line=lineno)
            yield lineno, obj


def raise_first_bad_line(path: Path, required: dict[str, type | tuple[type, ...]]) -> None:
    """Find the first line that is malformed or has a missing/mistyped field, and raise there.

    Used only after a columnar reader failed, to turn its error into a line-level message.
    """
    for lineno, obj in json_lines(path):
        for name, typ in required.items():
            if name not in obj or obj[name] is None:
                raise InputError(path, "missing value", line=lineno, field=name)
            value = obj[name]
            if not isinstance(value, typ) or isinstance(value, bool):
                raise InputError(path, f"expected {_type_name(typ)}, got {json.dumps(value)[:40]}",
                                 line=lineno, field=name)


def _type_name(typ: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", list: "a list", str: "a string"}
    typs = typ if isinstance(typ, tuple) else (typ,)
    return " or ".join(names.get(t, t.__name__) for t in typs)


def json_records(path: Path) -> Iterator[tuple[str, int | None, dict]]:
    """Yield (place, line, record) for a JSON array of objects or a JSONL file.

    ``place`` names the record for error messages ("record 3"); ``line`` is its line number
    in a JSONL file (None inside a JSON array, whose records span many lines).
    """
    with open(path, "rb") as f:
        first = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first != b"[":
        for i, (lineno, obj) in enumerate(json_lines(path)):
            yield f"record {i}", lineno, obj
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            records = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON ({exc.msg} at column {exc.colno})",
                         line=exc.lineno) from None
    for i, obj in enumerate(records):
        if not isinstance(obj, dict):
            raise InputError(path, f"record {i}: expected a JSON object, got "
                             f"{type(obj).__name__}")
        yield f"record {i}", None, obj


def read_csv_columns(path: Path, required: dict[str, str]) -> pl.DataFrame:
    """Read a CSV with polars, checking that each required column is present and of its kind.

    ``required`` maps a column name to "int" (>= 0), "float" (>= 0) or "datetime". Errors name
    the file line (the header is line 1), the column and what was expected.
    """
    try:
        df = pl.read_csv(path, infer_schema_length=0, columns=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InputError(path, f"malformed CSV ({str(exc).splitlines()[0][:120]})") from None
    for name in required:
        if name not in df.columns:
            raise InputError(path, f"missing column, header has {df.columns[:8]}", line=1,
                             field=name)
    if df.height == 0:
        raise InputError(path, "no data rows after the CSV header")
    out = {name: _typed(df[name], kind, path) for name, kind in required.items()}
    return pl.DataFrame(out)


def _typed(raw: pl.Series, kind: str, path: Path) -> pl.Series:
    text = raw.str.strip_chars()
    if kind == "datetime":
        col = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="ns")
        if col.null_count():
            col = col.fill_null(text.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False,
                                                     time_unit="ns"))
        expected = "a timestamp like 2023-11-16 18:17:03.98"
    else:
        col = text.cast(pl.Int64 if kind == "int" else pl.Float64, strict=False)
        expected = "an integer >= 0" if kind == "int" else "a number >= 0"
    bad = col.is_null()
    if kind != "datetime":
        bad = bad | (col < 0)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(path, f"expected {expected}, got {raw[row]!r}", line=row + 2,
                         field=raw.name)
    return col
