"""Synthesized arrivals and workloads: parameters checked statistically, runs reproducible."""

import numpy as np
import pytest

from kvplan.errors import KvplanError
from kvplan.trace import ArrivalSpec, Dist, trace_info
from kvplan.trace.arrivals import session_starts, turn_arrivals
from kvplan.trace.synth import default_spec, synth_workload
from kvplan.workload import write_workload


def test_turn_arrivals_worked_example():
    a = turn_arrivals(np.array([0, 0]), np.array([0, 1]), np.array([100, 50]),
                      np.array([9.0, 3.0]), np.array([5.0]), 0.02)
    assert a.tolist() == [5.0, 10.0]


@pytest.mark.parametrize("cv", [None, 0.5, 3.0])
def test_session_start_rate_and_cv(cv):
    spec = ArrivalSpec(rate_per_s=4.0, cv=cv)
    gaps = np.diff(session_starts(spec, 20_000, np.random.default_rng(1)))
    assert gaps.mean() == pytest.approx(0.25, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv or 1.0, rel=0.08)


def test_dist_parse_and_means():
    rng = np.random.default_rng(0)
    for text, mean in [("exp:3", 3.0), ("const:2", 2.0), ("lognormal:10,1", 10 * np.exp(0.5))]:
        d = Dist.parse(text)
        assert d.mean_s == pytest.approx(mean)
        assert d.sample(rng, 50_000).mean() == pytest.approx(mean, rel=0.05)
    with pytest.raises(KvplanError):
        Dist.parse("lognormal:1")


def test_chat_turns_and_lengths_follow_the_parameters():
    spec = default_spec("chat").with_overrides(["sessions=2000", "mean_turns=3"])
    w = synth_workload(spec, ArrivalSpec(seed=3))
    info = trace_info(w)
    assert info.requests / info.sessions == pytest.approx(3.0, rel=0.05)
    out = w.table.column("output_tokens").to_numpy()
    assert np.median(out) == pytest.approx(200, rel=0.1)


def test_shared_prefix_template_popularity_is_zipf():
    spec = default_spec("shared-prefix").with_overrides(
        ["sessions=4000", "templates=8", "zipf_s=1.0", "template_tokens=64"])
    w = synth_workload(spec, ArrivalSpec())
    first = [h[0] for h in w.table.column("block_hashes").to_pylist()]
    _, counts = np.unique(first, return_counts=True)
    share = np.sort(counts)[::-1] / counts.sum()
    expected = (1 / np.arange(1, 9)) / (1 / np.arange(1, 9)).sum()
    np.testing.assert_allclose(share, expected, atol=0.02)


def test_agent_and_long_doc_share_their_prefix_and_grow():
    agent = synth_workload(default_spec("agent").with_overrides(["sessions=20"]), ArrivalSpec())
    rows = agent.table.to_pylist()
    assert all(r["tool_wait_s"] > 0 for r in rows if r["turn"] > 0)
    s0 = [r["input_tokens"] for r in rows if r["session_id"] == 0]
    assert s0 == sorted(s0) and s0[0] >= 4000
    doc = synth_workload(default_spec("long-doc-qa").with_overrides(["sessions=50"]),
                         ArrivalSpec())
    assert trace_info(doc).prefix_reuse > 0.9


def test_synth_is_reproducible(tmp_path):
    for i in (1, 2):
        w = synth_workload(default_spec("chat").with_overrides(["sessions=30"]),
                           ArrivalSpec(seed=5))
        write_workload(w, tmp_path / f"{i}.parquet")
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()
