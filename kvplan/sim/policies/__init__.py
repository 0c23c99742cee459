"""Eviction policies, one file each, registered by name (docs/policies.md).

Importing this package registers the built-in policies; ``make_eviction(name, ...)`` builds one.
"""

from kvplan.sim.policies import arc, belady, fifo, lfu, lru, s3fifo  # noqa: F401  (registers)
from kvplan.sim.policies.base import (
    EvictionPolicy,
    FutureUses,
    eviction_class,
    eviction_names,
    make_eviction,
    register_eviction,
)

__all__ = [
    "EvictionPolicy",
    "FutureUses",
    "eviction_class",
    "eviction_names",
    "make_eviction",
    "register_eviction",
]
