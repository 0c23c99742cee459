"""Allowed ranges of numeric settings, written once for command-line flags and spec files.

A :class:`Bound` says which numbers a setting accepts and words it for the error message;
NaN and infinities are never accepted. The CLI checks every numeric flag against its bound
before any work and names the flag (``--dram-gib: expected a number >= 0, got -10``); a spec
file's value gets the same bound and names the file and field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from kvplan.errors import KvplanError


@dataclass(frozen=True)
class Bound:
    """Numbers from ``low`` to ``high`` (either end open or absent), finite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    """True: ``low`` itself is refused (a number > low)."""
    high_open: bool = False
    """True: ``high`` itself is refused (a number < high)."""
    whole: bool = False
    """Whole numbers only (worded so; the CLI parses them as integers already)."""

    def accepts(self, value: float) -> bool:
        """Example: Bound(0, 1, low_open=True) accepts 0.5 and 1, refuses 0, 1.5, NaN, inf."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def words(self) -> str:
        """Example: 'a number in (0, 100]', 'a whole number >= 1', 'a number > 0'."""
        kind = "a whole number" if self.whole else "a number"
        low, high = _num(self.low), _num(self.high)
        if self.low is not None and self.high is not None:
            return (f"{kind} in {'(' if self.low_open else '['}{low}, {high}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {high}"
        return f"a finite {kind.removeprefix('a ')}"


NON_NEGATIVE = Bound(0.0)
POSITIVE = Bound(0.0, low_open=True)
AT_LEAST_ONE = Bound(1, whole=True)
COUNT = Bound(0, whole=True)
"""A whole number >= 0 (0 = none / off)."""
SEED = Bound(0, whole=True)
SHARE = Bound(0.0, 1.0)
"""A share in [0, 1]."""
OPEN_SHARE = Bound(0.0, 1.0, low_open=True)
"""A share in (0, 1]."""
PERCENTILE = Bound(0.0, 100.0, low_open=True)
IMBALANCE = Bound(1.0, 64.0)
"""The busiest GPU's load over the mean (expert parallelism): 1 (even) to 64."""


def _num(v: float | None) -> str:
    if v is None:
        return ""
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def _shown(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_value(name: str, value: float | None, bound: Bound) -> None:
    """Raise ``KvplanError('NAME: expected ..., got VALUE')`` unless ``bound`` accepts it
    (None = not given, accepted)."""
    if value is not None and not bound.accepts(value):
        raise KvplanError(f"{name}: expected {bound.words()}, got {_shown(value)}")


def check_values(name: str, values: Iterable[float] | None, bound: Bound) -> None:
    """:func:`check_value` on each value of a repeated flag or a list field."""
    for v in values or ():
        check_value(name, v, bound)
