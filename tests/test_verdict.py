"""The saturation verdict (kvplan.sim.verdict) on hand-computed runs and screened rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kvplan.sim.verdict import backlog_growth_rps, run_figures, screen_figures, verdict


def test_a_run_that_keeps_up_is_ok_with_its_figures():
    # 4 requests at t = 0, 1, 2, 3 s, each done 0.5 s later: 4 / 3 s offered, 4 / 3.5 s served.
    f = run_figures(np.array([0.0, 1, 2, 3]), np.array([0.5, 1.5, 2.5, 3.5]), preemptions=0)
    assert f.offered_rps == pytest.approx(4 / 3)
    assert f.served_rps == pytest.approx(4 / 3.5)
    assert f.growth_rps < 0.05  # a sawtooth of 0 and 1 requests in the system: no growth
    v = verdict(f)
    assert v.state == "ok"
    assert v.reason == "1.33 req/s offered, 1.14 served; no backlog growth; 0 preemptions"


def test_a_growing_backlog_is_overloaded():
    # 100 requests, one per second; the server finishes one every 2 s (request i at 2i + 1):
    # requests in the system grow by 1 - 1/2 = 0.5 per second, served 100 / 199 s.
    arrival = np.arange(100, dtype=float)
    finish = 2 * arrival + 1
    assert backlog_growth_rps(arrival, finish) == pytest.approx(0.5, abs=0.02)
    v = verdict(run_figures(arrival, finish, preemptions=0))
    assert v.state == "overloaded"
    assert v.reason.startswith("1.01 req/s offered, 0.50 served; requests in the system grow "
                               "by 0.5")


def test_a_backlog_that_still_serves_the_offered_rate_is_not_overloaded():
    # A burst at the start that drains: served 100 / 100.5 s >= 95 % of 100 / 99 s offered.
    arrival = np.arange(100, dtype=float)
    finish = arrival + 0.5
    assert verdict(run_figures(arrival, finish, preemptions=0)).state == "ok"


def test_unfinished_requests_make_a_run_overloaded():
    v = verdict(run_figures(np.array([0.0, 1, 2, 3]), np.array([0.5, 1.5, np.nan, np.nan]),
                            preemptions=0, stop_reason="simulated-time cap 10 s reached"))
    assert v.state == "overloaded"
    assert "stopped (simulated-time cap 10 s reached) with 2 of 4 requests unfinished" in v.reason


def test_preemptions_beyond_one_in_ten_requests_strain_a_run():
    arrival, finish = np.array([0.0, 1, 2, 3]), np.array([0.5, 1.5, 2.5, 3.5])
    assert verdict(run_figures(arrival, finish, preemptions=1)).state == "strained"  # 0.25
    many = np.arange(20, dtype=float)
    assert verdict(run_figures(many, many + 0.5, preemptions=2)).state == "ok"  # 0.1


@pytest.mark.parametrize(("offered", "capacity", "state"), [
    (4.59, 3.07, "overloaded"),      # above what it sustains
    (3.0, 3.2, "strained"),          # above 90 % of it (2.88)
    (2.0, 4.0, "ok"),
    (2.0, math.inf, "ok"),
])
def test_screen_verdict_compares_offered_and_sustainable_rates(offered, capacity, state):
    v = verdict(screen_figures(offered, capacity))
    assert v.state == state
    assert v.reason.startswith(f"{offered:.2f} req/s offered, sustains up to ")
    assert ("any rate" in v.reason) == math.isinf(capacity)


def test_all_requests_at_once_has_no_offered_rate():
    f = run_figures(np.zeros(3), np.array([1.0, 2.0, 3.0]), preemptions=0)
    assert f.offered_rps is None and f.growth_rps is None
    assert verdict(f).reason.startswith("all requests at once, 1.00 served")
