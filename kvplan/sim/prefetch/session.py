"""``session``: stage a session's context for its next turn while the user thinks or the tool
runs.

What the serving stack knows early: when turn k of a session finishes, turn k+1 will reuse
its whole context (prompt and answer) after a think / tool gap. So at the end of turn k the
policy stages the context toward HBM (blocks still in HBM are pinned, DRAM / SSD blocks are
copied up, two hops from SSD) under the staging budget, and promotes what does not fit from
SSD to DRAM. The stage is dropped when turn k+1 has not arrived ``stage_ttl_s`` after turn k
ended (a user who left). Staged blocks hold HBM space and use link time like any load; they
are pinned, so staging never evicts a block a running request holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from kvplan.sim.prefetch.base import PrefetchPolicy, register_prefetch
from kvplan.sim.request import Req


@register_prefetch("session")
class SessionPrefetch(PrefetchPolicy):
    """Stage a session's next turn when its previous turn ends."""

    def to_stage(self, waiting: Sequence[Req]) -> Iterable[Req]:
        return ()

    def after_turn(self, req: Req) -> bool:
        return True


def next_turns(session: np.ndarray) -> np.ndarray:
    """For each request (workload row), the row of its session's next request, or -1.

    Example: sessions [7, 3, 7, 3, 9] -> [2, 3, -1, -1, -1].
    """
    session = np.asarray(session)
    order = np.lexsort((np.arange(len(session)), session))
    nxt = np.full(len(session), -1, dtype=np.int64)
    same = session[order[1:]] == session[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt
