"""Measured points -> the curves a profile carries (one reduction for calibration and imports).

``kvplan calibrate`` and ``kvplan profiles import`` both end with scattered timings: GEMMs at
(m, n, k), attention at (sequence, heads) or at KV bytes read. These functions turn them into
the ``gemm``, ``attn_prefill`` and ``attn_decode`` curves (docs/hardware-profiles.md), so both
sources produce the same format by the same rules.
"""

from __future__ import annotations

import numpy as np

from kvplan.hardware.profile import Curve, Grid

WEIGHT_ELEMS = tuple(float(2**e) for e in range(18, 34))
"""Weight-size knots (n x k elements) of a gemm grid: 256 Ki .. 8 Gi."""


def gemm_util(m, n, k, seconds, flops_per_s: float, bytes_per_s: float) -> np.ndarray:
    """Share of the roofline (SOL) a GEMM reached, at most 1: SOL = max(2mnk / peak FLOP/s,
    (mk + nk + mn) x 2 B / peak bytes/s). H100 (989 TFLOP/s, 3.35 TB/s), 4096^3 in 0.174 ms:
    SOL 0.139 ms -> 0.80."""
    m, n, k = (np.asarray(a, dtype=np.float64) for a in (m, n, k))
    sol = np.maximum(2 * m * n * k / flops_per_s, 2 * (m * k + n * k + m * n) / bytes_per_s)
    return np.minimum(sol / np.asarray(seconds, dtype=np.float64), 1.0)


def gemm_grid(m, n, k, util) -> Grid:
    """util over (tokens m, weight elements): at each weight knot, the mean util of the shapes
    whose n x k lies within half an octave, per m (interpolated in log m onto all m)."""
    m = np.asarray(m, dtype=np.float64)
    l2 = np.log2(np.asarray(n, dtype=np.float64) * np.asarray(k, dtype=np.float64))
    util = np.asarray(util, dtype=np.float64)
    ms = np.unique(m)
    knots, rows = [], []
    for w in WEIGHT_ELEMS:
        near = np.abs(l2 - np.log2(w)) <= 0.5
        if not near.any():
            continue
        xs = np.unique(m[near])
        means = np.array([util[near & (m == x)].mean() for x in xs])
        knots.append(w)
        rows.append(_on(ms, xs, means, 5))
    if len(ms) < 2 or not knots:
        raise ValueError("a gemm grid needs at least two token counts")
    return Grid(tuple(float(v) for v in ms), tuple(knots), tuple(rows))


def mean_grid(x, y, z) -> Grid:
    """Mean z per (y, x) point, each y's row interpolated in log x onto every x seen."""
    x, y, z = (np.asarray(a, dtype=np.float64) for a in (x, y, z))
    xs, ys = np.unique(x), np.unique(y)
    rows = []
    for v in ys:
        sel = y == v
        px = np.unique(x[sel])
        rows.append(_on(xs, px, np.array([z[sel & (x == p)].mean() for p in px]), 4))
    return Grid(tuple(float(v) for v in xs), tuple(float(v) for v in ys), tuple(rows))


def binned_curve(x, y, per_octave: int = 4) -> Curve:
    """Median y per 1/per_octave-octave bin of x, at the bin's geometric-mean x."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    bins = np.round(np.log2(x) * per_octave)
    keys = np.unique(bins)
    cx = [float(np.exp(np.log(x[bins == b]).mean())) for b in keys]
    cy = [float(np.median(y[bins == b])) for b in keys]
    return Curve(tuple(round(v, 1) for v in cx), tuple(round(v, 3) for v in cy))


def _on(xs: np.ndarray, px: np.ndarray, pz: np.ndarray, digits: int) -> tuple[float, ...]:
    """pz (at px) interpolated in log x onto xs (held at the ends)."""
    if len(px) == 1:
        return tuple(round(float(pz[0]), digits) for _ in xs)
    return tuple(round(float(v), digits) for v in np.interp(np.log(xs), np.log(px), pz))
