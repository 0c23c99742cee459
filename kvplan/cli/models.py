"""`kvplan models list | show`: model presets, KV bytes per token, and what fits on a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from kvplan.atomic import check_output_dir
from kvplan.cli.checks import choose
from kvplan.cli.options import DpOpt, EpOpt, ImbalanceOpt, JsonOpt, OutDirOpt, TpOpt
from kvplan.cli.output import console, print_json, rich_table, write_frame
from kvplan.cost.layout import Layout
from kvplan.cost.model import GIB, CostModel
from kvplan.hardware.profile import load_profile
from kvplan.model.kv import (
    KV_DTYPE_BITS,
    Retention,
    kv_bytes_for_context,
    kv_bytes_per_token,
    kv_bytes_retained,
    param_count,
    weight_bytes,
)
from kvplan.model.spec import ModelSpec, list_models, load_model

app = typer.Typer(no_args_is_help=True, help="Model presets: KV bytes per token, weights, fit.")

CONTEXTS = (8192, 32768, 131072)
KvDtypeOpt = Annotated[str, typer.Option("--kv-dtype", help=f"KV element type: "
                                         f"{', '.join(KV_DTYPE_BITS)}.")]


def _attention(spec: ModelSpec) -> str:
    if spec.is_mla:
        return f"MLA latent {spec.kv_lora_rank}+{spec.qk_rope_head_dim}"
    kind = "MHA" if spec.num_kv_heads == spec.num_heads else "MQA" if spec.num_kv_heads == 1 \
        else "GQA"
    windows = sorted({w for w in spec.windows if w})
    window = f", window {windows[0]:,} on {sum(1 for w in spec.windows if w)}" if windows else ""
    return f"{kind} {spec.num_kv_heads}x{spec.head_dim}{window}"


@app.command("list")
def list_cmd(kv_dtype: KvDtypeOpt = "bf16", json_out: JsonOpt = False,
             out: OutDirOpt = None) -> None:
    """Bundled model presets with their KV bytes per token (--out: models.parquet)."""
    choose("--kv-dtype", kv_dtype, tuple(KV_DTYPE_BITS))
    if out is not None:
        check_output_dir(out)
    rows = []
    for name in list_models():
        spec = load_model(name)
        rows.append({"model": name, "layers": spec.num_layers, "attention": _attention(spec),
                     "kv_bytes_per_token": kv_bytes_per_token(spec, kv_dtype),
                     "params_b": param_count(spec) / 1e9,
                     "active_params_b": param_count(spec, active=True) / 1e9})
    if out is not None:
        write_frame(pl.DataFrame(rows), out / "models.parquet", {"kvplan.kv_dtype": kv_dtype})
    if json_out:
        print_json(rows)
    else:
        console.print(rich_table(f"Model presets (KV {kv_dtype})", rows))


def parse_retention(text: str) -> Retention:
    """``streaming:SINK,WINDOW`` (StreamingLLM) or ``h2o:FRAC`` (H2O-style keep share)."""
    kind, _, args = text.partition(":")
    try:
        if kind == "streaming":
            sink, window = (int(x) for x in args.split(","))
            if sink >= 0 and window > 0:
                return Retention(sink_tokens=sink, window_tokens=window)
        elif kind == "h2o" and 0 < float(args) <= 1:
            return Retention(keep_frac=float(args))
    except ValueError:
        pass
    raise typer.BadParameter(f"'{text}': expected streaming:SINK,WINDOW (e.g. streaming:4,2044) "
                             "or h2o:FRAC with 0 < FRAC <= 1 (e.g. h2o:0.2)")


def _model_rows(spec: ModelSpec, kv_dtype: str, retain: Retention | None) -> list[dict]:
    rows = [("layers", spec.num_layers, ""), ("attention", _attention(spec), ""),
            ("kv_bytes_per_token", kv_bytes_per_token(spec, kv_dtype), "B")]
    rows += [(f"kv_gib_at_{n // 1024}k", kv_bytes_for_context(spec, n, kv_dtype) / GIB, "GiB")
             for n in CONTEXTS]
    if retain is not None:
        rows += [(f"kv_gib_at_{n // 1024}k_retained",
                  kv_bytes_retained(spec, n, retain, kv_dtype) / GIB,
                  "GiB (what-if: changes model quality)") for n in CONTEXTS]
    if spec.is_moe:
        rows += [("experts", f"{spec.experts_per_token} of {spec.num_experts} routed, width "
                  f"{spec.moe_intermediate_size:,}" + (f", shared width "
                                                        f"{spec.shared_intermediate_size:,}"
                                                        if spec.shared_intermediate_size else ""),
                  f"{spec.moe_layers} MoE layers")]
    rows += [("params_total_b", param_count(spec) / 1e9, "1e9"),
             ("params_active_b", param_count(spec, active=True) / 1e9, "1e9"),
             ("weights_gb", weight_bytes(spec) / 1e9, "GB")]
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]


def _fit_rows(cm: CostModel, seq_tokens: int) -> list[dict]:
    gpu, spec = cm.profile.gpu, cm.spec
    kv_gib = cm.hbm_kv_capacity_bytes() / GIB
    one_gpu = cm.weight_bytes / GIB <= gpu.hbm_gib
    rows = [("gpu", f"{gpu.model} ({cm.profile.name})", ""),
            ("weights_fit_one_gpu", "yes" if one_gpu else
             f"no: {cm.weight_bytes / GIB:.1f} GiB > {gpu.hbm_gib:g} GiB HBM", ""),
            ("layout", cm.layout.describe(), ""),
            ("gpus_per_replica_tp", cm.tp, "GPUs"),
            ("gpu_link", f"{cm.profile.gpu_link_kind} {cm.profile.gpu_link_gbps:g}",
             "GB/s per direction"),
            ("hbm_per_gpu_gib", gpu.hbm_gib, "GiB"),
            ("weights_per_gpu_gib", cm.weight_bytes_per_gpu / GIB, "GiB"),
            ("activation_reserve_per_gpu_gib", cm.activation_reserve_bytes / GIB, "GiB"),
            ("kv_capacity_gib", kv_gib, "GiB (replica)"),
            ("kv_tokens_fit", int(kv_gib * GIB // cm.kv_bytes_per_token), "tokens (no window cap)")]
    rows += [(f"concurrent_seqs_at_{n // 1024}k",
              int(kv_gib * GIB // kv_bytes_for_context(spec, n, cm.kv_dtype)), "sequences")
             for n in sorted({*CONTEXTS, seq_tokens})]
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]


@app.command("show")
def show_cmd(
    name: Annotated[str | None, typer.Argument(help="Preset name (see `kvplan models list`).")
                    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A Hugging Face config.json "
                                                "(file or folder) instead of a preset.")] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="Hardware profile: show what fits "
                                            "after weights.")] = None,
    tp: TpOpt = None,
    dp: DpOpt = 1,
    ep: EpOpt = 1,
    expert_imbalance: ImbalanceOpt = 1.0,
    seq_tokens: Annotated[int, typer.Option("--seq-tokens", help="Sequence length for the "
                                            "concurrent-sequences row.", min=1)] = 8192,
    kv_dtype: KvDtypeOpt = "bf16",
    retain: Annotated[str | None, typer.Option(
        "--retain", help="Token-retention what-if (changes model quality): streaming:SINK,WINDOW "
        "(StreamingLLM) or h2o:FRAC (H2O-style keep share).")] = None,
    json_out: JsonOpt = False,
    out: OutDirOpt = None,
) -> None:
    """KV bytes per token, KV GiB at 8k/32k/128k, weights, and with --gpu what fits."""
    if (name is None) == (config is None):
        raise typer.BadParameter("give exactly one of NAME or --config PATH")
    choose("--kv-dtype", kv_dtype, tuple(KV_DTYPE_BITS))
    if out is not None:
        check_output_dir(out)
    retention = parse_retention(retain) if retain is not None else None
    spec = load_model(str(config) if config is not None else name)
    rows = _model_rows(spec, kv_dtype, retention)
    fit, layout_text = [], ""
    if gpu is not None:
        layout = Layout(tp=tp, dp=dp, ep=ep, expert_imbalance=expert_imbalance)
        cm = CostModel.build(spec, load_profile(gpu), kv_dtype, layout=layout)
        fit = _fit_rows(cm, seq_tokens)
        layout_text = f"layout: {cm.layout.describe()}" + (
            f"; tp {cm.tp} chosen: the fewest GPUs of {gpu} that hold the weights with room "
            "for KV (--tp to change)" if tp is None else "")
    if out is not None:
        frame = pl.DataFrame({"section": ["model"] * len(rows) + ["fit"] * len(fit),
                              "quantity": [r["quantity"] for r in rows + fit],
                              "value": [str(r["value"]) for r in rows + fit],
                              "unit": [r["unit"] for r in rows + fit]})
        write_frame(frame, out / "model.parquet", {"kvplan.model": spec.name})
    if json_out:
        print_json({"model": spec.name, "kv_dtype": kv_dtype, "source": spec.source,
                    "rows": rows, "fit": fit})
        return
    console.print(rich_table(f"{spec.name} (KV {kv_dtype})", rows))
    if fit:
        console.print(rich_table(f"Fit on {gpu} after weights", fit))
        console.print(layout_text, soft_wrap=True, markup=False, highlight=False)
