"""``none``: no prefetch; a request's stored prefix is loaded when it is admitted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kvplan.sim.prefetch.base import PrefetchPolicy, register_prefetch
from kvplan.sim.request import Req


@register_prefetch("none")
class NoPrefetch(PrefetchPolicy):
    """Load on admission (vLLM's offloading connector, LMCache and HiCache by default)."""

    def to_stage(self, waiting: Sequence[Req]) -> Iterable[Req]:
        return ()
