"""``oracle-arrival``: the oracle's just-in-time loads, but none starts before its request
arrives (a bound for every policy that learns of a request when it arrives).

The ``oracle`` bound may run a load ahead of the request's arrival; no online policy knows a
request before it arrives unless the workload tells it (a session's next turn). The gap
between the two bounds is what only such foreknowledge can win: on a trace whose requests
are admitted on arrival, ``oracle-arrival`` stalls about as much as ``none`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kvplan.sim.prefetch.base import PrefetchPolicy, register_prefetch
from kvplan.sim.request import Req


@register_prefetch("oracle-arrival")
class ArrivalOracle(PrefetchPolicy):
    """Just-in-time loads from arrival on (bound); stages nothing itself."""

    just_in_time = True
    from_arrival = True

    def to_stage(self, waiting: Sequence[Req]) -> Iterable[Req]:
        return ()
