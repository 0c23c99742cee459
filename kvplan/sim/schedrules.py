"""Scheduler rules where serving engines differ, as data an engine module declares.

kvplan's scheduler (kvplan.sim.scheduler) is vLLM v1's continuous batching; these switches are
the rules an engine may add on top of it. vLLM 0.34.0 runs both (kvplan.engines.vllm cites
the lines; bench/vllm_parity.py diffs them step by step against vLLM's own scheduler)::

    cache_at_schedule   a step's full blocks are cached when the step is *scheduled*, so a
                        request admitted later in the same step hits blocks an earlier one
                        is computing in it (else: cached when the step completes)
    full_admission      a waiting request is admitted only if HBM can hold its whole
                        sequence (prompt + tokens generated so far), not just its first chunk

Worked example, 16-token blocks, 8 free HBM blocks, a 200-token prompt with no hits and a
128-token budget: the first chunk needs ceil(128 / 16) = 8 blocks (admitted without
``full_admission``), the whole prompt ceil(200 / 16) = 13 (kept waiting with it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SchedulerRules:
    """The engine-dependent rules of the scheduler (module docstring)."""

    cache_at_schedule: bool = False
    """Full blocks are cached when the step that computes them is scheduled."""
    full_admission: bool = False
    """Admit a waiting request only if its whole sequence fits in free + evictable HBM."""


PLAIN = SchedulerRules()
"""Continuous batching without either rule."""
