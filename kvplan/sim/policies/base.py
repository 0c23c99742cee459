"""The eviction-policy interface and its typed registry (docs/policies.md).

A tier owns its blocks (which are resident, their refcounts, its capacity, its slot pool:
kvplan.sim.core.slots); a policy only *orders slots* and names victims, never a pinned one
(refcount > 0). A policy is one module of compiled hooks over its own region of the core's
state (kvplan.sim.core.layout), registered with an :class:`EvictionPolicy`::

    slots(capacity) -> int              slots its tier's pool needs (resident + ghosts)
    words(capacity, times) -> (ints, floats)   its region's size (``times``: distinct
                                        future use times, for oracles)
    init(m, f, t)                       lay out an empty region for tier t
    region(m, t) -> v                   a tuple of ints read once per batch: v[0] is t,
                                        v[1] the tier's record base, v[2] its slot keys
                                        (for kvplan.sim.core.slots.held), then the
                                        policy's own offsets and constants
    on_insert(m, f, v, s)               the block in slot s became resident
    on_access(m, f, v, s)               the resident block in slot s was used again
    on_remove(m, f, v, s) -> bool       the block in slot s left (evicted or removed);
                                        True: the policy keeps a ghost entry in the slot
                                        (it frees it later with slots.forget)
    victims(m, f, v, n, out, incoming)  write up to n unpinned slots at m[out:], best
                                        first, taking them out of its order; returns how
                                        many. ``incoming``: the slot being inserted (never
                                        a victim), or -1 when room is made ahead (HBM)

The tier calls them as kvplan.sim.core.tier says: an insert into a full tier calls
``on_insert``, then ``victims(1)``, then ``on_remove`` for the victim; ``victims`` may
reorder the policy's own state (S3-FIFO promotes, ARC fills ghost lists) but never drops a
slot it did not name. Simulation time is ``f[NOW]`` (the request index in cache mode,
seconds in event mode); only oracles read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvplan.errors import KvplanError


@dataclass(frozen=True)
class EvictionPolicy:
    """A registered policy: its name, its code in the compiled dispatch, its hooks."""

    name: str
    code: int
    """Its branch in kvplan.sim.policies.dispatch."""
    slots: Callable[[int], int]
    """capacity_blocks -> slots in the tier's pool (Python)."""
    words: Callable[[int, int], tuple[int, int]]
    """(capacity_blocks, distinct future use times) -> int and float words of its region."""
    init: Callable
    region: Callable
    on_insert: Callable
    on_access: Callable
    on_remove: Callable
    victims: Callable
    """The compiled hooks (module docstring)."""
    is_oracle: bool = False
    """True for offline oracles that read the future: their results are upper bounds."""


_REGISTRY: dict[str, EvictionPolicy] = {}


def register_eviction(policy: EvictionPolicy) -> EvictionPolicy:
    """Make ``policy`` available under its name (one call per policy module)."""
    if any(p.code == policy.code for p in _REGISTRY.values() if p.name != policy.name):
        raise ValueError(f"eviction policy code {policy.code} is taken")
    _REGISTRY[policy.name] = policy
    return policy


def policy_of_code(code: int) -> EvictionPolicy:
    """The policy registered with ``code`` (kvplan.sim.core.tier compiles its hooks in)."""
    return next(p for p in _REGISTRY.values() if p.code == code)


def eviction_names() -> list[str]:
    """Registered eviction policy names, sorted."""
    return sorted(_REGISTRY)


def eviction_policy(name: str) -> EvictionPolicy:
    """The policy registered as ``name``; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KvplanError(f"unknown eviction policy '{name}'; valid: "
                          f"{', '.join(sorted(_REGISTRY))}") from None
