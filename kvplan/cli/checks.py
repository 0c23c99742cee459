"""Flag checks of `kvplan replay`, done before any work: ranges, names, contradictions.

- every numeric flag against its bound (kvplan.bounds), named as typed: ``--dram-gib: expected
  a number >= 0, got -10``; ``--compare dram-gib=-5`` likewise;
- every named choice (mode, write, KV dtype, eviction and prefetch policies) against the
  valid ones;
- settings that cannot act where they are given (:func:`idle_settings`): a flag that changes
  nothing in every variant is refused with the reason; one that acts in some variants of
  ``--compare`` only is applied with a printed note; a ``--compare KEY`` whose own setting
  would change nothing is refused (its columns would be identical), and so is a flag that
  ``--compare`` overrides in every variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from kvplan.bounds import (
    AT_LEAST_ONE,
    IMBALANCE,
    NON_NEGATIVE,
    POSITIVE,
    SHARE,
    Bound,
    check_value,
)
from kvplan.errors import KvplanError
from kvplan.model.kv import KV_DTYPE_BITS
from kvplan.sim.config import ReplayConfig
from kvplan.sim.policies import eviction_policy
from kvplan.sim.prefetch import prefetch_class

REPLAY_FLAGS: dict[str, tuple[str, Bound]] = {
    "--tp": ("layout.tp", AT_LEAST_ONE), "--dp": ("layout.dp", AT_LEAST_ONE),
    "--ep": ("layout.ep", AT_LEAST_ONE),
    "--expert-imbalance": ("layout.expert_imbalance", IMBALANCE),
    "--hbm-kv-gib": ("hbm_kv_gib", POSITIVE), "--dram-gib": ("dram_gib", NON_NEGATIVE),
    "--ssd-gib": ("ssd_gib", NON_NEGATIVE), "--lookahead": ("lookahead_iters", AT_LEAST_ONE),
    "--staging-frac": ("staging_budget_frac", SHARE),
    "--store-threshold": ("store_threshold", AT_LEAST_ONE),
    "--session-ttl-s": ("session_ttl_s", NON_NEGATIVE),
    "--stage-ttl-s": ("stage_ttl_s", NON_NEGATIVE),
    "--slo-ttft-ms": ("slo_ttft_ms", POSITIVE), "--slo-tpot-ms": ("slo_tpot_ms", POSITIVE),
    "--max-batched-tokens": ("max_batched_tokens", AT_LEAST_ONE),
    "--max-seqs": ("max_seqs", AT_LEAST_ONE),
}
"""Numeric flag -> (ReplayConfig field, dotted inside the layout; its bound)."""
MODES = ("event", "cache")
WRITES = ("write-through", "write-through-selective", "write-back")
DEFAULT = ReplayConfig()


def field_value(cfg: ReplayConfig, field: str) -> object:
    """``layout.tp`` -> cfg.layout.tp; ``dram_gib`` -> cfg.dram_gib."""
    obj: object = cfg
    for part in field.split("."):
        obj = getattr(obj, part)
    return obj


def check_config(cfg: ReplayConfig, block_size: int | None) -> None:
    """Every numeric flag within its bound, every named choice valid (flag names in the
    messages)."""
    for flag, (field, bound) in REPLAY_FLAGS.items():
        check_value(flag, field_value(cfg, field), bound)
    check_value("--block-size", block_size, AT_LEAST_ONE)
    choose("--mode", cfg.mode, MODES)
    choose("--write", cfg.write, WRITES)
    choose("--kv-dtype", cfg.kv_dtype, tuple(KV_DTYPE_BITS))
    named("--prefetch", prefetch_class, cfg.prefetch)
    for name in {cfg.eviction_hbm, cfg.eviction_dram, cfg.eviction_ssd}:
        named("--eviction", eviction_policy, name)


def choose(flag: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise KvplanError(f"{flag}: expected one of {', '.join(valid)}, got '{value}'")


def named(flag: str, lookup: Callable[[str], object], value: str) -> None:
    """A registry look-up whose error is prefixed with the flag."""
    try:
        lookup(value)
    except KvplanError as exc:
        raise KvplanError(f"{flag}: {exc}") from None


def compare_bound(key: str) -> Bound | None:
    """The bound of ``--compare KEY=...`` values (KEY is the flag without its dashes)."""
    flag = REPLAY_FLAGS.get(f"--{key}")
    return flag[1] if flag else None


@dataclass(frozen=True)
class Idle:
    """A setting that changes nothing in a configuration, and why."""

    flag: str
    """The flag as typed, e.g. '--prefetch'."""
    text: str
    """'--prefetch lookahead has no effect without a DRAM or SSD tier: ...'."""


def idle_settings(cfg: ReplayConfig) -> list[Idle]:
    """Settings of ``cfg`` that differ from the default but cannot act (see module doc)."""
    out: list[Idle] = []
    cache = cfg.mode == "cache"
    lower = cfg.dram_gib > 0 or cfg.ssd_gib > 0

    def idle(flag: str, shown: str, where: str, why: str) -> None:
        out.append(Idle(flag, f"{flag}{shown} has no effect {where}: {why}"))

    if cfg.prefetch != DEFAULT.prefetch:
        if cache:
            idle("--prefetch", f" {cfg.prefetch}", "in --mode cache",
                 "prefetching runs ahead of a clock, and cache mode replays blocks without "
                 "time (use --mode event)")
        elif not lower:
            idle("--prefetch", f" {cfg.prefetch}", "without a DRAM or SSD tier",
                 "it stages blocks from the lower tiers into HBM (add --dram-gib or --ssd-gib)")
    if cache and cfg.session_ttl_s != DEFAULT.session_ttl_s:
        idle("--session-ttl-s", f" {cfg.session_ttl_s:g}", "in --mode cache",
             "pins last for simulated seconds, and cache mode has no clock (use --mode event)")
    for flag, value in (("--slo-ttft-ms", cfg.slo_ttft_ms), ("--slo-tpot-ms", cfg.slo_tpot_ms)):
        if cache and value is not None:
            idle(flag, f" {value:g}", "in --mode cache", "cache mode measures no latency "
                 "(use --mode event)")
    for flag, field in (("--max-batched-tokens", "max_batched_tokens"),
                        ("--max-seqs", "max_seqs")):
        if cache and getattr(cfg, field) != getattr(DEFAULT, field):
            idle(flag, f" {getattr(cfg, field)}", "in --mode cache",
                 "there is no scheduler in cache mode (use --mode event)")
    if not lower and cfg.write != DEFAULT.write:
        idle("--write", f" {cfg.write}", "without a DRAM or SSD tier",
             "write policies copy blocks to the lower tiers (add --dram-gib or --ssd-gib)")
    if not lower and not cfg.inclusive:
        idle("--exclusive", "", "without a DRAM or SSD tier",
             "HBM alone is one tier (add --dram-gib or --ssd-gib)")
    for flag, field in (("--lookahead", "lookahead_iters"),
                        ("--staging-frac", "staging_budget_frac")):
        if cfg.prefetch != "lookahead" and getattr(cfg, field) != getattr(DEFAULT, field):
            idle(flag, f" {getattr(cfg, field):g}", f"with --prefetch {cfg.prefetch}",
                 "it tunes --prefetch lookahead only")
    if cfg.write != "write-through-selective" and cfg.store_threshold != DEFAULT.store_threshold:
        idle("--store-threshold", f" {cfg.store_threshold}", f"with --write {cfg.write}",
             "it tunes --write write-through-selective only")
    return out


def check_variants(base: ReplayConfig, variants: list[tuple[str, ReplayConfig]],
                   compare_key: str | None, compare_fields: tuple[str, ...]) -> list[str]:
    """Refuse what cannot act (KvplanError); returns notes for settings idle in some
    variants of --compare only."""
    if compare_key is not None:
        given = [f for f in compare_fields if field_value(base, f) != field_value(DEFAULT, f)]
        if given:
            flag = "--eviction" if compare_key == "eviction" else f"--{compare_key}"
            raise KvplanError(f"--compare {compare_key}=... sets {flag} in every variant; drop "
                              f"{flag} {_shown(field_value(base, given[0]))}")
    idle = {name: idle_settings(cfg) for name, cfg in variants}
    for name, items in idle.items():
        for item in items:
            if compare_key is not None and item.flag == f"--{compare_key}":
                raise KvplanError(f"--compare {compare_key}: in variant {name}, {item.text}")
            if all(any(i.text == item.text for i in other) for other in idle.values()):
                raise KvplanError(item.text)
    return [f"note: variant {name}: {item.text}" for name, items in idle.items()
            for item in items]


def _shown(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def replace_field(cfg: ReplayConfig, field: str, value: object) -> ReplayConfig:
    """``cfg`` with one (possibly dotted) field replaced."""
    head, _, rest = field.partition(".")
    if rest:
        return dataclasses.replace(cfg, **{head: dataclasses.replace(getattr(cfg, head),
                                                                     **{rest: value})})
    return dataclasses.replace(cfg, **{head: value})
