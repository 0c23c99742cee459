"""What an engine can run, as typed data, and the settings it is given (docs/engines.md).

Every engine module (vllm, lmcache, sglang, kvbm) holds one :class:`Capabilities` pinned to a
named engine version, with the source line behind each fact, and one ``settings(choice)``
function that turns a planned :class:`TierChoice` into :class:`EngineSettings`: environment,
command line, config files and the engine's own rules checked.

Units differ per engine (GiB = 2**30 bytes, GB = 10**9 bytes) and follow each engine's parser;
sizes are rounded *up* to the knob's unit, so an engine never caches less than planned::

    100 GiB host tier = 107,374,182,400 B -> LMCache max_local_cpu_size 100 (GiB),
                                             SGLang --hicache-size 108 (GB)
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from typing import Literal

from kvplan.errors import KvplanError
from kvplan.sim.core.spec import TierRules
from kvplan.sim.schedrules import PLAIN, SchedulerRules
from kvplan.sim.storageprefetch import StorageWait
from kvplan.units import GIB

GB = 10**9
Unit = Literal["GiB", "GB", "bytes", "tokens", "path", "name", "count"]
TierName = Literal["hbm", "dram", "ssd"]
Scope = Literal["per GPU", "per replica"]


@dataclass(frozen=True)
class Knob:
    """One engine setting: a flag, environment variable or config key, with its unit."""

    name: str
    """As the operator writes it: ``--kv-cache-memory-bytes``, ``DYN_KVBM_CPU_CACHE_GB``."""
    unit: Unit
    default: str
    """The engine's default, as text ("unset" when there is none)."""
    source: str
    """Where the engine defines it: ``package/path.py:line`` at the pinned version."""
    scope: Scope = "per replica"
    """Whether the value is per GPU (tensor-parallel rank) or for the whole replica."""


@dataclass(frozen=True)
class TierCaps:
    """One KV tier an engine can run and how its size is bounded."""

    tier: TierName
    size: Knob | None
    """The knob that bounds the tier; None = unbounded (the engine never evicts there)."""
    evictions: tuple[tuple[str, str], ...]
    """(kvplan policy, engine value) pairs the tier can run; the engine value is empty when
    the engine has no knob and always runs that policy."""
    eviction_knob: Knob | None = None
    directory: Knob | None = None
    """Where a disk tier keeps its files."""


@dataclass(frozen=True)
class Mode:
    """A write or prefetch behaviour, under kvplan's name when kvplan simulates it."""

    kvplan: str
    """kvplan policy name; empty when kvplan does not simulate this behaviour (yet)."""
    engine_value: str
    """What the engine is told (flag value, env value, extra-config entry)."""
    behaviour: str
    """What the engine does, in one sentence."""
    source: str


@dataclass(frozen=True)
class OffloadFilter:
    """A frequency filter in front of a tier: a block is copied there only on its n-th use."""

    tier: TierName
    min_uses: int
    window_s: float
    """Decay window (each count loses one per window); inf when counts never decay."""
    knob: Knob


@dataclass(frozen=True)
class Capabilities:
    """What one engine runs at one version (the facts table of docs/engines.md)."""

    engine: str
    """kvplan's target name: vllm, vllm+lmcache, sglang-hicache, dynamo-kvbm."""
    label: str
    versions: tuple[tuple[str, str], ...]
    """(package, version) pairs the facts were read from."""
    tiers: tuple[TierCaps, ...]
    device_pool: Knob
    block: Knob
    """Tokens per engine block / page / chunk, and the rule it must meet."""
    block_sizes: tuple[int, ...]
    """Block sizes kvplan may pick, largest first (each must divide the trace block)."""
    writes: tuple[Mode, ...]
    prefetches: tuple[Mode, ...]
    inclusive: bool
    """True: every lower tier keeps a copy of what it sent up (no exclusive mode)."""
    offload_filter: OffloadFilter | None = None
    chunk_tokens: int = 0
    """Offload granularity in tokens when it differs from the engine block (LMCache)."""
    scheduler: SchedulerRules = PLAIN
    """The scheduler rules the engine runs (kvplan.sim.schedrules), read by the simulator."""
    storage_waits: tuple[tuple[str, StorageWait], ...] = ()
    """Storage prefetch policies the engine offers (its flag value, the wait kvplan runs,
    kvplan.sim.storageprefetch); empty: it waits for every storage hit."""
    layerwise: Mode | None = None
    """Loads KV layer by layer during prefill, layer i+1's copy behind layer i's compute
    (kvplan ``--layerwise-load``, kvplan.sim.overlap); None: a load completes first."""

    def tier(self, name: TierName) -> TierCaps | None:
        return next((t for t in self.tiers if t.tier == name), None)

    def eviction_value(self, tier: TierName, policy: str) -> str | None:
        """The engine's name for kvplan ``policy`` on ``tier``; None when it cannot run it."""
        caps = self.tier(tier)
        return None if caps is None else dict(caps.evictions).get(policy)

    def tier_rules(self, write: str, inclusive: bool, store_threshold: int) -> TierRules:
        """The placement rules the simulator runs for this engine: the write policy's, except
        that an offload filter makes write-through-selective copy down at once to every tier
        but the filtered one, which takes a block on its ``min_uses``-th hit.

        Example: KVBM, write-through-selective -> DRAM store/0, SSD store/2.
        """
        rules = TierRules.from_write(write, inclusive, store_threshold)
        f = self.offload_filter
        if f is None or write != "write-through-selective" or not inclusive:
            return rules
        return TierRules(True, rules.copy_on, (0, f.min_uses) if f.tier == "ssd"
                         else (f.min_uses, f.min_uses))

    def write_mode(self, policy: str) -> Mode | None:
        return next((m for m in self.writes if m.kvplan == policy), None)

    def prefetch_mode(self, policy: str) -> Mode | None:
        return next((m for m in self.prefetches if m.kvplan == policy), None)


@dataclass(frozen=True)
class TierChoice:
    """A planned configuration of one replica, as every engine must be told it."""

    model: str
    """Hugging Face repo id or local model directory handed to the engine."""
    block_size: int
    """Tokens per block the trace was hashed with."""
    kv_bytes_per_token: int
    """KV bytes one token takes over the whole replica (all tensor-parallel ranks)."""
    hbm_kv_bytes: int
    """Device KV pool of the replica."""
    dram_bytes: int = 0
    """Host KV tier (0 = none)."""
    ssd_bytes: int = 0
    """SSD KV tier (0 = none)."""
    eviction: str = "lru"
    """kvplan eviction policy of every tier (unless ``evictions`` names one per tier)."""
    evictions: tuple[str, str, str] = ()
    """HBM, DRAM and SSD eviction policies when they differ (empty: ``eviction`` on all)."""
    write: str = "write-through"
    prefetch: str = "none"
    inclusive: bool = True
    store_threshold: int = 2
    """write-through-selective: blocks are copied down on this hit."""
    tp: int = 1
    """Tensor-parallel GPUs of the replica."""
    disk_dir: str = "/mnt/kvcache"
    """Directory of the SSD tier's files."""
    max_batched_tokens: int = 8192
    max_seqs: int = 256
    storage_prefetch: str = "wait_complete"
    """How long admission waits for storage hits (kvplan.sim.storageprefetch)."""

    def eviction_of(self, tier: TierName) -> str:
        """The kvplan eviction policy of ``tier``."""
        return self.evictions[("hbm", "dram", "ssd").index(tier)] if self.evictions \
            else self.eviction

    def __post_init__(self) -> None:
        problem = disk_dir_problem(self.disk_dir)
        if problem:
            raise KvplanError(f"--disk-dir: {problem}")
        if self.tp < 1 or self.block_size < 1 or self.kv_bytes_per_token < 1:
            raise KvplanError("engine settings need tp, block size and KV bytes per token >= 1")


def disk_dir_problem(path: object) -> str | None:
    """Why ``path`` cannot be a disk tier directory in every engine's settings, or None.

    LMCache splits ``local_disk`` on commas (lmcache ``v1/config_base.py:50-66``), so a comma
    would silently make two directories.
    """
    if not isinstance(path, str) or not path.startswith("/") or any(
            c in path for c in "\n\r\0,"):
        return f"expected an absolute directory path without commas or line breaks, got {path!r}"
    return None


@dataclass(frozen=True)
class Check:
    """One engine rule, and whether the planned configuration meets it."""

    rule: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ConfigFile:
    """A file the engine reads (the LMCache YAML), written beside the launch script."""

    name: str
    text: str
    env: str = ""
    """Environment variable that must hold the file's absolute path ("" = none)."""


@dataclass(frozen=True)
class EngineSettings:
    """Everything one engine is told: environment, command line, config files, and the rules
    checked. ``argv`` and ``env`` hold raw values; :meth:`command` and :meth:`script` quote
    each one (``shlex.quote``), so a value from the input can never break out of its word."""

    engine: str
    label: str
    env: tuple[tuple[str, str], ...]
    argv: tuple[str, ...]
    files: tuple[ConfigFile, ...] = ()
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def settings(self) -> dict[str, str]:
        """Every environment variable and flag with its value ("" for a bare flag)."""
        flags = dict(self.env)
        args = self.argv
        i = 0
        while i < len(args):
            if args[i].startswith("--"):
                has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
                flags[args[i]] = args[i + 1] if has_value else ""
                i += 2 if has_value else 1
            else:
                i += 1
        return flags

    def command(self) -> str:
        """One pasteable line: ``VAR=value ... program args``, run in the settings folder."""
        env = [f"{f.env}={shlex.quote(f.name)}" for f in self.files if f.env]
        env += [f"{k}={shlex.quote(v)}" for k, v in self.env]
        return " ".join(env + [shlex.join(self.argv)])

    def env_file(self) -> str:
        """``KEY=value`` lines (shell-quoted), for ``set -a; . FILE`` or a systemd unit."""
        head = f"# {self.label}: environment (kvplan)\n"
        return head + "".join(f"{k}={shlex.quote(v)}\n" for k, v in self.env)

    def script(self, env_name: str) -> str:
        """A bash launch script that reads ``env_name`` and the config files from its folder."""
        lines = ["#!/usr/bin/env bash", f"# {self.label}: launch one replica (written by kvplan)",
                 "set -euo pipefail", 'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
                 f'set -a; . "$here"/{shlex.quote(env_name)}; set +a']
        lines += [f'export {f.env}="$here"/{shlex.quote(f.name)}' for f in self.files if f.env]
        lines.append("exec " + " \\\n    ".join(_lines([shlex.quote(a) for a in self.argv])))
        return "\n".join(lines) + "\n"


def _lines(words: list[str]) -> list[str]:
    """The program and its positional words on one line, then one ``--flag value`` each.

    Example: [vllm, serve, M, --block-size, 64, --enable-prefix-caching] ->
    ["vllm serve M", "--block-size 64", "--enable-prefix-caching"].
    """
    groups: list[list[str]] = []
    for w in words:
        head = groups[-1][0] if groups else ""
        if not groups or w.startswith("--"):
            groups.append([w])
        elif not head.startswith("--") or len(groups[-1]) == 1:
            groups[-1].append(w)
        else:
            groups.append([w])
    return [" ".join(g) for g in groups]


def ceil_gib(nbytes: int) -> int:
    """Whole GiB, rounded up (an engine given less than planned caches less)."""
    return math.ceil(nbytes / GIB)


def ceil_gb(nbytes: int) -> int:
    """Whole GB (10**9 bytes), rounded up. Example: 100 GiB -> 108."""
    return math.ceil(nbytes / GB)


def largest_dividing(choices: tuple[int, ...], block_size: int) -> int | None:
    """The first of ``choices`` (largest first) that divides ``block_size``.

    Example: (64, 32, 16) and 512 -> 64; and 48 -> 16; and 8 -> None.
    """
    return next((c for c in choices if block_size % c == 0), None)


def policy_checks(caps: Capabilities, choice: TierChoice) -> tuple[Check, ...]:
    """The planned eviction on every present tier that evicts, the write and prefetch policy
    and inclusion (the last three only when there is a lower tier)."""
    sizes: tuple[tuple[TierName, int], ...] = (("hbm", 1), ("dram", choice.dram_bytes),
                                               ("ssd", choice.ssd_bytes))
    present = [name for name, n in sizes if n > 0]
    checks = [Check(f"{name} tier", False, "the engine has no such tier")
              for name in present if caps.tier(name) is None]
    missing = [name for name in present if (t := caps.tier(name)) is not None
               and t.size is not None and caps.eviction_value(name, choice.eviction_of(name))
               is None]
    names = {choice.eviction_of(name) for name in present}
    rule = f"every tier evicts {choice.eviction_of('hbm')}" if len(names) == 1 else \
        "tiers evict " + ", ".join(f"{name}={choice.eviction_of(name)}" for name in present)
    checks.insert(0, Check(rule, not missing, "runs on every tier" if not missing else
                           "not available on " + ", ".join(
                               f"{name} ({choice.eviction_of(name)}; runs "
                               f"{_evictions(caps, name)})" for name in missing)))
    shared = [(a, b) for a in present for b in present if a < b
              and (ta := caps.tier(a)) is not None and (tb := caps.tier(b)) is not None
              and ta.eviction_knob is not None and ta.eviction_knob == tb.eviction_knob
              and choice.eviction_of(a) != choice.eviction_of(b)]
    if shared:
        checks.insert(1, Check("one eviction per engine knob", False, "; ".join(
            f"{a} and {b} share {caps.tier(a).eviction_knob.name}"  # type: ignore[union-attr]
            for a, b in shared)))
    if len(present) > 1:
        write, prefetch = caps.write_mode(choice.write), caps.prefetch_mode(choice.prefetch)
        checks += [
            Check(f"write policy {choice.write}", write is not None, "offered" if write else
                  "offers " + ", ".join(m.kvplan for m in caps.writes if m.kvplan)),
            Check(f"prefetch {choice.prefetch}", prefetch is not None, "offered" if prefetch
                  else "offers " + ", ".join(m.kvplan for m in caps.prefetches if m.kvplan)),
            Check("inclusive tiers", choice.inclusive or not caps.inclusive,
                  "inclusive" if choice.inclusive else
                  "the engine keeps a copy in every lower tier: exclusive tiers cannot run")]
    return tuple(checks)


def _evictions(caps: Capabilities, tier: TierName) -> str:
    t = caps.tier(tier)
    return "/".join(k for k, _ in t.evictions) if t else "none"


_HF_URL = re.compile(r"https://huggingface\.co/([\w.-]+/[\w.-]+)/")


def model_id(model: str, source: str) -> str:
    """What the engine loads: the Hugging Face repo a preset cites, else ``model`` as given.

    Example: ("llama-3.1-8b", "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/
    config.json") -> "meta-llama/Llama-3.1-8B"; ("/models/x/config.json", ...) -> "/models/x".
    """
    m = _HF_URL.match(source)
    if m:
        return m.group(1)
    return model.removesuffix("/config.json") if model.endswith("/config.json") else model
