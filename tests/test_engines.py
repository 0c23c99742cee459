"""Engine models: settings per engine with hand-computed values, quoting, files (docs/engines.md).

The engines' own parsers check the same lines in tests/test_engines_parsers.py (SGLang,
LMCache) and bench/engines_check.py (vLLM).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest
import yaml

from kvplan.engines import ENGINES, TierChoice, engine, engine_settings
from kvplan.engines.base import GB, GIB, model_id
from kvplan.errors import InputError, KvplanError
from kvplan.plan.spec import spec_from_dict
from kvplan.report.engine_files import write_engine_files

LLAMA_8B = 131_072
"""KV bytes per token of Llama-3.1-8B in bf16: 32 layers x 8 heads x 128 x 2 x 2 B."""


def choice(**kw) -> TierChoice:
    base = {"model": "meta-llama/Llama-3.1-8B", "block_size": 512,
            "kv_bytes_per_token": LLAMA_8B, "hbm_kv_bytes": 40 * GIB}
    return TierChoice(**(base | kw))


def by_engine(t: TierChoice) -> dict:
    return {e.engine: e for e in engine_settings(t)}


def test_registry_names_the_four_targets_and_rejects_others():
    assert list(ENGINES) == ["vllm", "vllm+lmcache", "sglang-hicache", "dynamo-kvbm"]
    with pytest.raises(KvplanError, match="expected one of vllm, vllm\\+lmcache"):
        engine("trtllm")


def test_vllm_dram_only_lru_uses_kv_offloading_size_in_gib():
    s = by_engine(choice(dram_bytes=100 * GIB))["vllm"].settings
    assert s["--block-size"] == "64"  # largest CUDA block size dividing 512
    assert s["--kv-cache-memory-bytes"] == str(40 * GIB)
    assert s["--kv-offloading-backend"] == "native" and s["--kv-offloading-size"] == "100"
    assert "--kv-transfer-config" not in s and "--disable-hybrid-kv-cache-manager" not in s


def test_vllm_ssd_tier_is_a_tiering_spec_with_an_fs_tier_in_bytes():
    e = by_engine(choice(dram_bytes=100 * GIB, ssd_bytes=400 * GIB, eviction="arc"))["vllm"]
    cfg = json.loads(e.settings["--kv-transfer-config"])
    assert cfg["kv_connector"] == "OffloadingConnector" and cfg["kv_role"] == "kv_both"
    assert cfg["kv_connector_extra_config"] == {
        "cpu_bytes_to_use": 100 * GIB, "eviction_policy": "arc",
        "spec_name": "TieringOffloadingSpec",
        "secondary_tiers": [{"type": "fs", "root_dir": "/mnt/kvcache"}]}
    failed = {c.rule for c in e.checks if not c.ok}
    assert failed == {"every tier evicts arc"}  # the GPU prefix cache is LRU only
    assert any("no size cap" in n for n in e.notes)


def test_vllm_selective_write_is_a_store_threshold_without_ssd():
    e = by_engine(choice(dram_bytes=64 * GIB, write="write-through-selective"))["vllm"]
    extra = json.loads(e.settings["--kv-transfer-config"])["kv_connector_extra_config"]
    assert extra == {"cpu_bytes_to_use": 64 * GIB, "eviction_policy": "lru", "store_threshold": 2}
    assert e.ok
    with_ssd = by_engine(choice(dram_bytes=64 * GIB, ssd_bytes=GIB,
                                write="write-through-selective"))["vllm"]
    assert not with_ssd.ok


def test_write_back_and_exclusive_tiers_run_nowhere_but_sglang_write_back():
    e = by_engine(choice(dram_bytes=100 * GIB, write="write-back", inclusive=False))
    assert not any(s.ok for s in e.values())
    rules = {c.rule: c.ok for c in e["sglang-hicache"].checks}
    assert rules["write policy write-back"] and not rules["inclusive tiers"]
    assert e["sglang-hicache"].settings["--hicache-write-policy"] == "write_back"


def test_lmcache_yaml_is_dumped_in_gib_per_gpu():
    e = by_engine(choice(dram_bytes=100 * GIB, ssd_bytes=400 * GIB, eviction="fifo"))
    lm = e["vllm+lmcache"]
    (failed,) = [c for c in lm.checks if not c.ok]  # vLLM's GPU prefix cache is LRU only
    assert failed.rule == "every tier evicts fifo" and failed.detail.startswith("not available on hbm")
    (f,) = lm.files
    assert f.name == "lmcache.yaml" and f.env == "LMCACHE_CONFIG_FILE"
    assert yaml.safe_load(f.text) == {
        "chunk_size": 256, "local_cpu": True, "max_local_cpu_size": 100,
        "local_disk": "file:///mnt/kvcache", "max_local_disk_size": 400,
        "cache_policy": "FIFO", "save_decode_cache": False, "enable_async_loading": False}
    assert json.loads(lm.settings["--kv-transfer-config"]) == {
        "kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}
    assert lm.command().startswith("LMCACHE_CONFIG_FILE=lmcache.yaml vllm serve ")


def test_lmcache_ssd_only_keeps_a_cpu_staging_buffer():
    (f,) = by_engine(choice(ssd_bytes=GIB))["vllm+lmcache"].files
    cfg = yaml.safe_load(f.text)
    assert cfg["local_cpu"] is False and cfg["max_local_cpu_size"] == 5


def test_small_trace_blocks_pick_matching_engine_blocks_or_say_so():
    e = by_engine(choice(block_size=48, dram_bytes=GIB))
    assert e["vllm"].settings["--block-size"] == "16" and e["vllm"].ok
    (f,) = e["vllm+lmcache"].files
    assert yaml.safe_load(f.text)["chunk_size"] == 16
    assert e["sglang-hicache"].settings["--page-size"] == "16"
    odd = by_engine(choice(block_size=8, dram_bytes=GIB))
    assert not odd["vllm"].ok and odd["sglang-hicache"].settings["--page-size"] == "8"


def test_sglang_sizes_in_decimal_gb_and_tokens():
    e = by_engine(choice(dram_bytes=100 * GIB, ssd_bytes=400 * GIB, prefetch="lookahead"))
    sg = e["sglang-hicache"]
    s = sg.settings
    assert s["--max-total-tokens"] == str(40 * GIB // LLAMA_8B) == "327680"
    assert s["--page-size"] == "64" and s["--radix-eviction-policy"] == "lru"
    assert s["--hicache-size"] == "108"  # 107.37 GB rounded up
    assert s["SGLANG_HICACHE_FILE_BACKEND_MAX_SIZE"] == "430G"  # 429.5 GB rounded up
    assert s["SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR"] == "/mnt/kvcache"
    assert s["--hicache-storage-prefetch-policy"] == "wait_complete"
    assert s["--chunked-prefill-size"] == "8192" and s["--max-running-requests"] == "256"
    assert sg.ok


def test_sglang_ssd_without_dram_uses_a_buffer_only_host_pool():
    s = by_engine(choice(ssd_bytes=10 * GB))["sglang-hicache"].settings
    assert s["--hicache-host-memory-mode"] == "buffer_only" and "--hicache-size" not in s


def test_kvbm_env_in_gb_and_the_disk_filter_follows_the_write_policy():
    k = by_engine(choice(dram_bytes=100 * GIB, ssd_bytes=400 * GIB))["dynamo-kvbm"]
    assert dict(k.env) == {"DYN_KVBM_CPU_CACHE_GB": "108", "DYN_KVBM_DISK_CACHE_GB": "430",
                           "DYN_KVBM_DISK_CACHE_DIR": "/mnt/kvcache",
                           "DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER": "true"}
    assert k.argv[:5] == ("python", "-m", "dynamo.vllm", "--model", "meta-llama/Llama-3.1-8B")
    assert "--connector" not in k.argv
    assert json.loads(k.settings["--kv-transfer-config"])["kv_connector"] == "DynamoConnector"
    assert k.ok
    dram_only = by_engine(choice(dram_bytes=8 * GB))["dynamo-kvbm"]
    assert dict(dram_only.env) == {"DYN_KVBM_CPU_CACHE_GB": "8"}


def test_tensor_parallel_divides_per_gpu_knobs_only():
    e = by_engine(choice(dram_bytes=100 * GIB, ssd_bytes=10 * GIB, tp=2))
    assert e["vllm"].settings["--kv-cache-memory-bytes"] == str(20 * GIB)
    assert e["vllm"].settings["--tensor-parallel-size"] == "2"
    assert e["sglang-hicache"].settings["--hicache-size"] == "54"  # 50 GiB per rank
    assert e["sglang-hicache"].settings["--max-total-tokens"] == "327680"
    assert yaml.safe_load(e["vllm+lmcache"].files[0].text)["max_local_cpu_size"] == 50
    assert dict(e["dynamo-kvbm"].env)["DYN_KVBM_CPU_CACHE_GB"] == "108"  # whole replica


def test_hbm_only_plans_run_without_any_offload_settings():
    e = by_engine(choice())
    assert all(s.ok for s in e.values())
    assert "--kv-transfer-config" not in e["vllm+lmcache"].settings and not e["vllm+lmcache"].files
    assert "--enable-hierarchical-cache" not in e["sglang-hicache"].settings
    assert e["dynamo-kvbm"].env == ()


HOSTILE_MODEL = "org/m'x; touch /tmp/kvplan-pwned #"
HOSTILE_DIR = "/mnt/k v$(touch /tmp/kvplan-pwned)'\"`x`"


def test_every_input_value_is_quoted_in_commands_scripts_and_env_files(tmp_path):
    t = choice(model=HOSTILE_MODEL, disk_dir=HOSTILE_DIR, dram_bytes=GIB, ssd_bytes=GIB)
    for s in engine_settings(t):
        words = shlex.split(s.command())
        env = [w for w in words if "=" in w and not w.startswith("-")][:len(s.env) + len(
            [f for f in s.files if f.env])]
        assert tuple(words[len(env):]) == s.argv
        assert dict(w.split("=", 1) for w in env) == {f.env: f.name for f in s.files
                                                       if f.env} | dict(s.env)
    paths = write_engine_files(engine_settings(t), tmp_path)
    for script in (p for p in paths if p.name == "launch.sh"):
        assert os.access(script, os.X_OK)
        subprocess.run(["bash", "-n", str(script)], check=True)
    env_file = tmp_path / "sglang-hicache" / "engine.env"
    out = subprocess.run(["bash", "-c", f'set -a; . {shlex.quote(str(env_file))}; '
                          'printf %s "$SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR"'],
                         capture_output=True, text=True, check=True).stdout
    assert out == HOSTILE_DIR
    assert yaml.safe_load((tmp_path / "vllm+lmcache" / "lmcache.yaml").read_text())[
        "local_disk"] == "file://" + HOSTILE_DIR
    assert not os.path.exists("/tmp/kvplan-pwned")


def test_launch_script_runs_the_exact_argv(tmp_path):
    """The script, run with a stub ``vllm`` on PATH, passes every argument through intact."""
    t = choice(model=HOSTILE_MODEL, dram_bytes=GIB)
    (vllm,) = [s for s in engine_settings(t) if s.engine == "vllm+lmcache"]
    folder = tmp_path / "engines"
    write_engine_files([vllm], folder)
    stub = tmp_path / "bin" / "vllm"
    stub.parent.mkdir()
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$LMCACHE_CONFIG_FILE" "$@"\n')
    stub.chmod(0o755)
    run = subprocess.run([str(folder / "vllm+lmcache" / "launch.sh")], capture_output=True,
                         text=True, check=True,
                         env={"PATH": f"{stub.parent}:{os.environ['PATH']}"})
    lines = run.stdout.splitlines()
    assert lines[0] == str(folder / "vllm+lmcache" / "lmcache.yaml")
    assert tuple(lines[1:]) == vllm.argv[1:]


@pytest.mark.parametrize("bad", ["relative/dir", "/a,b", "/a\nb", ""])
def test_disk_dir_must_be_an_absolute_path_without_commas(bad):
    with pytest.raises(KvplanError, match="--disk-dir"):
        choice(disk_dir=bad)
    with pytest.raises(InputError, match="disk_dir"):
        spec_from_dict({"disk_dir": bad})


def test_model_id_comes_from_the_preset_source():
    src = "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json"
    assert model_id("llama-3.1-8b", src) == "meta-llama/Llama-3.1-8B"
    assert model_id("/models/x/config.json", "/models/x/config.json") == "/models/x"


def test_replay_writes_engine_settings_for_one_configuration(tmp_path):
    from event_helpers import make_workload
    from typer.testing import CliRunner

    from kvplan.cli.main import app
    from kvplan.workload import write_workload

    trace = tmp_path / "t.parquet"
    write_workload(make_workload([(0.0, 1024, 4, [1, 2]), (0.5, 1024, 4, [1, 3])]), trace)
    r = CliRunner().invoke(app, ["replay", "-t", str(trace), "--dram-gib", "8", "-o",
                                 str(tmp_path / "one")], env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load((tmp_path / "one/engines/vllm+lmcache/lmcache.yaml").read_text())
    assert cfg["max_local_cpu_size"] == 8 and cfg["chunk_size"] == 256
    env = (tmp_path / "one/engines/dynamo-kvbm/engine.env").read_text()
    assert "DYN_KVBM_CPU_CACHE_GB=9\n" in env  # 8 GiB = 8.6 GB, rounded up
    r = CliRunner().invoke(app, ["replay", "-t", str(trace), "--compare", "dram-gib=0,8", "-o",
                                 str(tmp_path / "two")], env={"COLUMNS": "100"})
    assert r.exit_code == 0 and not (tmp_path / "two/engines").exists()
