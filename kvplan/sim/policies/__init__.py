"""Eviction policies, one file each, registered by name (docs/policies.md).

Importing this package registers the built-in policies; ``eviction_policy(name)`` looks one
up. Each policy is compiled code over the core's state; kvplan.sim.policies.dispatch calls
its hooks.
"""

from kvplan.sim.policies import arc, belady, fifo, lfu, lru, s3fifo  # noqa: F401  (registers)
from kvplan.sim.policies.base import (
    EvictionPolicy,
    eviction_names,
    eviction_policy,
    register_eviction,
)

__all__ = ["EvictionPolicy", "eviction_names", "eviction_policy", "register_eviction"]
