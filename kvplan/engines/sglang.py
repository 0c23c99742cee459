"""SGLang 0.5.23 HiCache: device radix cache, host pool, file storage backend.

Facts (file:line under ``sglang/srt/`` in the sglang 0.5.23 wheel; docs/engines.md):

- the device pool is capped by ``--max-total-tokens`` (tokens; an upper bound on the profiled
  pool, ``mem_cache/kv_cache_configurator.py:3096-3105``); ``--page-size`` tokens per page
  (``arg_groups/fields/schedule.py:143``);
- ``--enable-hierarchical-cache`` adds the host pool, sized by ``--hicache-size`` in GB per
  rank (``int(host_size * 1e9 // size_per_token)``, ``mem_cache/pool_host/base.py:220-223``;
  ``arg_groups/fields/memory.py:113``) or ``--hicache-ratio`` (default 2.0); a pool not larger
  than the device pool is only warned about (``pool_host/base.py:236-245``);
  ``--hicache-host-memory-mode buffer_only`` makes it a staging buffer for the storage
  backend (``memory.py:102-108``);
- ``--radix-eviction-policy`` lru, lfu, slru, priority, tlru (``arg_groups/choices.py:190``);
- ``--hicache-write-policy`` write_through (copy to host on the first hit), write_through_
  selective (on the second, ``mem_cache/unified_radix_cache.py:558-560``), write_back
  (``memory.py:121-127``);
- ``--hicache-storage-backend file`` keeps pages under ``SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR``
  (default /tmp/hicache, ``mem_cache/hicache_storage.py:729-735``), unbounded unless
  ``SGLANG_HICACHE_FILE_BACKEND_MAX_SIZE`` is set (SI or IEC suffixes, "200G" = 200 * 10**9 B;
  ``environ.py:829-832``, ``mem_cache/storage/file/lru_file_evictor.py:37-50, 120-135``,
  ``utils/common.py:3394-3420``), then LRU per rank;
- ``--hicache-storage-prefetch-policy`` (``memory.py:170-176``, default timeout) decides
  when an admission poll stops waiting for a request's storage prefetch
  (``mem_cache/unified_radix_cache.py:2295-2313``): best_effort at once, wait_complete never
  before it completes, timeout once ``prefetch_timeout_base`` (1 s) + ``prefetch_timeout_per_
  ki_token`` (0.25 s) per 1,024 requested tokens have passed since the first blocked poll
  (``unified_radix_cache.py:2259-2271``; ``hybrid_cache/hybrid_cache_controller.py:405-408``;
  ``unified_cache/storage_attachment.py:290-293``). Stopping marks the operation terminated,
  so the I/O thread reads no further page (``managers/cache_controller.py:1094-1104, 1146``:
  the unlanded reads are cancelled, not left to land), and only the pages that landed
  (``host_indices[:completed_tokens]``) go into the radix tree; the rest is recomputed
  (``unified_radix_cache.py:2391-2420, 2452-2477``). kvplan: ``replay --storage-prefetch``
  (kvplan.sim.storageprefetch; default wait_complete, as kvplan ran before). A storage hit
  under 256 tokens is not prefetched
  (``mem_cache/hybrid_cache/hybrid_cache_controller.py:1355-1359``; not modelled);
- admission: a waiting request is added to a prefill batch only if its uncached prompt plus
  its remaining output (clipped at 4,096 tokens) fits in the free + evictable pool
  (``managers/schedule_policy.py:1407-1412``, ``CLIP_MAX_NEW_TOKENS`` at ``:89-91``); kvplan
  runs the whole-sequence rule (kvplan.sim.schedrules), without the output reserve.
"""

from __future__ import annotations

import math

from kvplan.engines.base import (
    Capabilities,
    Check,
    EngineSettings,
    Knob,
    Mode,
    TierCaps,
    TierChoice,
    ceil_gb,
    largest_dividing,
    policy_checks,
)
from kvplan.sim.schedrules import SchedulerRules
from kvplan.sim.storageprefetch import BEST_EFFORT, WAIT_COMPLETE, StorageWait

VERSION = "0.5.23"
PAGE_SIZES = (64, 32, 16, 8, 4, 2, 1)
POLICIES = (("lru", "lru"), ("lfu", "lfu"))
EVICTION = Knob("--radix-eviction-policy", "name", "lru", "sglang/srt/arg_groups/fields/memory.py:25")
HOST = Knob("--hicache-size", "GB", "0 (use --hicache-ratio 2.0)",
            "sglang/srt/arg_groups/fields/memory.py:113", "per GPU")
DISK = Knob("SGLANG_HICACHE_FILE_BACKEND_MAX_SIZE", "GB", "unset (unbounded)",
            "sglang/srt/environ.py:830", "per GPU")
DISK_DIR = Knob("SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR", "path", "/tmp/hicache",
                "sglang/srt/mem_cache/hicache_storage.py:729-735")
PREFETCH_SOURCE = "sglang/srt/mem_cache/unified_radix_cache.py:2296-2312"
TIMEOUT = StorageWait(1.0, 0.25)
"""``prefetch_timeout_base`` 1 s + ``prefetch_timeout_per_ki_token`` 0.25 s
(``sglang/srt/mem_cache/hybrid_cache/hybrid_cache_controller.py:405-408``)."""

CAPS = Capabilities(
    engine="sglang-hicache", label=f"SGLang {VERSION} HiCache",
    versions=(("sglang", VERSION),),
    tiers=(TierCaps("hbm", Knob("--max-total-tokens", "tokens", "unset (profiled)",
                                "sglang/srt/arg_groups/fields/schedule.py:39"), POLICIES, EVICTION),
           TierCaps("dram", HOST, POLICIES, EVICTION),
           TierCaps("ssd", DISK, (("lru", ""),), directory=DISK_DIR)),
    device_pool=Knob("--max-total-tokens", "tokens", "unset (profiled)",
                     "sglang/srt/arg_groups/fields/schedule.py:39"),
    block=Knob("--page-size", "tokens", "1 (backend-dependent)",
               "sglang/srt/arg_groups/fields/schedule.py:143"),
    block_sizes=PAGE_SIZES,
    writes=(Mode("write-through", "write_through", "a page is copied to host on its first hit",
                 "sglang/srt/mem_cache/unified_radix_cache.py:558-560"),
            Mode("write-through-selective", "write_through_selective",
                 "a page is copied to host on its second hit",
                 "sglang/srt/mem_cache/unified_radix_cache.py:558-560"),
            Mode("write-back", "write_back", "a page is copied to host when the device evicts it",
                 "sglang/srt/arg_groups/fields/memory.py:121-127")),
    prefetches=(Mode("none", "wait_complete",
                     "storage hits are prefetched from arrival and the request waits for all",
                     PREFETCH_SOURCE),
                Mode("lookahead", "wait_complete",
                     "storage hits are prefetched from arrival and the request waits for all",
                     PREFETCH_SOURCE),
                Mode("", "best_effort", "schedule at once; a prefetch not finished is abandoned "
                     "and its tokens recomputed (kvplan: --storage-prefetch)", PREFETCH_SOURCE),
                Mode("", "timeout", "wait up to 1 s + 0.25 s per 1,024 tokens, then abandon "
                     "(kvplan: --storage-prefetch)", PREFETCH_SOURCE)),
    inclusive=True, scheduler=SchedulerRules(full_admission=True),
    storage_waits=(("wait_complete", WAIT_COMPLETE), ("best_effort", BEST_EFFORT),
                   ("timeout", TIMEOUT)),
    layerwise=Mode("layerwise", "", "host hits load back to the device layer by layer; "
                   "attention of layer i waits only for layer i (always on)",
                   "sglang/srt/managers/cache_controller.py:358-360, 1028-1050; "
                   "sglang/srt/mem_cache/memory_pool.py:2852-2858"))


def settings(choice: TierChoice) -> EngineSettings:
    """``python -m sglang.launch_server`` with HiCache.

    Example: trace block 512, HBM 40 GiB at 131,072 B/token, DRAM 100 GiB, SSD 400 GiB ->
    ``--page-size 64 --max-total-tokens 327680 --enable-hierarchical-cache --hicache-size 108
    --hicache-storage-backend file --hicache-storage-prefetch-policy wait_complete`` with
    ``SGLANG_HICACHE_FILE_BACKEND_MAX_SIZE=430G`` and the storage directory in the environment.
    """
    page = largest_dividing(PAGE_SIZES, choice.block_size) or 1
    tokens = max_total_tokens(choice)
    args: tuple[str, ...] = (
        "python", "-m", "sglang.launch_server", "--model-path", choice.model,
        "--page-size", str(page), "--max-total-tokens", str(tokens),
        "--chunked-prefill-size", str(choice.max_batched_tokens),
        "--max-running-requests", str(choice.max_seqs),
        "--radix-eviction-policy", dict(POLICIES).get(choice.eviction_of("hbm"), "lru"))
    if choice.tp > 1:
        args += ("--tp-size", str(choice.tp))
    env: tuple[tuple[str, str], ...] = ()
    if choice.dram_bytes or choice.ssd_bytes:
        args += _hicache_args(choice)
    if choice.ssd_bytes:
        cap = ceil_gb(-(-choice.ssd_bytes // choice.tp))
        env = (("SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR", choice.disk_dir),
               ("SGLANG_HICACHE_FILE_BACKEND_MAX_SIZE", f"{cap}G"))
    notes = []
    if choice.dram_bytes and choice.dram_bytes <= choice.hbm_kv_bytes:
        notes.append("the host pool is not larger than the device pool: SGLang starts but warns "
                     "that the host tier holds little beyond the device (pool_host/base.py:236)")
    if choice.ssd_bytes:
        notes.append("SGLang prefetches storage hits from the moment a request arrives; kvplan's "
                     f"'{choice.prefetch}' loads them at admission (approximation)")
    selective = Check("selective write copies on the 2nd hit",
                      choice.write != "write-through-selective" or choice.store_threshold == 2,
                      f"store threshold {choice.store_threshold}; SGLang's is fixed at 2")
    return EngineSettings("sglang-hicache", CAPS.label, env, args,
                          checks=policy_checks(CAPS, choice) + (selective,), notes=tuple(notes))


def _hicache_args(choice: TierChoice) -> tuple[str, ...]:
    write = CAPS.write_mode(choice.write)
    args: tuple[str, ...] = ("--enable-hierarchical-cache",)
    if choice.dram_bytes:
        args += ("--hicache-size", str(ceil_gb(-(-choice.dram_bytes // choice.tp))))
    else:
        args += ("--hicache-host-memory-mode", "buffer_only")
    args += ("--hicache-write-policy", write.engine_value if write else "write_through")
    if choice.ssd_bytes:
        args += ("--hicache-storage-backend", "file", "--hicache-storage-prefetch-policy",
                 choice.storage_prefetch)
    return args


def max_total_tokens(choice: TierChoice) -> int:
    """Device pool in tokens. Example: 40 GiB at 131,072 B/token -> 327,680."""
    return math.floor(choice.hbm_kv_bytes / choice.kv_bytes_per_token)
