"""Exact or sampled stack distances: which one a plan uses, and the sample's measured error.

Streams of at most ``exact_max_accesses`` block accesses get exact stack distances
(kvplan.plan.stackdist); longer ones a SHARDS curve (kvplan.plan.shards) at ``sample_rate``
(auto: about TARGET_SAMPLED sampled accesses). Under sampling the screen reads each request's
hits as its warm prefix x H(C) / H(inf) of the sampled curve (ScreenInput.prefix_hits). The error is
measured, not assumed: exact stack distances of the first SUBSET_ACCESSES accesses (whole
requests) against the same estimator built from a SHARDS sample of that subset, at the screen's
capacities taken as the same fractions of the subset's distinct blocks::

    error = mean over capacities C of |hit ratio exact(C) - warm / N x H_R(C) / H_R(inf)|
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvplan.plan.curves import curve_from_distances, warm_prefix_blocks
from kvplan.plan.shards import MODULUS, shards_curve
from kvplan.plan.stackdist import stack_distances
from kvplan.plan.stream import AccessStream

TARGET_SAMPLED = 2_000_000
"""Sampled accesses the automatic rate aims at."""
SUBSET_ACCESSES = 2_000_000
"""Accesses (from the start, whole requests) the sampled curve is checked against exact on."""


def choose_sample_rate(num_accesses: int, exact_max_accesses: int,
                       sample_rate: float | None) -> float | None:
    """None (exact) up to ``exact_max_accesses``; else ``sample_rate`` or TARGET_SAMPLED / N.

    Example: 50 M accesses, limit 20 M, rate None -> 2 M / 50 M = 0.04.
    """
    if num_accesses <= exact_max_accesses:
        return None
    if sample_rate is not None:
        return sample_rate
    return min(1.0, max(TARGET_SAMPLED / max(num_accesses, 1), 1.0 / MODULUS))


@dataclass(frozen=True)
class SubsetError:
    """Sampled vs exact hit ratios on a leading subset of the stream."""

    accesses: int
    """Accesses in the subset."""
    capacities: int
    """Capacities compared."""
    mean_abs: float
    """Mean |exact - sampled| hit ratio over the capacities."""
    max_abs: float


def subset_error(stream: AccessStream, sample_rate: float, seed: int, fractions: np.ndarray,
                 subset_accesses: int = SUBSET_ACCESSES) -> SubsetError:
    """Error of the sampled estimator on the first ``subset_accesses`` accesses (whole requests,
    at least one) at capacities = ``fractions`` of the subset's distinct blocks."""
    offsets = stream.offsets
    k = max(1, int(np.searchsorted(offsets, subset_accesses, side="right")) - 1)
    off = offsets[:k + 1]
    ids = stream.ids[:off[-1]]
    blocks = int(np.count_nonzero(np.bincount(ids, minlength=1)))
    caps = np.unique(np.ceil(np.asarray(fractions) * blocks).astype(np.int64))
    caps = caps[caps > 0]
    n = max(ids.size, 1)
    exact = curve_from_distances(stack_distances(ids, stream.num_blocks, off)).hit_ratio(caps)
    sampled = shards_curve(ids.astype(np.uint64), sample_rate, seed, off).curve
    top = float(sampled.cum_hits[-1]) if sampled.cum_hits.size else 0.0
    warm = float(warm_prefix_blocks(ids, off, stream.num_blocks).sum())
    est = warm / n * np.clip(sampled.hits(caps) / max(top, 1e-12), 0.0, 1.0)
    diff = np.abs(exact - est) if caps.size else np.zeros(1)
    return SubsetError(accesses=int(ids.size), capacities=int(caps.size),
                       mean_abs=float(diff.mean()), max_abs=float(diff.max()))


def method_words(num_accesses: int, sample_rate: float | None = None, sampled: int = 0,
                 err: SubsetError | None = None) -> str:
    """How the curves were made, for the console, plan.json and the Parquet metadata.

    Example: "exact (120,345 accesses)".
    """
    if sample_rate is None or err is None:
        return f"exact ({num_accesses:,} accesses)"
    return (f"SHARDS R={sample_rate:.4g} ({sampled:,} sampled of {num_accesses:,}), error vs "
            f"exact on a subset of {err.accesses:,} accesses: mean |Δ hit ratio| = "
            f"{err.mean_abs:.4f} (max {err.max_abs:.4f}) at {err.capacities} screen capacities")
