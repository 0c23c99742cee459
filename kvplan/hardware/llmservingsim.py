"""Import LLMServingSim's per-layer kernel profiles as a kvplan hardware profile.

LLMServingSim (github.com/casys-kaist/LLMServingSim, MIT, CASYS Lab at KAIST) profiles one
model on one GPU with vLLM and writes a bundle ``profiler/perf/<HW>/<model>/<variant>/``:
``meta.yaml`` and one ``tp<N>/`` folder per tensor-parallel size with ``dense.csv``
(``layer,tokens,time_us``), ``per_sequence.csv`` (``layer,sequences,time_us``) and
``attention.csv`` (``prefill_chunk,kv_prefill,n_decode,kv_decode,time_us``). Each time is the
mean CUDA kernel time of one call of one layer, in microseconds (vLLM's layerwise profiler
with ``enforce_eager``, a one-layer copy of the model, dummy weights). LLMServingSim builds an
iteration from them (``serving/core/trace_generator.py`` at commit 5daddb2): embedding, then
per layer layernorm, qkv_proj, rotary_emb, attention, o_proj, layernorm, gate_up_proj, act_fn,
down_proj, then final_layernorm, lm_head and sampler; dense layers at the step's tokens, the
per-sequence ones at its sequences, attention at (prefill chunk, its history, decodes, their
mean history). kvplan reads those tables into its own parts (docs/hardware-profiles.md):

| kvplan | LLMServingSim rows |
| --- | --- |
| ``gemm`` curve (util over tokens x weight elements) | qkv_proj, o_proj, gate_up_proj, down_proj at m = tokens; lm_head at m = sequences; n, k from the model and tp |
| ``attn_prefill`` grid (TFLOP/s over sequence x heads) | attention rows with no decodes and no history: 4 x heads x d x s(s+1)/2 / time |
| ``attn_decode`` curve (GB/s over KV bytes) | attention rows with no prefill: KV bytes = decodes x (history + 1) x KV heads x d x 2 x dtype bytes |
| ``ops.elementwise_*`` | per layer 2 x layernorm + act_fn + rotary_emb (+ q/k norms), a line in tokens (the form's 3 kernels) |
| ``gpu.step_overhead_us``, ``ops.overhead_per_seq_us`` | sampler + embedding + final_layernorm of n one-token sequences, a line in n |
| ``ops.attn_prefill_extra_us`` | 0: the attention layer's time includes its KV-cache write |
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
from scipy.optimize import lsq_linear

from kvplan.cost.model import attn_pairs
from kvplan.cost.parts import kv_heads_per_gpu
from kvplan.errors import InputError, KvplanError
from kvplan.hardware import measured
from kvplan.hardware.profile import HardwareProfile, list_profiles, load_profile
from kvplan.model.spec import ModelSpec, load_model, preset_for

DENSE_GEMMS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
ELEMENTWISE = {"layernorm": 2, "act_fn": 1, "rotary_emb": 1, "q_norm": 1, "k_norm": 1,
               "qk_norm": 1}
"""Small kernels of one layer and how often a layer runs each (absent ones are skipped)."""
STEP_EXTRAS = ("embedding", "final_layernorm")
"""Dense layers run once per step, outside the layers (billed with the sampler)."""
COLUMNS = {"dense.csv": ("layer", "tokens", "time_us"),
           "per_sequence.csv": ("layer", "sequences", "time_us"),
           "attention.csv": ("prefill_chunk", "kv_prefill", "n_decode", "kv_decode", "time_us")}
MINIMUM = {"tokens": 1.0, "sequences": 1.0}
"""Smallest value of a column (others: >= 0; time_us: > 0)."""
INSTALL_HINT = "pip install pyyaml (or 'kvplan[import]')"


@dataclass(frozen=True)
class Table:
    """One CSV of a tp folder: the layer column (None for attention) and numeric columns."""

    path: Path
    layers: tuple[str, ...]
    values: np.ndarray
    """float64, one row per CSV row, the numeric columns in COLUMNS order."""

    def layer(self, name: str) -> np.ndarray:
        """(x, time_us) rows of one layer, sorted by x."""
        rows = self.values[np.asarray(self.layers) == name]
        return rows[np.argsort(rows[:, 0], kind="stable")]

    def has(self, name: str) -> bool:
        return name in self.layers


@dataclass(frozen=True)
class Bundle:
    """An LLMServingSim profile bundle: its meta.yaml and the tables of each tp folder."""

    folder: Path
    meta: dict
    tables: dict[int, dict[str, Table]]
    """tp -> file name -> table."""

    def field(self, key: str, default=None):
        return self.meta.get(key, default)


def read_bundle(path: str | Path) -> Bundle:
    """Read a bundle folder (the one holding meta.yaml), or one of its tp<N> folders."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(folder, "not a folder: expected an LLMServingSim bundle "
                         "(profiler/perf/<HW>/<model>/<variant>/ with meta.yaml and tp<N>/)")
    only = None
    if re.fullmatch(r"tp\d+", folder.name) and not (folder / "meta.yaml").is_file():
        only, folder = int(folder.name[2:]), folder.parent
    meta = _read_meta(folder / "meta.yaml")
    tps = [int(p.name[2:]) for p in folder.iterdir() if re.fullmatch(r"tp\d+", p.name)]
    tps = sorted(t for t in tps if only is None or t == only)
    if not tps:
        raise InputError(folder, "no tp<N> folder with the profiled tables")
    tables = {tp: {name: _read_csv(folder / f"tp{tp}" / name, cols)
                   for name, cols in COLUMNS.items()} for tp in tps}
    return Bundle(folder, meta, tables)


def _read_meta(path: Path) -> dict:
    try:
        import yaml
    except ImportError:
        raise KvplanError(f"reading {path} needs PyYAML: {INSTALL_HINT}") from None
    if not path.is_file():
        raise InputError(path, "missing: an LLMServingSim bundle has a meta.yaml")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise InputError(path, "expected a mapping of fields (model, variant, ...)")
    for key in ("model", "variant"):
        if not isinstance(doc.get(key), str):
            raise InputError(path, "missing or not a string", field=key)
    return doc


def _read_csv(path: Path, columns: tuple[str, ...]) -> Table:
    """A table with the given header; every number finite, times > 0 (InputError naming the
    line otherwise)."""
    if not path.is_file():
        raise InputError(path, "missing: every tp<N> folder has dense.csv, per_sequence.csv "
                         "and attention.csv")
    named = columns[0] == "layer"
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if header[:len(columns)] != list(columns):
                raise InputError(path, f"header {','.join(header)!r}: expected "
                                 f"{','.join(columns)}", line=1)
            layers, values = [], []
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < len(columns):
                    raise InputError(path, f"{len(row)} columns, expected {len(columns)}",
                                     line=line)
                layers.append(row[0].strip() if named else "")
                values.append([_number(path, line, columns[i], row[i])
                               for i in range(1 if named else 0, len(columns))])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"not a readable CSV ({exc})") from None
    if not values:
        raise InputError(path, "no rows")
    return Table(path, tuple(layers), np.asarray(values, dtype=np.float64))


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, f"'{text.strip()}' is not a number", line=line,
                         field=column) from None
    low = MINIMUM.get(column, 0.0)
    if not math.isfinite(value) or value < low or (column == "time_us" and value == 0):
        bound = "> 0" if column == "time_us" else f">= {low:g}"
        raise InputError(path, f"{text.strip()!r} is not a finite number {bound}", line=line,
                         field=column)
    return value


# -- the bundle's measurements in kvplan's terms ---------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """Measured seconds of each part's operations, pooled over the bundle's tp folders."""

    gemm: tuple[np.ndarray, ...]
    """m, n, k, seconds of weight GEMMs (qkv, o, gate/up, down; lm_head at m = sequences)."""
    prefill: tuple[np.ndarray, ...]
    """chunk tokens, history tokens, query heads per GPU, FLOPs, seconds (no decodes)."""
    decode: tuple[np.ndarray, ...]
    """decodes, context tokens of each, KV bytes read per layer and GPU, seconds (no
    prefill)."""
    elementwise: tuple[np.ndarray, ...]
    """tokens, bytes the form moves per layer, seconds of one layer's small kernels (tp 1)."""
    step_extra: tuple[np.ndarray, ...]
    """sequences, seconds of sampler + embedding + final norm (tp 1 or the smallest tp)."""


def model_of(bundle: Bundle, model: str | None) -> ModelSpec:
    """``model`` (a preset or config.json), else the preset named by meta.yaml ``model``;
    checked against the shapes meta.yaml says were profiled."""
    meta_path = bundle.folder / "meta.yaml"
    name = model or preset_for(bundle.meta["model"])
    if name is None:
        raise InputError(meta_path, f"model '{bundle.meta['model']}' has no bundled preset; "
                         "pass --model NAME or a config.json path", field="model")
    spec = load_model(name)
    if spec.is_moe or spec.is_mla:
        raise KvplanError(f"{bundle.folder}: {spec.name} is an MoE or MLA model; the "
                          "LLMServingSim import reads dense GQA models only")
    over = (bundle.meta.get("engine_effective") or {}).get("hf_overrides") or {}
    tps = sorted(bundle.tables)
    for key, want in (("num_attention_heads", spec.num_heads),
                      ("num_key_value_heads", spec.num_kv_heads),
                      ("intermediate_size", spec.intermediate_size),
                      ("vocab_size", spec.vocab_size)):
        got = over.get(key)
        if got is not None and all(got != want // tp for tp in [1, *tps]):
            raise InputError(meta_path, f"profiled {key} {got}, but {spec.name} has {want}: "
                             "the bundle is of another model (pass --model)",
                             field=f"engine_effective.hf_overrides.{key}")
    return spec


def kv_dtype_bytes(bundle: Bundle) -> int:
    """Bytes of one KV element from meta.yaml ``variant`` (LLMServingSim names it
    <weights>[-kv<kv dtype>]: bf16 -> 2, bf16-kvfp8 -> 1); weights must be bf16."""
    variant = bundle.meta["variant"]
    weights, _, kv = variant.partition("-kv")
    if weights != "bf16" or kv not in ("", "bf16", "fp8"):
        raise InputError(bundle.folder / "meta.yaml", f"variant '{variant}': kvplan imports "
                         "bf16 weights with a bf16 or fp8 KV cache", field="variant")
    return 1 if kv == "fp8" else 2


def samples(bundle: Bundle, spec: ModelSpec) -> Samples:
    """Every table of ``bundle`` as the operations of kvplan's parts (module table)."""
    gemm, prefill, decode = [], [], []
    kv_elem = kv_dtype_bytes(bundle)
    for tp, tables in bundle.tables.items():
        gemm += _gemm_rows(tables, spec, tp)
        prefill.append(_prefill_rows(tables["attention.csv"], spec, tp))
        decode.append(_decode_rows(tables["attention.csv"], spec, tp, kv_elem))
    base_tp = min(bundle.tables)
    return Samples(
        gemm=tuple(np.concatenate(c) for c in zip(*gemm, strict=True)),
        prefill=tuple(np.concatenate(c) for c in zip(*prefill, strict=True)),
        decode=tuple(np.concatenate(c) for c in zip(*decode, strict=True)),
        elementwise=_elementwise_rows(bundle.tables[base_tp]["dense.csv"], spec, base_tp),
        step_extra=_step_extra_rows(bundle.tables[base_tp], bundle.folder / f"tp{base_tp}"))


def gemm_shapes(spec: ModelSpec, tp: int) -> dict[str, tuple[float, float]]:
    """(n, k) of each profiled weight GEMM on one GPU: llama-3.1-8b tp 1: qkv_proj (6,144,
    4,096), o_proj (4,096, 4,096), gate_up_proj (28,672, 4,096), down_proj (4,096, 14,336),
    lm_head (128,256, 4,096)."""
    h, d = spec.hidden_size, spec.head_dim
    heads, width = spec.num_heads // tp, spec.intermediate_size / tp
    return {"qkv_proj": ((heads + 2 * kv_heads_per_gpu(spec, tp)) * d, h),
            "o_proj": (h, heads * d), "gate_up_proj": (2 * width, h), "down_proj": (h, width),
            "lm_head": (spec.vocab_size / tp, h)}


def _gemm_rows(tables: dict[str, Table], spec: ModelSpec, tp: int) -> list[tuple[np.ndarray, ...]]:
    out = []
    for name, (n, k) in gemm_shapes(spec, tp).items():
        table = tables["per_sequence.csv" if name == "lm_head" else "dense.csv"]
        if not table.has(name):
            raise InputError(table.path, f"no rows of layer '{name}' (a weight GEMM kvplan "
                             "reads)", field="layer")
        rows = table.layer(name)
        ones = np.ones(len(rows))
        out.append((rows[:, 0], n * ones, k * ones, rows[:, 1] * 1e-6))
    return out


def _prefill_rows(table: Table, spec: ModelSpec, tp: int) -> tuple[np.ndarray, ...]:
    v = table.values[(table.values[:, 2] == 0) & (table.values[:, 0] > 0)]
    if not len(v):
        raise InputError(table.path, "no prefill-only rows (n_decode 0)", field="n_decode")
    c, p = v[:, 0], v[:, 1]
    heads = spec.num_heads // tp
    flops = 4.0 * heads * spec.head_dim * attn_pairs(c, p)
    return c, p, np.full(len(v), float(heads)), flops, v[:, 4] * 1e-6


def _decode_rows(table: Table, spec: ModelSpec, tp: int, kv_elem: int
                 ) -> tuple[np.ndarray, ...]:
    v = table.values[(table.values[:, 0] == 0) & (table.values[:, 2] > 0)]
    if not len(v):
        raise InputError(table.path, "no decode-only rows (prefill_chunk 0)",
                         field="prefill_chunk")
    per_token = kv_heads_per_gpu(spec, tp) * spec.head_dim * 2 * kv_elem
    n, ctx = v[:, 2], v[:, 3] + 1
    return n, ctx, n * ctx * per_token, v[:, 4] * 1e-6


def elementwise_bytes_per_token(spec: ModelSpec, tp: int) -> float:
    """Bytes the elementwise form moves per token and layer: two add + norm kernels (read 2h,
    write 2h, bf16) and the gated activation (read 2w, write w): 16 h + 6 w / tp;
    llama-3.1-8b tp 1: 65,536 + 86,016 = 151,552 B."""
    return 16.0 * spec.hidden_size + 6.0 * spec.intermediate_size / tp


def _elementwise_rows(table: Table, spec: ModelSpec, tp: int) -> tuple[np.ndarray, ...]:
    present = [(name, times) for name, times in ELEMENTWISE.items() if table.has(name)]
    if not any(name == "layernorm" for name, _ in present) or not table.has("act_fn"):
        raise InputError(table.path, "no rows of layer 'layernorm' or 'act_fn'", field="layer")
    tokens = table.layer("act_fn")[:, 0]
    total = sum(times * _at(table, name, tokens) for name, times in present)
    return tokens, tokens * elementwise_bytes_per_token(spec, tp), total * 1e-6


def _step_extra_rows(tables: dict[str, Table], folder: Path) -> tuple[np.ndarray, ...]:
    per_seq = tables["per_sequence.csv"]
    if not per_seq.has("sampler"):
        raise InputError(per_seq.path, "no rows of layer 'sampler'", field="layer")
    n, sampler = per_seq.layer("sampler").T
    dense = tables["dense.csv"]
    extra = sum(_at(dense, name, n) for name in STEP_EXTRAS if dense.has(name))
    return n, (sampler + extra) * 1e-6


def _at(table: Table, name: str, x: np.ndarray) -> np.ndarray:
    """One layer's time (us) at ``x``, linear between its rows (held at the ends)."""
    rows = table.layer(name)
    return np.interp(x, rows[:, 0], rows[:, 1])


# -- fits and the profile ---------------------------------------------------------------------


def line_fit(x, seconds, min_slope: float = 0.0) -> tuple[float, float]:
    """(a, b) of seconds ~ a + b x minimising the squared relative error, with a >= 0 and
    b >= ``min_slope`` (bounded linear least squares). Points (1, 2), (3, 4): a = 1, b = 1."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(seconds, dtype=np.float64)
    ty, tx = float(np.median(y)), float(np.median(x / y)) or 1.0   # columns of order 1
    fit = lsq_linear(np.column_stack([ty / y, x / y / tx]), np.ones_like(y),
                     bounds=([0.0, min_slope * tx], [np.inf, np.inf]))
    return float(fit.x[0] * ty), float(fit.x[1] / tx)


def elementwise_constants(s: Samples, hbm_bytes_per_s: float) -> tuple[float, float]:
    """(elementwise_frac, elementwise_launch_us): the form's line, 3 x launch + bytes / (B x
    frac), fitted to one layer's small kernels (frac at most 1)."""
    _, nbytes, t = s.elementwise
    a, b = line_fit(nbytes, t, min_slope=1.0 / hbm_bytes_per_s)
    return 1.0 / (b * hbm_bytes_per_s), a / 3 * 1e6


def overhead_constants(s: Samples) -> tuple[float, float]:
    """(step_overhead_us, overhead_per_seq_us): a line through sampler + embedding + final
    norm of n sequences."""
    n, t = s.step_extra
    a, b = line_fit(n, t)
    return a * 1e6, b * 1e6


def base_profile(bundle: Bundle, base: str | None) -> HardwareProfile:
    """``base``, else the bundled profile whose GPU is the bundle's meta.yaml ``gpu``."""
    if base is not None:
        return load_profile(base)
    gpu = bundle.field("gpu")
    for name in list_profiles():
        profile = load_profile(name)
        if profile.kind == "datasheet" and profile.gpu.model == gpu:
            return profile
    raise KvplanError(f"--base: no bundled datasheet profile of {gpu or 'the bundle GPU'} to "
                      "take peaks, host, link and SSDs from; pass --base PROFILE")


def import_profile(bundle: Bundle, spec: ModelSpec, base: HardwareProfile,
                   name: str | None = None, today: str | None = None) -> HardwareProfile:
    """An ``imported`` profile: ``base``'s GPU peaks, host, link and SSDs; the bundle's
    measured curves and fitted small-kernel and per-step constants (module table)."""
    s = samples(bundle, spec)
    gpu = base.gpu
    flops, bw = gpu.bf16_dense_tflops * 1e12, gpu.hbm_bw_gbps * 1e9
    m, n, k, t = s.gemm
    c, p, heads, fl, tp_s = s.prefill
    fresh = p == 0
    _, _, kv, td = s.decode
    curves = {
        "gemm": measured.gemm_grid(m, n, k, measured.gemm_util(m, n, k, t, flops, bw)),
        "attn_prefill": measured.mean_grid(c[fresh], heads[fresh],
                                           fl[fresh] / tp_s[fresh] / 1e12),
        "attn_decode": measured.binned_curve(kv, kv / td / 1e9),
    }
    frac, launch = elementwise_constants(s, bw)
    overhead, per_seq = overhead_constants(s)
    ops = replace(base.ops, elementwise_frac=round(frac, 4), elementwise_launch_us=round(launch, 3),
                  attn_prefill_extra_us=0.0, overhead_per_seq_us=round(per_seq, 4))
    g = replace(gpu, step_overhead_us=round(overhead, 3))
    return _label(bundle, spec, base, replace(base, gpu=g, ops=ops, curves=curves), name, today)


def _label(bundle: Bundle, spec: ModelSpec, base: HardwareProfile, profile: HardwareProfile,
           name: str | None, today: str | None) -> HardwareProfile:
    meta = bundle.meta
    what = (f"LLMServingSim profile {meta.get('hardware', '?')}/{meta['model']}/"
            f"{meta['variant']} tp {', '.join(str(t) for t in bundle.tables)}")
    fitted = f"fitted to {what} by kvplan profiles import llmservingsim"
    sources = {k: v for k, v in base.sources.items() if not k.startswith("ops.")}
    sources |= {
        "ops.elementwise_frac": f"{fitted}: 2 x layernorm + act_fn + rotary_emb per layer vs "
                                "tokens (dense.csv)",
        "ops.elementwise_launch_us": f"{fitted} (same line, intercept / 3 kernels)",
        "ops.attn_prefill_extra_us": "0: LLMServingSim's attention time includes the KV-cache "
                                     "write",
        "gpu.step_overhead_us": f"{fitted}: sampler (per_sequence.csv) + embedding + "
                                "final_layernorm (dense.csv) of n sequences, intercept",
        "ops.overhead_per_seq_us": f"{fitted} (same line, slope per sequence)",
    }
    prov = {
        "run": f"{what} (profiler {meta.get('profiler_version', '?')}, vLLM "
               f"{meta.get('vllm_version', '?')}, CUDA {meta.get('cuda_version', '?')}, "
               f"profiled {meta.get('profiled_at', '?')})",
        "date": today or date.today().isoformat(),
        "source": "kvplan profiles import llmservingsim", "path": str(bundle.folder),
        "tool": "LLMServingSim (github.com/casys-kaist/LLMServingSim)",
        "licence": "LLMServingSim is MIT-licensed (Copyright (c) 2024 CASYS Lab at KAIST); "
                   "keep the bundle's licence note with profiles made from it",
        "gpu": str(meta.get("gpu", "")), "model": spec.name, "base_profile": base.name,
        "enforce_eager": str((meta.get("engine_effective") or {}).get("enforce_eager", "")),
        "reduction": "docs/hardware-profiles.md, Imported profiles (LLMServingSim)",
    }
    return replace(profile, name=name or f"{base.name}-lss", kind="imported",
                   description=f"{base.gpu.model} with LLMServingSim per-layer kernel times of "
                               f"{meta['model']} ({meta['variant']}); host, link and SSDs from "
                               f"{base.name}",
                   sources=sources, provenance=prov)
