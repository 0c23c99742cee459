"""Table: a 1-D lookup that is cheap on scalars and vectorised on arrays.

The cost model evaluates a handful of model-specific tables per simulated iteration. Arrays
go through ``np.interp``; a scalar takes a ``bisect`` and the same arithmetic as
``np.interp`` (``slope x (x - x_j) + y_j``), so both paths agree to the last bit (tested) and
a scalar lookup costs well under a microsecond.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

FAR = 1e9
"""The last segment is extended linearly to ``FAR x`` the last point (extrapolation beyond the
grid is linear, not clamped; the cost model flags it where the data were measured)."""


class Table:
    """y(x) at strictly increasing points, linear between them, held at y[0] below x[0]."""

    __slots__ = ("x", "y", "_xl", "_yl")

    def __init__(self, x, y) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.size < 2 or np.any(np.diff(x) <= 0) or x.shape != y.shape:
            raise ValueError("a Table needs >= 2 strictly increasing points and as many values")
        slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
        far = x[-1] * FAR
        self.x = np.append(x, far)
        self.y = np.append(y, y[-1] + slope * (far - x[-1]))
        self._xl, self._yl = self.x.tolist(), self.y.tolist()

    def __call__(self, v):
        """y at ``v``: a float for a scalar, an array for an array."""
        if isinstance(v, np.ndarray):
            return np.interp(v, self.x, self.y)
        return interp(float(v), self._xl, self._yl)


def interp(x: float, xs: list[float], ys: list[float]) -> float:
    """np.interp for one float, bit for bit: held at the ends, ``slope x (x - x_j) + y_j``."""
    j = bisect_right(xs, x) - 1
    if j < 0:
        return ys[0]
    if j >= len(xs) - 1:
        return ys[-1]
    if x == xs[j]:
        return ys[j]
    return (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]) * (x - xs[j]) + ys[j]


def token_grid(extra=(), top: float = 2.0**20) -> np.ndarray:
    """Every integer 1..64, then 32 points per octave up to ``top``, plus ``extra`` points
    (a measured curve's own knots) inside that range."""
    dense = np.arange(1.0, 65.0)
    octaves = np.geomspace(64.0, top, int(32 * np.log2(top / 64.0)) + 1)
    pts = [dense, octaves, np.asarray([e for e in extra if 1.0 <= e <= top], dtype=np.float64)]
    return np.unique(np.concatenate(pts))
