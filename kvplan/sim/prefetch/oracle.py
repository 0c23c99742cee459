"""``oracle``: every load is done just in time, limited only by link bandwidth (a bound).

Not an implementable policy: it knows when each request will be admitted. Each link is a
single server that runs every load so that it ends exactly at the request's admission, or as
early as the link's earlier loads allow; the request stalls only for the overrun
(:func:`kvplan.sim.transfers.just_in_time_stall_s`). Its load stall is a lower bound for any
prefetch policy on the same links; outputs label it as a bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kvplan.sim.prefetch.base import PrefetchPolicy, register_prefetch
from kvplan.sim.request import Req


@register_prefetch("oracle")
class OraclePrefetch(PrefetchPolicy):
    """Just-in-time loads (bound); stages nothing itself."""

    just_in_time = True

    def to_stage(self, waiting: Sequence[Req]) -> Iterable[Req]:
        return ()
