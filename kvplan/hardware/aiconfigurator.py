"""Import AIConfigurator's measured per-operation tables as a kvplan hardware profile.

NVIDIA's AIConfigurator (package ``aiconfigurator`` / ``aiconfigurator-core``, Apache-2.0)
ships kernel timings measured on real GPUs per system, serving backend (vllm, sglang,
trtllm) and backend version: ``aiconfigurator_core/systems/data/<system>/<family>/<backend>/
<version>/*.parquet``, next to a ``<system>.yaml`` with the GPU's peaks. This module reads
those files directly (no AIConfigurator code runs) and turns them into the curves the cost
model reads (docs/hardware-profiles.md, "Imported profiles"):

| kvplan curve | AIConfigurator table | reduction |
| --- | --- | --- |
| ``gemm`` (tokens x weight elements -> util) | ``gemm/gemm_perf.parquet``, bf16 | util = SOL / latency per (m, n, k), SOL from the yaml peaks; mean over the (n, k) sites within half an octave of each weight-size knot (n, k >= 512) |
| ``attn_prefill`` (sequence x heads -> TFLOP/s) | ``attention/context_attention_perf.parquet`` | batch 1, bf16 KV, no window, head_dim 128; causal FLOPs 4 x heads x 128 x s(s+1)/2 / latency; mean over KV-head counts |
| ``attn_decode`` (KV bytes -> GB/s) | ``attention/generation_attention_perf.parquet`` | bf16 KV, no window, head_dim 128; KV bytes = batch x (isl + step) x kv_heads x 128 x 2 x 2; median per quarter octave |
| ``allreduce`` (bytes x GPUs -> GB/s) | ``comm/custom_allreduce_perf.parquet`` | the backend's CUDA-graph rows, message = elements x 2 B |
| ``ops.elementwise_*`` | ``<system>.yaml`` | ``mem_bw_empirical_scaling_factor``, ``mem_empirical_constant_latency`` |
| ``ops.attn_prefill_extra_us`` | AIConfigurator's context attention | its fused RoPE + KV-write extras: 4 memory ops x constant latency x 1.1 |

Versions follow the package's ``query_versions.yaml`` (the ``current`` slot), falling back,
per table family, to the newest older version that has the file.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from kvplan.errors import KvplanError
from kvplan.hardware import measured
from kvplan.hardware.profile import Curve, Grid, HardwareProfile, load_profile

PACKAGE = "aiconfigurator_core"
BACKENDS = ("vllm", "sglang", "trtllm")
BASE_PROFILES = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200",
                 "a100_sxm": "a100-80gb", "l40s": "l40s", "rtx_pro_6000_server": "rtx-pro-6000",
                 "gb200": "b200", "gb300": "b200", "b300_sxm": "b200"}
"""Bundled datasheet profile whose host, host link and SSD an imported system keeps."""
MIN_GEMM_DIM = 512
HEAD_DIM = 128
INSTALL_HINT = "pip install 'kvplan[import]' (the aiconfigurator package, Apache-2.0)"


@dataclass(frozen=True)
class Source:
    """Where one imported system's data lives, and which versions the tables came from."""

    systems_dir: Path
    system: str
    backend: str
    versions: dict[str, str]
    """Table family (gemm, attention, comm) -> version folder used."""
    package_version: str


def systems_dir() -> Path:
    """The installed package's ``systems`` folder (KvplanError naming the install if absent)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KvplanError(f"aiconfigurator is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "systems"
    if not path.is_dir():
        raise KvplanError(f"{path}: no systems folder in the installed aiconfigurator package")
    return path


def package_version() -> str:
    """Installed aiconfigurator-core version (from its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aiconfigurator-core")
    except PackageNotFoundError:
        return "unknown"


def available(root: Path) -> dict[str, dict[str, list[str]]]:
    """system -> backend -> versions that hold gemm and attention tables."""
    out: dict[str, dict[str, list[str]]] = {}
    for sys_dir in sorted((root / "data").iterdir()):
        for backend in BACKENDS:
            gemm = _versions(sys_dir / "gemm" / backend)
            attn = _versions(sys_dir / "attention" / backend)
            if gemm and attn:
                out.setdefault(sys_dir.name, {})[backend] = sorted(set(gemm) | set(attn),
                                                                  key=_version_key)
    return out


def _versions(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []


def _version_key(v: str) -> tuple:
    """'0.5.6.post2' < '0.5.14' < '1.3.0rc20' (numbers compared as numbers)."""
    return tuple(int(x) if x.isdigit() else x for x in re.findall(r"\d+|[a-z]+", v))


def resolve(system: str, backend: str, version: str | None = None,
            root: Path | None = None) -> Source:
    """Pick the version folder of each table family (gemm, attention, comm)."""
    root = root or systems_dir()
    have = available(root)
    if system not in have:
        raise KvplanError(f"--system {system}: no measured tables in aiconfigurator "
                          f"{package_version()} (systems with data: {', '.join(have)})")
    if backend not in have[system]:
        raise KvplanError(f"--backend {backend}: {system} has tables for "
                          f"{', '.join(have[system])}")
    wanted = version or _current(root, system, backend) or have[system][backend][-1]
    data = root / "data" / system
    versions = {}
    for family, name in (("gemm", "gemm_perf.parquet"),
                         ("attention", "context_attention_perf.parquet"),
                         ("comm", "custom_allreduce_perf.parquet")):
        found = _version_with(data / family / backend, name, wanted)
        if found is None and family != "comm":
            raise KvplanError(f"--version {wanted}: {system}/{backend} has no {family} table at "
                              f"or before it (versions: {', '.join(have[system][backend])})")
        if found is not None:
            versions[family] = found
    return Source(root, system, backend, versions, package_version())


def _current(root: Path, system: str, backend: str) -> str | None:
    """The ``current`` slot of query_versions.yaml for (system, backend), if the file says."""
    path = root / "query_versions.yaml"
    if not path.is_file():
        return None
    import yaml

    doc = yaml.safe_load(path.read_text()) or {}
    slot = (doc.get("overrides", {}).get(system, {}) or {}).get(backend) \
        or doc.get("defaults", {}).get(backend) or {}
    return slot.get("current") if isinstance(slot, dict) else None


def _version_with(folder: Path, filename: str, wanted: str) -> str | None:
    """``wanted`` if its folder has the file, else the newest older version that has it."""
    have = sorted((v for v in _versions(folder) if (folder / v / filename).is_file()),
                  key=_version_key)
    older = [v for v in have if _version_key(v) <= _version_key(wanted)]
    return older[-1] if older else None


def system_spec(root: Path, system: str) -> dict:
    """The parsed ``<system>.yaml`` (gpu peaks, node, misc)."""
    import yaml

    path = root / f"{system}.yaml"
    if not path.is_file():
        raise KvplanError(f"{path}: missing system spec for {system}")
    return yaml.safe_load(path.read_text())


def import_profile(src: Source, base: HardwareProfile | None = None, name: str | None = None,
                   today: str | None = None) -> HardwareProfile:
    """An ``imported`` profile: GPU peaks from the system yaml, the curves above, and host /
    host link / SSD / framework overhead from ``base`` (default: BASE_PROFILES)."""
    spec = system_spec(src.systems_dir, src.system)
    if base is None:
        if src.system not in BASE_PROFILES:
            raise KvplanError(f"no bundled profile to take {src.system}'s host, link and SSDs "
                              f"from; pass --base PROFILE")
        base = load_profile(BASE_PROFILES[src.system])
    peaks = _peaks(spec["gpu"])
    data = src.systems_dir / "data" / src.system
    curves = {
        "gemm": gemm_grid(_table(data, "gemm", src, "gemm_perf.parquet"), *peaks),
        "attn_prefill": prefill_grid(_table(data, "attention", src,
                                            "context_attention_perf.parquet")),
        "attn_decode": decode_curve(_table(data, "attention", src,
                                           "generation_attention_perf.parquet")),
    }
    if "comm" in src.versions:
        grid = allreduce_grid(_table(data, "comm", src, "custom_allreduce_perf.parquet"),
                              src.backend)
        if grid is not None:
            curves["allreduce"] = grid
    return _profile(src, base, spec, curves, name, today)


def _peaks(gpu: dict) -> tuple[float, float]:
    """(bf16 FLOP/s, HBM bytes/s) from the yaml."""
    return float(gpu["bfloat16_tc_flops"]), float(gpu["mem_bw"])


def _table(data: Path, family: str, src: Source, filename: str) -> pl.DataFrame:
    path = data / family / src.backend / src.versions[family] / filename
    if not path.is_file():
        raise KvplanError(f"{path}: missing in the installed aiconfigurator package")
    return pl.read_parquet(path)


def _profile(src: Source, base: HardwareProfile, spec: dict, curves: dict, name: str | None,
             today: str | None) -> HardwareProfile:
    gpu, node = spec["gpu"], spec["node"]
    yaml_ref = f"aiconfigurator-core {src.package_version} systems/{src.system}.yaml"
    intra, pcie = float(node.get("intra_node_bw", 0)), float(node.get("pcie_bw", 0))
    g = replace(base.gpu, count=int(node.get("num_gpus_per_node", base.gpu.count)),
                hbm_bw_gbps=float(gpu["mem_bw"]) / 1e9,
                bf16_dense_tflops=float(gpu["bfloat16_tc_flops"]) / 1e12,
                fp8_dense_tflops=float(gpu.get("fp8_tc_flops", 0.0)) / 1e12,
                nvlink_gbps=intra / 1e9 if intra > pcie else 0.0)
    const_us = float(gpu.get("mem_empirical_constant_latency", 3e-6)) * 1e6
    ops = replace(base.ops, elementwise_frac=float(gpu.get("mem_bw_empirical_scaling_factor", 0.8)),
                  elementwise_launch_us=const_us, attn_prefill_extra_us=round(4 * const_us * 1.1, 6),
                  comm_latency_us=float(node.get("p2p_latency", 1e-5)) * 1e6)
    sources = {k: v for k, v in base.sources.items()
               if k.split(".")[0] in ("host", "host_link", "ssd")}
    sources |= {
        "gpu.count": f"{yaml_ref}: node.num_gpus_per_node",
        "gpu.hbm_bw_gbps": f"{yaml_ref}: gpu.mem_bw",
        "gpu.bf16_dense_tflops": f"{yaml_ref}: gpu.bfloat16_tc_flops",
        "gpu.fp8_dense_tflops": f"{yaml_ref}: gpu.fp8_tc_flops",
        "gpu.nvlink_gbps": f"{yaml_ref}: node.intra_node_bw (0 when it is not above pcie_bw)",
        "gpu.step_overhead_us": f"from the base profile {base.name} (AIConfigurator's tables "
                                "hold kernel times only)",
        "ops.elementwise_frac": f"{yaml_ref}: gpu.mem_bw_empirical_scaling_factor",
        "ops.elementwise_launch_us": f"{yaml_ref}: gpu.mem_empirical_constant_latency",
        "ops.attn_prefill_extra_us": "AIConfigurator's context attention adds its fused RoPE and "
                                     "KV-cache write as 4 memory ops x 1.1 (constant latency)",
        "ops.comm_latency_us": f"{yaml_ref}: node.p2p_latency",
    }
    tables = ", ".join(f"{f} {v}" for f, v in src.versions.items())
    prov = {
        "run": f"aiconfigurator-core {src.package_version}: {src.system}/{src.backend} ({tables})",
        "date": today or date.today().isoformat(),
        "source": "kvplan profiles import aiconfigurator", "package": "aiconfigurator-core",
        "package_version": src.package_version, "licence": "Apache-2.0 (NVIDIA CORPORATION & "
        "AFFILIATES); measured data redistributed under its terms",
        "system": src.system, "backend": src.backend, "base_profile": base.name,
        "reduction": "docs/hardware-profiles.md, Imported profiles",
    }
    return replace(
        base, name=name or f"{src.system.replace('_', '-')}-aic-{src.backend}", kind="imported",
        description=f"{base.gpu.model} node with AIConfigurator {src.package_version} measured "
                    f"{src.backend} kernel tables ({src.system}); host, link and SSDs from "
                    f"{base.name}",
        gpu=g, ops=ops, curves=curves, sources=sources, provenance=prov)


def gemm_grid(df: pl.DataFrame, flops: float, bw: float) -> Grid:
    """util_frac over (tokens m, weight elements n x k) from bf16 GEMM rows (module table)."""
    d = df.filter((pl.col("gemm_dtype") == "bfloat16") & (pl.col("n") >= MIN_GEMM_DIM)
                  & (pl.col("k") >= MIN_GEMM_DIM) & (pl.col("latency") > 0))
    if d.height == 0:
        raise KvplanError("aiconfigurator gemm table: no bf16 rows with n, k >= 512")
    m, n, k = (d[c].to_numpy() for c in ("m", "n", "k"))
    return measured.gemm_grid(m, n, k, measured.gemm_util(m, n, k, d["latency"].to_numpy() * 1e-3,
                                                          flops, bw))


def _attention_rows(df: pl.DataFrame) -> pl.DataFrame:
    """bf16 KV, no window, head_dim 128, one kernel source (the one with most such rows)."""
    d = df.filter((pl.col("kv_cache_dtype") == "bfloat16") & (pl.col("head_dim") == HEAD_DIM)
                  & (pl.col("latency") > 0))
    for column, value in (("window_size", 0), ("attn_dtype", "bfloat16")):
        if column in d.columns:
            d = d.filter(pl.col(column) == value)
    if d.height == 0:
        raise KvplanError("aiconfigurator attention table: no bf16 rows at head_dim 128")
    best = d.group_by("kernel_source").len().sort(["len", "kernel_source"],
                                                  descending=[True, False])
    return d.filter(pl.col("kernel_source") == best["kernel_source"][0])


def prefill_grid(df: pl.DataFrame) -> Grid:
    """TFLOP/s over (sequence tokens, query heads) at batch 1 (module table)."""
    d = _attention_rows(df).filter((pl.col("batch_size") == 1) & (pl.col("isl") >= 16))
    s = d["isl"].to_numpy().astype(np.float64)
    h = d["num_heads"].to_numpy().astype(np.float64)
    tflops = 4.0 * h * HEAD_DIM * s * (s + 1) / 2 / (d["latency"].to_numpy() * 1e-3) / 1e12
    return measured.mean_grid(s, h, tflops)


def decode_curve(df: pl.DataFrame) -> Curve:
    """GB/s vs KV bytes per layer read by decode attention (module table)."""
    d = _attention_rows(df)
    kv = (d["batch_size"] * (d["isl"] + d["step"]) * d["num_key_value_heads"]).to_numpy() \
        .astype(np.float64) * HEAD_DIM * 2 * 2
    return measured.binned_curve(kv, kv / (d["latency"].to_numpy() * 1e-3) / 1e9)


def allreduce_grid(df: pl.DataFrame, backend: str) -> Grid | None:
    """GB/s over (message bytes, GPUs) of the backend's CUDA-graph all-reduce (bf16)."""
    d = df.filter(pl.col("latency") > 0)
    if "backend" in d.columns:
        graph = d.filter(pl.col("backend").str.contains("graph"))
        d = graph if graph.height else d
    if "allreduce_dtype" in d.columns:
        d = d.filter(pl.col("allreduce_dtype").str.contains("bfloat16|half|float16"))
    if d.height == 0 or d.group_by("num_gpus").len()["len"].min() < 2:
        return None
    nbytes = d["message_size"].to_numpy().astype(np.float64) * 2
    gbps = nbytes / (d["latency"].to_numpy() * 1e-3) / 1e9
    return measured.mean_grid(nbytes, d["num_gpus"].to_numpy(), gbps)
