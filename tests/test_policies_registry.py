"""The eviction registry: names, codes, unknown names, oracles need the future."""

from __future__ import annotations

import pytest

from kvplan.errors import KvplanError
from kvplan.sim.core.spec import CoreSpec
from kvplan.sim.core.state import build_state
from kvplan.sim.policies import eviction_names, eviction_policy
from kvplan.sim.policies.base import policy_of_code


def test_builtin_names_registered_with_distinct_codes():
    names = eviction_names()
    assert {"lru", "fifo", "lfu", "s3fifo", "arc", "belady"} <= set(names)
    codes = [eviction_policy(n).code for n in names]
    assert len(set(codes)) == len(codes)
    assert all(policy_of_code(eviction_policy(n).code).name == n for n in names)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KvplanError) as exc:
        eviction_policy("mru")
    msg = str(exc.value)
    assert "unknown eviction policy 'mru'" in msg and "lru" in msg and "\n" not in msg


def test_oracle_needs_the_future():
    with pytest.raises(ValueError, match="needs the workload's future"):
        build_state(CoreSpec.of((4, 0, 0), "belady"), 8, 2)
