"""Replay settings of a run: precedence, vLLM's defaults and KV pool derivation, refusals."""

import dataclasses
import json

import numpy as np
import pytest
from validate_samples import CSV, VLLM

from kvplan.errors import InputError, KvplanError
from kvplan.hardware.profile import load_profile
from kvplan.validate.read import default_run_path, read_run
from kvplan.validate.run import RunSettings
from kvplan.validate.runner import check_replayable, replay_workload, run_validation
from kvplan.validate.settings import Overrides, resolve, vllm_batch_defaults


@pytest.fixture(scope="module")
def run():
    return read_run(default_run_path())


def test_recorded_settings_and_sources(run):
    s = resolve(run, Overrides())
    assert (s.model, s.profile, s.max_seqs, s.max_batched_tokens, s.block_size) == (
        "llama-3.1-8b", "rtx-4090", 256, 2048, 16)
    assert (s.kv_pool_tokens, s.kv_blocks, s.kv_dtype, s.prefix_caching) == (
        41408, 2588, "bf16", True)
    assert s.kv_gib == pytest.approx(2588 * 2 / 1024)
    assert s.sources["max_seqs"] == "meta.json: engine_kwargs.max_num_seqs"
    assert s.sources["kv_pool_tokens"] == "meta.json: kv_cache.num_gpu_blocks x block_size"
    # the replay gets exactly the recorded number of blocks
    from kvplan.sim.build import build_cost, tier_capacity_blocks
    cfg = s.replay_config()
    assert tier_capacity_blocks(cfg, build_cost(cfg), 16)[0] == 2588


def test_flags_override_the_run(run):
    s = resolve(run, Overrides(max_seqs=64, kv_pool_tokens=1000, profile="h100-sxm"))
    assert (s.max_seqs, s.kv_pool_tokens, s.profile) == (64, 992, "h100-sxm")
    assert s.sources["max_seqs"] == "--max-seqs" and s.sources["profile"] == "--profile"


def test_derived_pool_as_vllm_sizes_it(run):
    """Worked example of kvplan/validate/kvpool.py: 3,027 blocks (vLLM measured 2,588)."""
    bare = dataclasses.replace(run, settings=dataclasses.replace(run.settings,
                                                                 kv_pool_tokens=None))
    s = resolve(bare, Overrides())
    terms = {t.name: t.bytes for t in s.pool_terms}
    assert terms["requested"] == 22_725_564_826  # ceil(25,250,627,584 x 0.9)
    assert terms["weights"] == -16_060_522_496
    assert terms["activation peak"] == -(2048 * (4 * 4096 + 2 * 14336) * 2 + 256 * 128256 * 4)
    assert s.kv_blocks == sum(terms.values()) // (16 * 131072) == 3027
    assert "derived" in s.sources["kv_pool_tokens"]
    user_set = dataclasses.replace(bare, settings=dataclasses.replace(
        bare.settings, kv_cache_memory_bytes=2**30))
    assert resolve(user_set, Overrides()).kv_blocks == 512
    # tp 2 on the same memory: half the weights and half of each token's KV per GPU, the
    # activations of a forward pass with the MLP split in two (the cost model's reserve)
    tp2 = {t.name: t.bytes for t in resolve(bare, Overrides(tp=2)).pool_terms}
    assert tp2["weights"] == -16_060_522_496 // 2
    assert tp2["activation peak"] == -(2048 * (4 * 4096 + 14336) * 2 + 256 * 128256 * 4)
    assert resolve(bare, Overrides(tp=2)).kv_blocks == sum(tp2.values()) // (16 * 65536) == 13769


def test_vllm_defaults_by_gpu():
    assert vllm_batch_defaults(load_profile("h100-sxm"))[:2] == (1024, 8192)
    assert vllm_batch_defaults(load_profile("a100-80gb"))[:2] == (256, 2048)
    assert vllm_batch_defaults(load_profile("rtx-4090"))[:2] == (256, 2048)


def test_vllm_bench_file_gets_defaults(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(VLLM))
    s = resolve(read_run(p), Overrides(profile="rtx-4090"))
    assert (s.max_seqs, s.max_batched_tokens, s.block_size) == (256, 2048, 16)
    assert s.sources["max_seqs"].startswith("vLLM serve default")
    with pytest.raises(KvplanError, match="--profile is required"):
        resolve(read_run(p), Overrides())


def test_model_is_required_or_must_be_known(tmp_path, run):
    p = tmp_path / "m.csv"
    p.write_text(CSV)
    with pytest.raises(KvplanError, match="--model is required"):
        resolve(read_run(p), Overrides(profile="rtx-4090"))
    odd = dataclasses.replace(run, settings=dataclasses.replace(run.settings, model="org/Nope-1B"))
    with pytest.raises(InputError, match="field 'meta.json: model'.*no bundled preset"):
        resolve(odd, Overrides())


def test_layouts_the_profile_cannot_hold_are_refused(run):
    s = resolve(run, Overrides())
    w = replay_workload(run, s)
    with pytest.raises(KvplanError, match=r"--tp 2 needs 2 GPUs in one node; rtx-4090 has 1 .*"
                                          r"\(tp from --tp, dp from meta.json"):
        check_replayable(run, dataclasses.replace(s, tp=2, sources={**s.sources, "tp": "--tp"}),
                         w)
    flagged = resolve(run, Overrides(ep=2))
    with pytest.raises(KvplanError, match="--ep 2: llama-3.1-8b has no experts"):
        check_replayable(run, flagged, w)


def test_expert_parallel_flag_of_a_dense_run_is_replayed_at_ep_1(run):
    ep_run = dataclasses.replace(run, settings=dataclasses.replace(run.settings,
                                                                   expert_parallel_size=2))
    s = resolve(ep_run, Overrides())
    assert s.ep == 1 and "llama-3.1-8b has no experts, replayed at 1" in s.sources["ep"]


def test_tp_and_dp_runs_replay_under_their_layout(run):
    s = resolve(run, Overrides())
    one = run_validation(run, s)
    dp2 = dataclasses.replace(s, dp=2)
    assert dp2.replay_config().layout.dp == 2
    two = run_validation(run, dp2)
    assert two.comparison.per_request.requests_compared == 300          # every replica's
    assert two.comparison.row("ttft_mean_ms").sim < one.comparison.row("ttft_mean_ms").sim
    assert set(two.sim_timeseries.columns) == {"t_s", "running", "waiting"}
    assert "prefix-affinity" in resolve(run, Overrides(dp=2)).sources["dp"]
    tp2 = dataclasses.replace(s, tp=2, profile="h100-sxm")
    check_replayable(run, tp2, replay_workload(run, tp2))
    assert run_validation(run, tp2).comparison.row("tpot_mean_ms").sim < \
        run_validation(run, dataclasses.replace(tp2, tp=1)).comparison.row("tpot_mean_ms").sim


def test_model_that_does_not_fit_names_the_field(run):
    s = resolve(run, Overrides(model="llama-3.1-70b"))
    with pytest.raises(InputError, match=r"field '--model': cannot replay llama-3.1-70b on "
                                         r"rtx-4090.*leave no KV room"):
        check_replayable(run, s, replay_workload(run, s))


def test_token_ids_give_shared_prefixes(run):
    ids = np.arange(64, dtype=np.uint64)
    head = run.requests.head(2).with_columns(input_tokens=np.array([64, 48], dtype=np.int32))
    toks = dataclasses.replace(run, requests=head, prompt_token_ids=(ids, ids[:48]),
                               settings=RunSettings())
    s = resolve(toks, Overrides(model="llama-3.1-8b", profile="rtx-4090"))
    hashes = replay_workload(toks, s).table.column("block_hashes").to_pylist()
    assert len(hashes[0]) == 4 and hashes[1] == hashes[0][:3]
    off = replay_workload(toks, dataclasses.replace(s, prefix_caching=False))
    lengths_only = off.table.column("block_hashes").to_pylist()
    assert not set(lengths_only[0]) & set(lengths_only[1])
