"""Typed access to the values of a JSON log, each failure an InputError naming file and field.

Shared by the run readers, so every reader rejects a missing, mistyped, negative or
non-finite value the same way: ``meta.json: field 'kv_cache.block_size': expected an integer
>= 1, got "16"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from kvplan.errors import InputError

MISSING = object()
"""Marker for an absent key (distinct from JSON null)."""
TOKENS_MAX = 2**31 - 1
"""Largest token count a workload column (int32) holds."""
TIME_MAX_S = 1e12
"""Largest absolute time or duration accepted, in seconds (about 31,700 years)."""


def dig(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; :data:`MISSING` where a level is absent or not a dict."""
    for key in dotted.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return MISSING
        obj = obj[key]
    return obj


def _show(value: Any) -> str:
    return json.dumps(value, allow_nan=True, default=str)[:40]


def as_int(path: Path, value: Any, name: str, *, line: int | None = None, minimum: int = 0,
           maximum: int = 2**62) -> int:
    """``value`` as an int in [``minimum``, ``maximum``] (floats with no fraction accepted)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InputError(path, f"expected an integer from {minimum} to {maximum:,}, got "
                         f"{_show(value)}", line=line, field=name)
    return value


def as_float(path: Path, value: Any, name: str, *, line: int | None = None,
             minimum: float | None = None, maximum: float = TIME_MAX_S) -> float:
    """``value`` as a float in [``minimum``, ``maximum``] (|value| <= maximum if no minimum)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            value = float(value)
        except OverflowError:
            ok = False
        else:
            low = -maximum if minimum is None else minimum
            ok = math.isfinite(value) and low <= value <= maximum
    if not ok:
        low = f"{-maximum:g}" if minimum is None else f"{minimum:g}"
        raise InputError(path, f"expected a number from {low} to {maximum:g}, got "
                         f"{_show(value)}", line=line, field=name)
    return value


def as_str(path: Path, value: Any, name: str, *, line: int | None = None) -> str:
    if not isinstance(value, str):
        raise InputError(path, f"expected a string, got {_show(value)}", line=line, field=name)
    return value


def as_bool(path: Path, value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(path, f"expected true or false, got {_show(value)}", field=name)
    return value


def as_list(path: Path, value: Any, name: str, *, length: int | None = None,
            line: int | None = None) -> list:
    """``value`` as a list (of ``length`` items when given)."""
    if not isinstance(value, list):
        raise InputError(path, f"expected a list, got {_show(value)}", line=line, field=name)
    if length is not None and len(value) != length:
        raise InputError(path, f"expected {length} items (one per request), got {len(value)}",
                         line=line, field=name)
    return value


def optional(path: Path, obj: Any, dotted: str, kind: str, **kw: Any) -> Any:
    """The typed value at ``dotted`` (``kind``: int, float, frac, str, bool), None if absent or
    null. A ``frac`` is a float in (0, 1].

    Integers are counts or sizes here, so they must be >= 1 unless ``minimum`` says otherwise.
    """
    value = dig(obj, dotted)
    if value is MISSING or value is None:
        return None
    if kind == "int":
        kw.setdefault("minimum", 1)
    if kind == "frac":
        kind, kw = "float", {**kw, "minimum": 1e-6, "maximum": 1.0}
    convert = {"int": as_int, "float": as_float, "str": as_str, "bool": as_bool}[kind]
    return convert(path, value, dotted, **kw)


def required(obj: dict, key: str, path: Path, *, line: int | None = None) -> Any:
    """``obj[key]``, or an InputError naming the missing field."""
    if key not in obj:
        raise InputError(path, "missing field", line=line, field=key)
    return obj[key]
