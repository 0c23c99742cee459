"""Replay settings of a real run: each from a flag, else the run's log, else a named default.

Precedence: CLI flag > what the run recorded > the engine's default (vLLM 0.19.0, cited) >
kvplan's default. Every resolved value keeps where it came from, and the report prints it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kvplan.cost.layout import Layout
from kvplan.cost.model import GIB
from kvplan.errors import InputError, KvplanError
from kvplan.hardware.profile import HardwareProfile, list_profiles, load_profile
from kvplan.model.kv import kv_bytes_per_token
from kvplan.model.spec import ModelSpec, list_models, load_model, preset_for
from kvplan.sim.config import ReplayConfig
from kvplan.validate.kvpool import PoolTerm, derive_vllm_pool
from kvplan.validate.run import EngineRun

DP_ROUTING = ("; replayed as dp replicas, requests routed by kvplan's prefix-affinity rule "
              "(kvplan.plan.routing), while vLLM 0.19.0 sends each to the engine with the "
              "lowest 4 x waiting + running (vllm/v1/engine/core_client.py:1337-1359)")
"""How a run of several data-parallel engines is replayed, said next to its dp setting."""
MIN_REPLAY_BLOCK = 16
"""Finer engine pages (SGLang's page_size 1) are replayed at this block size: prefix matches
at 16-token granularity, a pool of whole 16-token blocks."""


@dataclass(frozen=True)
class Overrides:
    """Flags of ``kvplan validate`` that replace what the run recorded (None = keep)."""

    model: str | None = None
    profile: str | None = None
    tp: int | None = None
    dp: int | None = None
    ep: int | None = None
    max_seqs: int | None = None
    max_batched_tokens: int | None = None
    block_size: int | None = None
    kv_pool_tokens: int | None = None


@dataclass(frozen=True)
class ReplaySettings:
    """Everything the replay of a run is configured with, and where each value came from."""

    model: str
    """kvplan model preset or config.json path."""
    profile: str
    """Hardware profile name or TOML path."""
    tp: int
    dp: int
    ep: int
    max_seqs: int
    max_batched_tokens: int
    block_size: int
    kv_dtype: str
    prefix_caching: bool
    kv_pool_tokens: int
    """KV capacity of the replica in tokens (whole blocks)."""
    kv_bytes_per_token: int
    pool_terms: tuple[PoolTerm, ...] = ()
    """The derivation of ``kv_pool_tokens`` when the run did not record it."""
    sources: dict[str, str] = field(default_factory=dict)
    """Field -> where its value came from (a flag, the log's field, a cited default)."""

    @property
    def kv_blocks(self) -> int:
        return self.kv_pool_tokens // self.block_size

    @property
    def kv_gib(self) -> float:
        return self.kv_pool_tokens * self.kv_bytes_per_token / GIB

    def replay_config(self, profile: str | None = None) -> ReplayConfig:
        """The ReplayConfig of these settings (``profile`` replaces the profile, for the fit).

        The HBM KV size is given half a block above the pool so that flooring it to whole
        blocks gives exactly ``kv_blocks``: 2,588 blocks of 2 MiB -> (2,588.5 x 2 MiB) GiB.
        """
        block_bytes = self.block_size * self.kv_bytes_per_token
        return ReplayConfig(
            model=self.model, profile=profile or self.profile, kv_dtype=self.kv_dtype,
            hbm_kv_gib=(self.kv_blocks + 0.5) * block_bytes / GIB,
            max_batched_tokens=self.max_batched_tokens, max_seqs=self.max_seqs,
            layout=Layout(tp=self.tp, dp=self.dp, ep=self.ep))

    def as_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["kv_blocks"], out["kv_gib"] = self.kv_blocks, self.kv_gib
        return out


def resolve(run: EngineRun, flags: Overrides) -> ReplaySettings:
    """The replay settings of ``run`` under ``flags`` (KvplanError naming what is missing)."""
    rec, src = run.settings, dict(run.settings.sources)
    sources: dict[str, str] = {}

    def pick(name: str, flag: object, recorded: object, default: object, default_src: str):
        if flag is not None:
            sources[name] = "--" + name.replace("_", "-")
            return flag
        if recorded is not None:
            sources[name] = src.get(_RECORDED[name], "the run")
            return recorded
        sources[name] = default_src
        return default

    model_name = _model(run, flags, sources)
    spec = load_model(model_name)
    profile_name = _profile(run, flags, sources)
    profile = load_profile(profile_name)
    tp = pick("tp", flags.tp, rec.tensor_parallel_size, 1, "default (1)")
    dp = pick("dp", flags.dp, rec.data_parallel_size, 1, "default (1)")
    ep = pick("ep", flags.ep, rec.expert_parallel_size, 1, "default (1)")
    if ep > 1 and not spec.is_moe and flags.ep is None:
        sources["ep"] += f" ({ep}): {spec.name} has no experts, replayed at 1"
        ep = 1
    if dp > 1:
        sources["dp"] += DP_ROUTING
    seqs_default, tokens_default, default_src = vllm_batch_defaults(profile)
    max_seqs = pick("max_seqs", flags.max_seqs, rec.max_num_seqs, seqs_default, default_src)
    budget = pick("max_batched_tokens", flags.max_batched_tokens, rec.max_num_batched_tokens,
                  tokens_default, default_src)
    block = pick("block_size", flags.block_size, rec.block_size, 16,
                 "vLLM default (16 on CUDA)")
    if flags.block_size is None and block < MIN_REPLAY_BLOCK:
        sources["block_size"] += f" ({block}), replayed at {MIN_REPLAY_BLOCK}"
        block = MIN_REPLAY_BLOCK
    kv_dtype = _kv_dtype(run, rec.kv_cache_dtype)
    sources["kv_dtype"] = src.get("kv_cache_dtype", "default (the model's dtype)")
    caching = rec.enable_prefix_caching is not False
    sources["prefix_caching"] = src.get("enable_prefix_caching", "vLLM default (on)")
    per_token = kv_bytes_per_token(spec, kv_dtype)
    layout = Layout(tp=tp, dp=dp, ep=ep)
    tokens, terms = _pool(run, flags, spec, profile, per_token, block, layout, budget, max_seqs,
                          sources)
    return ReplaySettings(model=model_name, profile=profile_name, tp=tp, dp=dp, ep=ep,
                          max_seqs=max_seqs, max_batched_tokens=budget, block_size=block,
                          kv_dtype=kv_dtype, prefix_caching=caching, kv_pool_tokens=tokens,
                          kv_bytes_per_token=per_token, pool_terms=terms, sources=sources)


_RECORDED = {"tp": "tensor_parallel_size", "dp": "data_parallel_size",
             "ep": "expert_parallel_size", "max_seqs": "max_num_seqs",
             "max_batched_tokens": "max_num_batched_tokens", "block_size": "block_size"}


def vllm_batch_defaults(profile: HardwareProfile) -> tuple[int, int, str]:
    """vLLM's ``vllm serve`` defaults for max_num_seqs and max_num_batched_tokens on the
    profile's GPU (vLLM 0.19.0 ``vllm/engine/arg_utils.py:2053-2072``): >= 70 GiB and not an
    A100: 1,024 / 8,192; else 256 / 2,048."""
    big = profile.gpu.hbm_gib >= 70 and "a100" not in profile.gpu.model.lower()
    seqs, tokens = (1024, 8192) if big else (256, 2048)
    return seqs, tokens, f"vLLM serve default on {profile.gpu.model} ({seqs} / {tokens})"


def _model(run: EngineRun, flags: Overrides, sources: dict[str, str]) -> str:
    if flags.model is not None:
        sources["model"] = "--model"
        return flags.model
    name = run.settings.model
    where = run.settings.sources.get("model", "model")
    if name is None:
        raise KvplanError(f"--model is required: {run.path} does not name its model")
    preset = preset_for(name)
    if preset is not None:
        sources["model"] = f"{where} ({name})"
        return preset
    raise InputError(run.path, f"model '{name}' has no bundled preset (presets: "
                     f"{', '.join(list_models())}); pass --model NAME or a config.json path",
                     field=where)


def _profile(run: EngineRun, flags: Overrides, sources: dict[str, str]) -> str:
    if flags.profile is not None:
        sources["profile"] = "--profile"
        return flags.profile
    device = run.settings.device_name
    for name in list_profiles() if device else ():
        if load_profile(name).gpu.model == device:
            sources["profile"] = (f"the bundled profile of the run's GPU "
                                  f"({run.settings.sources.get('device_name')}: {device})")
            return name
    raise KvplanError(f"--profile is required: no bundled profile for {run.path}'s GPU "
                      f"({device or 'not recorded'}); bundled: {', '.join(list_profiles())}")


def _kv_dtype(run: EngineRun, cache_dtype: str | None) -> str:
    """vLLM ``kv_cache_dtype``: auto -> the model's dtype (bf16 width), fp8* -> fp8."""
    if cache_dtype is None or cache_dtype in ("auto", "bfloat16", "bf16"):
        return "bf16"
    if cache_dtype in ("float16", "half", "fp16"):
        return "fp16"
    if cache_dtype.startswith("fp8"):
        return "fp8"
    raise InputError(run.path, f"kv cache dtype '{cache_dtype}' is not one kvplan models "
                     "(auto, bfloat16, float16, fp8*)",
                     field=run.settings.sources.get("kv_cache_dtype", "kv_cache_dtype"))


def _pool(run: EngineRun, flags: Overrides, spec: ModelSpec, profile: HardwareProfile,
          per_token: int, block: int, layout: Layout, budget: int, seqs: int,
          sources: dict[str, str]) -> tuple[int, tuple[PoolTerm, ...]]:
    """KV pool in whole ``block``-token blocks: flag, recorded, or derived as vLLM does."""
    recorded = flags.kv_pool_tokens if flags.kv_pool_tokens is not None \
        else run.settings.kv_pool_tokens
    if recorded is not None:
        sources["kv_pool_tokens"] = ("--kv-pool-tokens" if flags.kv_pool_tokens is not None
                                     else run.settings.sources.get("kv_pool_tokens", "the run"))
        return recorded // block * block, ()
    rec = run.settings
    pool = derive_vllm_pool(spec, profile, kv_bytes_per_token=per_token, block_size=block,
                            layout=layout, max_num_batched_tokens=budget, max_num_seqs=seqs,
                            total_bytes=rec.gpu_total_memory_bytes,
                            utilization=rec.gpu_memory_utilization,
                            kv_cache_memory_bytes=rec.kv_cache_memory_bytes)
    sources["kv_pool_tokens"] = "derived as vLLM 0.19.0 sizes it (not recorded by the run)"
    if pool.tokens < block:
        raise InputError(run.path, f"{spec.name} leaves no KV room on {profile.name} "
                         f"({pool.tokens} tokens derived); pass --kv-pool-tokens or another "
                         "--profile", field=run.settings.sources.get("model", "model"))
    return pool.tokens, pool.terms
