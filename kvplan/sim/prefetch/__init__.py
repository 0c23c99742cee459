"""Prefetch policies, one file each, registered by name: none, lookahead, session,
session+lookahead, oracle and oracle-arrival (bounds)."""

from kvplan.sim.prefetch import (  # noqa: F401  (registers the built-ins)
    lookahead,
    none,
    oracle,
    oracle_arrival,
    session,
    session_lookahead,
)
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
