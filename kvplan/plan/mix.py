"""splitmix64's finaliser: the 64-bit mix behind SHARDS sampling and rendezvous routing."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def splitmix64(x: np.uint64) -> np.uint64:
    """A bijective avalanche mix of one uint64 (Steele, Lea & Flood's SplitMix64 finaliser)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x
