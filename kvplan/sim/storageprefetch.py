"""How long an admitted request waits for its storage (SSD) hits, as data an engine declares.

SGLang HiCache's ``--hicache-storage-prefetch-policy`` (kvplan.engines.sglang cites the lines)::

    wait_complete   the request waits until every storage hit has landed (kvplan's default,
                    and every other engine's behaviour)
    best_effort     it is scheduled at once: no storage hit is waited for
    timeout         it waits up to base_s + per_ki_token_s * hit tokens / 1,024, then goes on

What has not landed when the wait ends is abandoned: SGLang stops the remaining reads and
inserts only the pages that arrived, so the abandoned blocks' tokens are recomputed by the
request's prefill. kvplan decides the cut at admission (its loads start there): the SSD hits
that the SSD read link, alone, moves within the wait are kept, the rest are neither loaded nor
counted as hits. Contention on the link is not foreseen (an approximation).

Worked example, 16-token blocks of 1 MiB, a prefix of levels [HBM, SSD, SSD, SSD, SSD] (64 SSD
tokens), timeout 1 s + 0.25 s per 1,024 tokens -> wait 1.015625 s; the link moves k blocks in
0.1 + 0.4 k s: k = 2 land, the prefix is cut to 3 blocks, 32 tokens are recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kvplan.hierarchy import Tier


@dataclass(frozen=True)
class StorageWait:
    """The wait for storage hits: ``base_s + per_ki_token_s * tokens / 1024`` seconds."""

    base_s: float
    per_ki_token_s: float = 0.0

    def budget_s(self, tokens: int) -> float:
        return self.base_s + self.per_ki_token_s * tokens / 1024


WAIT_COMPLETE = StorageWait(math.inf)
"""Wait for every storage hit (no cut)."""
BEST_EFFORT = StorageWait(0.0)
"""Wait for none."""


def kept_hits(levels: np.ndarray, block_size: int, block_bytes: int,
              read_s: Callable[[int], float], wait: StorageWait) -> int:
    """Length of the hit prefix ``levels`` kept: up to the first SSD block that the SSD read
    link (``read_s(nbytes)``, uncontended) does not land within ``wait``."""
    ssd = np.flatnonzero(levels == int(Tier.SSD))
    budget = wait.budget_s(len(ssd) * block_size)
    if budget == math.inf or not len(ssd):
        return len(levels)
    lo, hi = 0, len(ssd)  # largest k with read_s(k blocks) <= budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if read_s(mid * block_bytes) <= budget else (lo, mid - 1)
    return len(levels) if lo == len(ssd) else int(ssd[lo])
