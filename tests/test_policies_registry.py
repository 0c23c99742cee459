"""The eviction registry: names, unknown names, oracle needs the future."""

from __future__ import annotations

import pytest

from kvplan.errors import KvplanError
from kvplan.sim.policies import eviction_names, make_eviction


def test_builtin_names_registered():
    assert {"lru"} <= set(eviction_names())


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KvplanError) as exc:
        make_eviction("mru", 4)
    msg = str(exc.value)
    assert "unknown eviction policy 'mru'" in msg and "lru" in msg and "\n" not in msg


def test_policy_knows_its_name():
    assert make_eviction("lru", 4).name == "lru"
