"""``session+lookahead``: both signals at once. A session's context is staged when its
previous turn ends (``session``), and the waiting queue's head is staged K iterations ahead
(``lookahead``), under one staging budget."""

from __future__ import annotations

from kvplan.sim.prefetch.base import register_prefetch
from kvplan.sim.prefetch.lookahead import Lookahead
from kvplan.sim.request import Req


@register_prefetch("session+lookahead")
class SessionLookahead(Lookahead):
    """lookahead's choice of waiting requests plus session's stage at the end of a turn."""

    def after_turn(self, req: Req) -> bool:
        return True
