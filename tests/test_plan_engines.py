"""Engine settings: flag values and each engine's sizing rules, checked by hand."""

from __future__ import annotations

from kvplan.plan.engines import GB, GIB, TierChoice, engine_settings


def by_engine(t: TierChoice) -> dict:
    return {e.engine: e for e in engine_settings(t)}


def test_three_tier_choice_meets_every_rule_except_vllm_native_ssd():
    t = TierChoice(block_size=512, hbm_kv_bytes=40 * GB, dram_bytes=100 * GIB,
                   ssd_bytes=400 * GIB, write="write-back", prefetch="lookahead")
    e = by_engine(t)
    assert e["vllm"].settings["--block-size"] == "32"
    assert e["vllm"].settings["--kv-offloading-size"] == "100"
    assert not e["vllm"].ok  # native offloading cannot hold an SSD tier
    assert e["lmcache"].settings == {"chunk_size": "256", "local_cpu": "true",
                                     "max_local_cpu_size": "100",
                                     "local_disk": "file:///mnt/kvcache/",
                                     "max_local_disk_size": "400"}
    assert e["lmcache"].ok
    s = e["sglang-hicache"].settings
    assert s["--hicache-size"] == "108"  # 100 GiB = 107.4 GB, rounded up
    assert s["--hicache-write-policy"] == "write_back"
    assert s["--hicache-storage-prefetch-policy"] == "timeout"
    assert e["sglang-hicache"].ok
    k = e["dynamo-kvbm"].settings
    assert k == {"DYN_KVBM_CPU_CACHE_GB": "108", "DYN_KVBM_DISK_CACHE_GB": "430"}
    assert e["dynamo-kvbm"].ok


def test_rules_flag_small_host_tiers():
    t = TierChoice(block_size=16, hbm_kv_bytes=60 * GIB, dram_bytes=32 * GIB, ssd_bytes=16 * GIB)
    e = by_engine(t)
    assert e["vllm"].settings["--block-size"] == "16"
    assert not e["sglang-hicache"].ok  # host pool 32 GiB < device pool 60 GiB
    kvbm = {c.rule: c.ok for c in e["dynamo-kvbm"].checks}
    assert kvbm == {"CPU cache >= GPU KV cache (else KVBM churns every forward pass)": False,
                    "disk cache >= CPU cache": False}
    assert e["lmcache"].settings["chunk_size"] == "16"


def test_ssd_only_gets_a_cpu_staging_buffer_in_lmcache():
    e = by_engine(TierChoice(block_size=256, hbm_kv_bytes=GIB, dram_bytes=0, ssd_bytes=GIB))
    assert e["lmcache"].settings["max_local_cpu_size"] == "1"
    assert e["lmcache"].ok
