"""Every emitted SGLang line parses in SGLang's own ServerArgs parser, and every emitted LMCache
YAML loads with LMCache's own config loader (docs/engines.md, "Checked by the engines").

Needs the ``engines-check`` extra plus the two engines without their dependencies::

    pip install -e ".[engines-check]"
    pip install --no-deps sglang==0.5.23 lmcache==0.5.6

and skips cleanly without them. sglang/srt/utils/common.py:91 imports ``triton`` (a 1 GB GPU
compiler) at import time although argument parsing never calls it, so a bare module stands in
for it when it is not installed. vLLM's lines are checked by bench/engines_check.py.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
import types

import pytest

from kvplan.engines import TierChoice, engine
from kvplan.engines.base import GB, GIB

if importlib.util.find_spec("sglang") is None or importlib.util.find_spec("lmcache") is None:
    pytest.skip("sglang and lmcache are not installed (see the module docstring)",
                allow_module_level=True)


def _stand_in_for_triton() -> None:
    """A bare ``triton`` module for sglang's import; torch is asked first (it caches the
    answer), so it still sees no Triton and never touches the stand-in."""
    if importlib.util.find_spec("triton") is not None:
        return
    from torch.utils._triton import has_triton_package

    has_triton_package()
    sys.modules.setdefault("triton", types.ModuleType("triton"))


_stand_in_for_triton()

CHOICES = {
    "hbm only": {},
    "dram": {"dram_bytes": 100 * GIB},
    "dram+ssd": {"dram_bytes": 100 * GIB, "ssd_bytes": 400 * GIB, "eviction": "lfu"},
    "ssd only": {"ssd_bytes": 50 * GB},
    "write-back": {"dram_bytes": 64 * GIB, "write": "write-back", "tp": 2},
    "selective": {"dram_bytes": 64 * GIB, "ssd_bytes": GIB, "write": "write-through-selective"},
    "odd dir": {"dram_bytes": GIB, "ssd_bytes": GIB, "disk_dir": "/mnt/k v's $HOME"},
    "small block": {"block_size": 16, "dram_bytes": 8 * GIB, "eviction": "fifo"},
    "per-tier evictions": {"dram_bytes": 64 * GIB, "ssd_bytes": 200 * GIB,
                           "evictions": ("lru", "lfu", "lfu")},
    # the default `kvplan plan`'s recommendation for every engine (README): 1 replica, tp 2
    "default plan": {"hbm_kv_bytes": 31 * GIB, "dram_bytes": 78 * GIB, "ssd_bytes": 1300 * GIB,
                     "tp": 2},
    # --storage-prefetch (SGLang's other storage prefetch policies)
    "best_effort": {"dram_bytes": 78 * GIB, "ssd_bytes": 500 * GIB,
                    "storage_prefetch": "best_effort"},
    "timeout": {"dram_bytes": 78 * GIB, "ssd_bytes": 500 * GIB, "storage_prefetch": "timeout"},
}


def choice(name: str) -> TierChoice:
    base = {"model": "meta-llama/Llama-3.1-8B", "block_size": 512,
            "kv_bytes_per_token": 131_072, "hbm_kv_bytes": 40 * GIB}
    return TierChoice(**(base | CHOICES[name]))


@pytest.mark.parametrize("name", CHOICES)
def test_sglang_line_parses_in_server_args(name, monkeypatch):
    from sglang.srt.environ import envs
    from sglang.srt.mem_cache.storage.file.lru_file_evictor import _parse_size_to_bytes
    from sglang.srt.server_args import prepare_server_args

    t = choice(name)
    s = engine("sglang-hicache").settings(t)
    words = shlex.split(s.command())
    env = dict(w.split("=", 1) for w in words[:len(s.env)])
    argv = words[len(s.env):]
    assert argv[:3] == ["python", "-m", "sglang.launch_server"]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = prepare_server_args(argv[3:])
    assert args.model_path == t.model
    assert args.page_size == int(s.settings["--page-size"])
    assert args.max_total_tokens * t.kv_bytes_per_token <= t.hbm_kv_bytes
    assert args.radix_eviction_policy == s.settings["--radix-eviction-policy"]
    assert args.enable_hierarchical_cache == bool(t.dram_bytes or t.ssd_bytes)
    if t.dram_bytes:
        assert args.hicache_size * 1e9 >= t.dram_bytes / t.tp
        assert args.hicache_write_policy == s.settings["--hicache-write-policy"]
    if t.ssd_bytes:
        assert args.hicache_storage_backend == "file"
        assert args.hicache_storage_prefetch_policy == t.storage_prefetch
        assert envs.SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR.get() == t.disk_dir
        cap = _parse_size_to_bytes(envs.SGLANG_HICACHE_FILE_BACKEND_MAX_SIZE.get())
        assert t.ssd_bytes / t.tp <= cap < t.ssd_bytes / t.tp + GB


@pytest.mark.parametrize("name", [n for n, kw in CHOICES.items() if kw])
def test_lmcache_yaml_loads_with_lmcache_loader(name, tmp_path, monkeypatch):
    from lmcache.v1.config import _CONFIG_DEFINITIONS, load_engine_config_with_overrides
    from lmcache.v1.storage_backend.cache_policy import get_cache_policy

    t = choice(name)
    s = engine("vllm+lmcache").settings(t)
    (f,) = s.files
    path = tmp_path / f.name
    path.write_text(f.text)
    monkeypatch.setenv(f.env, str(path))
    cfg = load_engine_config_with_overrides()  # what LMCacheConnectorV1 does
    written = {line.split(":", 1)[0] for line in f.text.splitlines() if not line.startswith("#")}
    assert written <= set(_CONFIG_DEFINITIONS)
    assert cfg.chunk_size == 256 if t.block_size % 256 == 0 else cfg.chunk_size == t.block_size
    assert cfg.local_cpu == bool(t.dram_bytes)
    assert cfg.max_local_cpu_size * GIB >= t.dram_bytes / t.tp
    if t.ssd_bytes:
        assert cfg.local_disk.rstrip("/") == t.disk_dir
        assert cfg.max_local_disk_size * GIB >= t.ssd_bytes / t.tp
    else:
        assert cfg.local_disk is None
    get_cache_policy(cfg.cache_policy)
    assert cfg.cache_policy == {"lru": "LRU", "lfu": "LFU", "fifo": "FIFO"}[t.eviction_of("dram")]
