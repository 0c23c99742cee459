"""Cost arithmetic against hand-computed figures."""

from __future__ import annotations

import numpy as np
import pytest

from kvplan.hardware.prices import PriceTable
from kvplan.plan.costing import goodput_per_usd, usd_per_hour, usd_per_mtok
from kvplan.plan.space import default_space, nice_gib

PRICES = PriceTable(usd_per_gib_hbm=10.0, usd_per_gib_dram=4.0, usd_per_gib_ssd=0.08,
                    usd_per_gpu_hour=2.5)


def test_usd_per_hour_by_hand():
    # 2.50 + (40*10 + 100*4 + 1000*0.08) / (3 * 8760) = 2.50 + 880 / 26280
    assert usd_per_hour(PRICES, 1, 40, 100, 1000) == pytest.approx(2.5334855403348554)
    assert usd_per_hour(PRICES, 2, 0, 0, 0) == pytest.approx(5.0)


def test_per_token_and_goodput_by_hand():
    assert usd_per_mtok(np.array(3.0), np.array(1000.0)) == pytest.approx(3 / 3.6)
    assert usd_per_mtok(np.array(3.0), np.array(0.0)) == np.inf
    assert goodput_per_usd(np.array(2.0), np.array(3.0)) == pytest.approx(2400.0)


def test_default_space_from_footprint():
    sp = default_space(10.0, 40.0, 256.0, 3500.0)
    assert sp.hbm_kv_gib == (10.0, 20.0, 30.0, 40.0)
    assert sp.dram_gib == (0.0, 0.31, 0.62, 1.2, 2.5, 5.0, 10.0, 20.0)
    assert sp.ssd_gib == (0.0, 2.5, 5.0, 10.0, 20.0)
    assert nice_gib(55.9, down=True) == 55.0 and nice_gib(83.7) == 84.0


def test_default_replicas_grid_stops_at_the_node():
    assert default_space(10.0, 40.0, 256.0, 3500.0, max_replicas=8).replicas == (1, 2, 3, 4)
    assert default_space(10.0, 40.0, 256.0, 3500.0, max_replicas=2).replicas == (1, 2)
    assert default_space(10.0, 40.0, 256.0, 3500.0, max_replicas=0).replicas == (1,)


def test_ssd_tiers_come_with_a_dram_tier_larger_than_hbm():
    from kvplan.errors import KvplanError
    from kvplan.plan.space import SearchSpace, default_space, deployable

    assert not deployable(27, 0, 630) and deployable(27, 64, 630) and deployable(27, 8, 0)
    space = default_space(2500.0, 55.0, 256.0, 3500.0, max_replicas=8)
    configs = space.tier_configs()
    assert configs and all(dram > hbm for hbm, dram, ssd, _ in configs if ssd > 0)
    with pytest.raises(KvplanError, match="SSD tier needs a DRAM tier"):
        SearchSpace(replicas=(1,), hbm_kv_gib=(27.0,), dram_gib=(0.0,), ssd_gib=(630.0,)
                    ).tier_configs()
