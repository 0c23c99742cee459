"""REFERENCE (tests only): the plain-Python eviction-policy interface and registry.

The product's policies are compiled (kvplan.sim.policies); these classes are the readable
references the tests compare them with, hook by hook.

A tier owns its blocks and their bytes; a policy only *orders* keys and names victims
(LMCache ``cache_policy``, libCacheSim's find / insert / evict split). Keys are dense int
block ids (kvplan.sim.blocks). Simulation time is passed in; a policy never reads a clock.

Call order, driven by :class:`reference.tiers.Tier`::

    insert:  on_insert(key, now)  [full: victims(n, pinned, key) -> on_remove(v) each victim
                                         -> on_unpin(key) unless inserted pinned]
    hit:     on_access(key, now)
    remove:  on_remove(key)            (exclusive promotion, explicit drop)
    pins:    on_pin(key) / on_unpin(key)   (refcount 0 -> 1 / 1 -> 0; no-ops by default)

``on_insert`` runs *before* room is made, with the new key pinned, so a policy may use the
incoming key when it picks victims (ARC's REPLACE, S3-FIFO's ghost check). ``victims`` may
reorder internal state (S3-FIFO promotes, ARC moves keys to ghost lists) but never drops a key
it did not name; the tier then calls ``on_remove`` for every named victim. The pin hooks let a
policy keep in-use keys out of its eviction order (vLLM's free queue holds refcount-0 blocks
only), so ``victims`` need not walk past them.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Callable, Container
from typing import ClassVar

import numpy as np

from kvplan.errors import KvplanError


class FutureUses:
    """When each block id will be used next: the sorted use times of every key (CSR layout).

    Built from the workload's whole access stream, so only an offline oracle may hold one::

        keys  [7, 3, 7]  times [0., 1., 2.]  ->  key 7 used at 0 and 2, key 3 at 1
        next_use(7, 0.0) = 2.0;  next_use(7, 2.0) = inf;  next_use(3, 0.5) = 1.0
    """

    def __init__(self, keys: np.ndarray, times: np.ndarray, num_keys: int) -> None:
        order = np.lexsort((times, keys))
        self._times = np.asarray(times, dtype=np.float64)[order]
        counts = np.bincount(np.asarray(keys, dtype=np.int64), minlength=num_keys)
        self._offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)

    def next_use(self, key: int, now: float) -> float:
        """First use time of ``key`` strictly after ``now`` (``inf`` if none)."""
        lo, hi = self._offsets[key], self._offsets[key + 1]
        i = bisect.bisect_right(self._times, now, lo, hi)
        return float(self._times[i]) if i < hi else float("inf")


class EvictionPolicy(ABC):
    """Orders the keys resident in one tier and names victims, skipping pinned keys."""

    name: ClassVar[str] = ""
    """Registry name (set by :func:`register_eviction`)."""
    is_oracle: ClassVar[bool] = False
    """True for offline oracles that read the future: their results are upper bounds."""

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        self.capacity_blocks = capacity_blocks

    @abstractmethod
    def on_insert(self, key: int, now: float) -> None:
        """``key`` became resident (not resident before)."""

    @abstractmethod
    def on_access(self, key: int, now: float) -> None:
        """A resident ``key`` was used again."""

    @abstractmethod
    def on_remove(self, key: int) -> None:
        """``key`` left the tier (evicted or removed); a no-op for unknown keys."""

    @abstractmethod
    def victims(self, n: int, pinned: Container[int], incoming: int | None = None) -> list[int]:
        """Up to ``n`` resident keys to evict, best first, none of them in ``pinned``;
        ``incoming`` is the key being inserted (None: room made ahead of inserts)."""

    def on_pin(self, key: int) -> None:
        """A resident ``key`` came into use (refcount 0 -> 1); it is in ``pinned`` from now."""
        return None

    def on_unpin(self, key: int) -> None:
        """A resident ``key`` is no longer in use (refcount 1 -> 0): evictable again."""
        return None


_REGISTRY: dict[str, type[EvictionPolicy]] = {}


def register_eviction(name: str) -> Callable[[type[EvictionPolicy]], type[EvictionPolicy]]:
    """Class decorator: make a policy available under ``name`` (one line per policy)."""

    def deco(cls: type[EvictionPolicy]) -> type[EvictionPolicy]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def eviction_names() -> list[str]:
    """Registered eviction policy names, sorted."""
    return sorted(_REGISTRY)


def eviction_class(name: str) -> type[EvictionPolicy]:
    """The policy class registered as ``name``; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KvplanError(f"unknown eviction policy '{name}'; valid: "
                          f"{', '.join(sorted(_REGISTRY))}") from None


def make_eviction(name: str, capacity_blocks: int,
                  future: FutureUses | None = None) -> EvictionPolicy:
    """A fresh policy for a tier of ``capacity_blocks``; oracles need ``future``."""
    cls = eviction_class(name)
    if cls.is_oracle and future is None:
        raise KvplanError(f"eviction policy '{name}' is an offline oracle and needs the "
                          "workload's future accesses")
    return cls(capacity_blocks, future)
