"""The recommendation's prefetch headroom: how much of the oracle's stall reduction its
prefetch policy captures (kvplan.sim.prefetch.headroom), as one plan note."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from kvplan.sim.config import ReplayConfig
from kvplan.sim.engine import run_event
from kvplan.sim.prefetch import prefetch_class
from kvplan.sim.prefetch.headroom import captured_frac
from kvplan.workload import Workload


def headroom_note(config: ReplayConfig, parts: Callable[[], list[Workload]]) -> list[str]:
    """Replays the recommended configuration under ``none``, its policy and ``oracle`` on each
    replica's requests (``parts()``, built only when there is a policy to measure) and says
    which share of the avoidable load stall the policy removes; nothing for ``none`` or a
    bound."""
    if config.prefetch == "none" or prefetch_class(config.prefetch).just_in_time:
        return []
    one = replace(config, layout=replace(config.layout, dp=1))
    replicas = [w for w in parts() if w.num_requests]
    stall = {p: sum(run_event(w, replace(one, prefetch=p)).run.timing.load_stall_total_s
                    for w in replicas)
             for p in ("none", config.prefetch, "oracle")}
    share = captured_frac(stall["none"], stall[config.prefetch], stall["oracle"])
    words = "n/a (the oracle avoids no stall)" if share is None else f"{share:.0%}"
    return [f"prefetch headroom of the recommendation: {config.prefetch} captures {words} of "
            f"the oracle's load-stall reduction (none {stall['none']:.1f} s, "
            f"{config.prefetch} {stall[config.prefetch]:.1f} s, oracle bound "
            f"{stall['oracle']:.1f} s over all replicas)"]
