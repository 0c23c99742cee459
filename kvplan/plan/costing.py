"""Dollars: the hourly price of a candidate and the three objectives.

A replica rents its GPUs by the hour; the KV tiers are bought and written off over
AMORTIZATION_YEARS. HBM given to KV is charged at the HBM price too, so that leaving HBM free
(for a larger batch or a co-located model) is worth something::

    usd_per_h = tp x usd_per_gpu_hour
              + (hbm_kv_gib x usd_per_gib_hbm + dram_gib x usd_per_gib_dram
                 + ssd_gib x usd_per_gib_ssd) / (AMORTIZATION_YEARS x 8,760 h)

    e.g. 1 GPU at $2.50/h, 40 GiB HBM at $10, 100 GiB DRAM at $4, 1,000 GiB SSD at $0.08:
         2.50 + (400 + 400 + 80) / 26,280 = 2.5334855 $/h

    usd_per_mtok        = usd_per_h / (tokens served per hour / 1e6)
    goodput_per_usd     = goodput requests per hour / usd_per_h
"""

from __future__ import annotations

import numpy as np

from kvplan.hardware.prices import PriceTable

AMORTIZATION_YEARS = 3.0
HOURS_PER_YEAR = 8760.0
OBJECTIVES = ("usd_per_h", "usd_per_mtok", "goodput_per_usd")
"""Least $ per hour of the replica, least $ per million tokens, most goodput per $."""


def usd_per_hour(prices: PriceTable, tp: int, hbm_kv_gib, dram_gib, ssd_gib) -> np.ndarray:
    """Hourly price of each candidate (arrays broadcast); see the module docstring."""
    capex = (np.asarray(hbm_kv_gib) * prices.usd_per_gib_hbm
             + np.asarray(dram_gib) * prices.usd_per_gib_dram
             + np.asarray(ssd_gib) * prices.usd_per_gib_ssd)
    return tp * prices.usd_per_gpu_hour + capex / (AMORTIZATION_YEARS * HOURS_PER_YEAR)


def usd_per_mtok(usd_h: np.ndarray, tokens_per_s: np.ndarray) -> np.ndarray:
    """$ per million tokens served. Example: $3/h at 1,000 tok/s -> 3 / 3.6 = 0.8333."""
    return np.where(tokens_per_s > 0, usd_h / np.maximum(tokens_per_s, 1e-12) / 3600 * 1e6,
                    np.inf)


def goodput_per_usd(goodput_rps: np.ndarray, usd_h: np.ndarray) -> np.ndarray:
    """Requests meeting the SLO per dollar. Example: 2 req/s at $3/h -> 2,400."""
    return np.asarray(goodput_rps) * 3600 / np.asarray(usd_h)
