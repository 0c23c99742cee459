"""``lookahead``: stage the prefixes of requests the scheduler will admit within K iterations.

TierKV-style. The FCFS queue is admitted in order, and each iteration hands out at most
``max_batched_tokens``; so the requests whose tokens still to compute fit, cumulatively, in
``K x max_batched_tokens`` (and at most ``max_seqs`` of them) are the ones admitted within
about K iterations. Worked example: budget 8192, K = 2, queue of prompts 6000, 9000, 4000
tokens -> 6000 + 9000 = 15000 <= 16384 stages the first two; the third would exceed it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kvplan.sim.prefetch.base import PrefetchPolicy, register_prefetch
from kvplan.sim.request import Req


@register_prefetch("lookahead")
class Lookahead(PrefetchPolicy):
    """The head of the waiting queue, up to K iterations' worth of tokens."""

    def to_stage(self, waiting: Sequence[Req]) -> Iterator[Req]:
        budget = self.config.lookahead_iters * self.config.max_batched_tokens
        for i, req in enumerate(waiting):
            budget -= req.num_tokens - req.computed
            if budget < 0 or i >= self.config.max_seqs:
                return
            yield req
