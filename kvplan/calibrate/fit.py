"""Fits that turn medians into profile numbers, each with its error.

Links (H2D, D2H, SSD): the classic latency-bandwidth model ``t(n) = L + n / B`` fitted with
scipy on relative residuals (so 64 KiB and 1 GiB points weigh alike). Its ``B`` is the
large-transfer bandwidth, ``L`` the fixed cost and ``L x B`` the size reaching half of ``B``.
Real links deviate from it (DMA chunking, pinned-page mapping), so the profile also gets the
measured curve ``bw(n) = n / (t(n) - L)``: with the profile's ``transfer_time = L + n / bw(n)``
it reproduces every measured median exactly and interpolates between them.

Layer timings: prefill ``t = a + FLOPs / F`` (compute-bound; F = achieved TFLOP/s) and decode
``t = b + bytes / W`` (bandwidth-bound; W = achieved HBM GB/s), same method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from kvplan.hardware.profile import Curve


@dataclass(frozen=True)
class LinearFit:
    """``t = intercept_s + work / rate`` with its relative error over the fitted points."""

    intercept_s: float
    rate: float
    """Work per second (bytes/s for links and decode, FLOP/s for prefill)."""
    median_rel_err: float
    max_rel_err: float
    n_points: int


def fit_linear(work, time_s) -> LinearFit:
    """Fit ``t = a + work / rate`` (a >= 0, rate > 0) minimising relative residuals.

    >>> f = fit_linear([1e6, 1e7, 1e8], [20e-6 + 1e6 / 50e9, 20e-6 + 1e7 / 50e9, 20e-6 + 1e8 / 50e9])
    >>> round(f.intercept_s * 1e6, 3), round(f.rate / 1e9, 3)
    (20.0, 50.0)
    """
    w = np.asarray(work, dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    if w.size < 2 or np.ptp(w) == 0:
        raise ValueError("a linear fit needs at least two different work sizes")
    slope0 = max(np.polyfit(w, t, 1)[0], 1e-30)
    scale = np.array([t.min(), slope0])

    def resid(p: np.ndarray) -> np.ndarray:
        a, s = p * scale
        return (a + w * s - t) / t

    res = least_squares(resid, x0=[0.5, 1.0], bounds=([0.0, 1e-6], [np.inf, np.inf]))
    a, s = res.x * scale
    rel = np.abs(resid(res.x))
    return LinearFit(float(a), float(1.0 / s), float(np.median(rel)), float(rel.max()), int(w.size))


def measured_curve(sizes_bytes, time_s, latency_s: float) -> Curve:
    """Size -> GB/s points with ``latency_s + n / bw(n) = t(n)`` at every measured size.

    Where a median is within 5 % of the latency (the smallest SSD reads), ``t - L`` is floored
    at 5 % of ``t`` so the bandwidth stays finite.

    >>> measured_curve([1e6, 2e6], [30e-6, 50e-6], 10e-6).y   # 1e6/20e-6, 2e6/40e-6 B/s
    (50.0, 50.0)
    """
    n = np.asarray(sizes_bytes, dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    order = np.argsort(n)
    n, t = n[order], t[order]
    bw = n / np.maximum(t - latency_s, 0.05 * t) / 1e9
    return Curve(tuple(float(x) for x in n), tuple(round(float(y), 4) for y in bw))
