"""Prefetch policies, one file each, registered by name: none, lookahead, oracle."""

from kvplan.sim.prefetch import lookahead, none, oracle  # noqa: F401  (registers the built-ins)
from kvplan.sim.prefetch.base import (
    PrefetchPolicy,
    make_prefetch,
    prefetch_class,
    prefetch_names,
    register_prefetch,
)

__all__ = [
    "PrefetchPolicy",
    "make_prefetch",
    "prefetch_class",
    "prefetch_names",
    "register_prefetch",
]
