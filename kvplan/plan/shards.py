"""SHARDS: spatially hashed sampling of stack distances (Waldspurger et al., FAST'15).

A block is sampled when a hash of its id falls under a threshold, ``hash mod P < T``, so a
sampled block is sampled on *every* access and its reuse pattern is kept whole. Distances
measured among the sampled blocks are scaled by ``1/R`` (R = T/P) and each sampled access
counts for ``1/R`` accesses. The adjustment ("SHARDS_adj") adds the gap between the expected
sample count ``N*R`` and the actual one to the smallest-distance bucket, which removes most of
the bias from a few hot blocks landing in (or out of) the sample::

    N = 1,000,000 accesses, R = 0.01  ->  expected 10,000 samples; got 10,250
    -> bucket 0 gets 10,000 - 10,250 = -250 samples (= -25,000 scaled accesses)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from kvplan.plan.curves import HitCurve
from kvplan.plan.mix import splitmix64
from kvplan.plan.stackdist import COLD, stack_distances

MODULUS = 1 << 24
"""P: the sampling hash is taken modulo 2**24, so rates are multiples of 2**-24."""


@dataclass(frozen=True)
class ShardsCurve:
    """A sampled hit-ratio curve and how it was sampled."""

    curve: HitCurve
    sample_rate: float
    """R = T / P actually used."""
    sampled_accesses: int
    """Accesses whose block fell in the sample."""


def sampled_positions(keys: np.ndarray, sample_rate: float, seed: int = 0
                      ) -> tuple[np.ndarray, float]:
    """Positions (in order) of the accesses whose key is sampled, and the exact rate T/P used.

    ``seed`` salts the hash, so different seeds draw independent spatial samples.
    """
    threshold = max(1, round(sample_rate * MODULUS))
    keys = np.ascontiguousarray(keys)
    if keys.dtype.kind not in "iu":
        keys = keys.astype(np.uint64)
    return _sample(keys, np.uint64(threshold), np.uint64(seed)), threshold / MODULUS


@njit(cache=True)
def _sample(keys: np.ndarray, threshold: np.uint64, salt: np.uint64) -> np.ndarray:
    """Positions of the keys (taken as uint64) whose splitmix64 hash mod P falls under
    ``threshold``."""
    out = np.empty(keys.size, dtype=np.int64)
    m = 0
    mask = np.uint64(MODULUS - 1)
    for i in range(keys.size):
        x = splitmix64(np.uint64(keys[i]) + salt * np.uint64(0x9E3779B97F4A7C15))
        if (x & mask) < threshold:
            out[m] = i
            m += 1
    return out[:m].copy()


def shards_curve(keys: np.ndarray, sample_rate: float = 0.01, seed: int = 0,
                 offsets: np.ndarray | None = None) -> ShardsCurve:
    """Hit-ratio curve of an access stream of integer keys from a spatial sample at ``sample_rate``.

    With ``offsets`` (request r = accesses offsets[r]:offsets[r+1]) the sampled accesses keep
    their requests, and a request looks its blocks up before touching any
    (kvplan.plan.stackdist). Example: 1 M accesses at R = 0.01 run the exact algorithm on about
    10 k accesses.
    """
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    pos, rate = sampled_positions(keys, sample_rate, seed)
    sampled = np.asarray(keys)[pos].astype(np.uint64)
    uniq, inverse = np.unique(sampled, return_inverse=True)
    sub = None if offsets is None else np.searchsorted(pos, offsets)
    sd = stack_distances(inverse.reshape(-1), int(uniq.size), sub)
    warm = sd[sd != COLD]
    scaled, counts = np.unique(np.floor(warm / rate).astype(np.int64), return_counts=True)
    weights = counts.astype(np.float64) / rate
    total = float(np.asarray(keys).size)
    adjust = (total * rate - sampled.size) / rate
    if scaled.size and scaled[0] == 0:
        weights[0] += adjust
    else:
        scaled = np.concatenate([[0], scaled])
        weights = np.concatenate([[adjust], weights])
    cum = np.clip(np.cumsum(weights), 0.0, total)
    return ShardsCurve(curve=HitCurve(distance=scaled, cum_hits=cum, total=total),
                       sample_rate=rate, sampled_accesses=int(sampled.size))
