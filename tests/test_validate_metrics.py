"""Metric definitions against hand-computed values from the bundled run's first requests."""

import polars as pl
import pytest

from kvplan.validate.metrics import METRICS, compare, per_request_frame, summarize
from kvplan.validate.read import default_run_path, read_run


@pytest.fixture(scope="module")
def run():
    return read_run(default_run_path())


def test_first_three_requests_by_hand(run):
    # engine stamps (requests.jsonl lines 1-3), seconds on the engine's monotonic clock:
    #   bench-0 queued 27536.660701067 first 27537.350135653 last 27554.231018618 out 531
    #   bench-1 queued 27537.047603549 first 27537.350135653 last 27562.279894586 out 769
    #   bench-2 queued 27537.221809715 first 27537.553364333 last 27562.305334095 out 769
    ttft = [0.689434586, 0.302532104, 0.331554618]
    e2e = [17.570317551, 25.232291037, 25.083524380]
    tpot = [16.880882965 / 530, 24.929758933 / 768, 24.751969762 / 768]
    arrival = [0.0, 0.386902482, 0.561108648]
    got = summarize(run.requests.head(3))
    assert got["ttft_mean_ms"] == pytest.approx(sum(ttft) / 3 * 1e3, abs=1e-6)
    assert got["ttft_p50_ms"] == pytest.approx(331.554618, abs=1e-6)
    # linear interpolation: p90 sits 0.8 of the way from the 2nd to the 3rd smallest
    assert got["ttft_p90_ms"] == pytest.approx((0.331554618 + 0.8 * (0.689434586 - 0.331554618))
                                               * 1e3, abs=1e-6)
    assert got["tpot_mean_ms"] == pytest.approx(sum(tpot) / 3 * 1e3, abs=1e-6)
    assert got["e2e_p50_ms"] == pytest.approx(25083.524380, abs=1e-6)
    makespan = max(a + e for a, e in zip(arrival, e2e, strict=True))  # bench-2 finishes last
    assert got["makespan_s"] == pytest.approx(27562.305334095 - 27536.660701067, abs=1e-9)
    assert got["makespan_s"] == pytest.approx(makespan, abs=1e-8)
    assert got["throughput_rps"] == pytest.approx(3 / makespan)


def test_whole_run_matches_llmservingsim_summary(run):
    """The run's own summary file (an independent implementation) gives the same real side:
    TTFT mean 65456.6 / p50 60110.9 / p99 137356.3, TPOT mean 32.4 / p50 30.8, latency mean
    86578.3 / p90 141600.9 ms (llmservingsim_validation_summary.txt, column vLLM)."""
    got = summarize(run.requests)
    for metric, value in (("ttft_mean_ms", 65456.6), ("ttft_p50_ms", 60110.9),
                          ("ttft_p99_ms", 137356.3), ("tpot_mean_ms", 32.4),
                          ("tpot_p50_ms", 30.8), ("e2e_mean_ms", 86578.3),
                          ("e2e_p90_ms", 141600.9)):
        assert got[metric] == pytest.approx(value, abs=0.051), metric
    assert list(got) == list(METRICS)


def test_errors_and_per_request_medians():
    real = pl.DataFrame({"request_id": [0, 1, 2], "source_id": ["a", "b", "c"],
                         "arrival_s": [0.0, 1.0, 2.0], "input_tokens": [10, 10, 10],
                         "output_tokens": [3, 1, 5], "ttft_s": [0.1, 0.2, 0.4],
                         "tpot_s": [0.05, None, 0.1], "e2e_s": [0.2, 0.2, 0.8]},
                        schema_overrides={"input_tokens": pl.Int32, "output_tokens": pl.Int32})
    sim = pl.DataFrame({"request_id": [0, 1, 2], "finished": [True, True, False],
                        "preemptions": [0, 1, 0], "ttft_s": [0.11, 0.3, None],
                        "tpot_s": [0.04, None, None], "e2e_s": [0.19, 0.3, None]})
    per = per_request_frame(real, sim)
    assert per["ttft_error_frac"].to_list()[:2] == pytest.approx([0.1, 0.5])
    c = compare(per)
    pr = c.per_request
    assert (pr.requests_compared, pr.unfinished_in_sim) == (2, 1)
    assert pr.ttft_median_abs_error_frac == pytest.approx(0.3)  # median of 0.1 and 0.5
    assert pr.tpot_median_abs_error_frac == pytest.approx(0.2)  # one value, |0.04-0.05|/0.05
    # real side over all three, simulated over the two it finished
    assert c.row("ttft_mean_ms").real == pytest.approx(700 / 3)
    assert c.row("ttft_mean_ms").sim == pytest.approx(205.0)
    assert c.row("ttft_mean_ms").error_frac == pytest.approx(205.0 / (700 / 3) - 1)
    assert c.row("makespan_s").real == pytest.approx(2.8)
    assert c.row("makespan_s").sim == pytest.approx(1.3)
    assert c.outside(0.10) == ["ttft_mean_ms", "tpot_mean_ms", "e2e_mean_ms"]
