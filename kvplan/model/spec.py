"""ModelSpec: the architecture facts that turn tokens into KV bytes, weights and FLOPs.

One reader serves bundled presets (``kvplan/model/presets/<name>.json``, each a copy of the
model's Hugging Face ``config.json`` plus a ``_kvplan`` note with its source) and any local
``config.json`` a user points at. See docs/models.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvplan.errors import InputError, KvplanError

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "fp8": 1.0}
"""Bytes per weight element for the weight dtypes a config can declare."""


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer as far as memory and FLOPs are concerned."""

    name: str
    """Preset name or the config file's path."""
    num_layers: int
    """Transformer blocks (``num_hidden_layers``)."""
    hidden_size: int
    """Residual stream width."""
    num_heads: int
    """Query heads per layer."""
    num_kv_heads: int
    """KV heads per layer (= num_heads for MHA, 1 for MQA, between for GQA)."""
    head_dim: int
    """Width of one attention head (K and V) for MHA/GQA/MQA."""
    intermediate_size: int
    """Dense MLP width (gated: three hidden x intermediate matrices)."""
    vocab_size: int
    """Vocabulary size (embedding and LM-head rows)."""
    tie_word_embeddings: bool
    """LM head shares the input embedding matrix."""
    weight_bytes_per_param: float = 2.0
    """Stored bytes per weight (2 for bf16, 1 for fp8 checkpoints)."""
    layer_windows: tuple[int, ...] = ()
    """Per-layer sliding window in tokens, 0 = global attention; empty = all global."""
    kv_lora_rank: int = 0
    """MLA latent width (DeepSeek-V2/V3); 0 = not MLA."""
    q_lora_rank: int = 0
    """MLA query low-rank width; 0 = full-rank query projection."""
    qk_nope_head_dim: int = 0
    """MLA per-head query/key width without RoPE."""
    qk_rope_head_dim: int = 0
    """MLA decoupled RoPE key width, stored once per token beside the latent."""
    v_head_dim: int = 0
    """MLA per-head value width."""
    num_experts: int = 0
    """Routed experts per MoE layer; 0 = dense model."""
    experts_per_token: int = 0
    """Routed experts each token activates."""
    num_shared_experts: int = 0
    """Always-active shared experts per MoE layer (DeepSeek)."""
    moe_intermediate_size: int = 0
    """Width of one expert's MLP (defaults to intermediate_size)."""
    first_dense_layers: int = 0
    """Leading layers with a dense MLP instead of experts (DeepSeek first_k_dense_replace)."""
    source: str = ""
    """Where the numbers come from (a URL for presets, the file path otherwise)."""

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention: one compressed latent per token and layer."""
        return self.kv_lora_rank > 0

    @property
    def is_moe(self) -> bool:
        """Mixture of experts: only experts_per_token of num_experts run per token."""
        return self.num_experts > 0

    @property
    def windows(self) -> tuple[int, ...]:
        """Per-layer window (0 = global), always num_layers long."""
        return self.layer_windows or (0,) * self.num_layers


def list_models() -> list[str]:
    """Names of the bundled model presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def load_model(name_or_path: str) -> ModelSpec:
    """A bundled preset by name, or a Hugging Face ``config.json`` (file or its folder)."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        preset = PRESETS_DIR / f"{name_or_path}.json"
        if not preset.is_file():
            raise KvplanError(
                f"unknown model '{name_or_path}': not a file and not a preset "
                f"(presets: {', '.join(list_models())})"
            )
        return spec_from_config(_read_json(preset), name=name_or_path, path=preset)
    return spec_from_config(_read_json(path), name=str(path), path=path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object (a Hugging Face config.json)")
    return data


def spec_from_config(cfg: dict[str, Any], *, name: str, path: Path | str) -> ModelSpec:
    """Build a ModelSpec from a parsed Hugging Face config.json (multimodal: its text_config)."""
    cfg = cfg.get("text_config", cfg) if "num_hidden_layers" not in cfg else cfg
    get = _Getter(cfg, path)
    layers = get.integer("num_hidden_layers")
    heads = get.integer("num_attention_heads")
    hidden = get.integer("hidden_size")
    meta = cfg.get("_kvplan", {})
    return ModelSpec(
        name=name,
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=get.integer("num_key_value_heads", heads),
        head_dim=get.integer("head_dim", hidden // heads),
        intermediate_size=get.integer("intermediate_size"),
        vocab_size=get.integer("vocab_size"),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        weight_bytes_per_param=_weight_bytes(cfg, path),
        layer_windows=_layer_windows(cfg, layers, get),
        kv_lora_rank=get.integer("kv_lora_rank", 0),
        q_lora_rank=get.integer("q_lora_rank", 0),
        qk_nope_head_dim=get.integer("qk_nope_head_dim", 0),
        qk_rope_head_dim=get.integer("qk_rope_head_dim", 0),
        v_head_dim=get.integer("v_head_dim", 0),
        num_experts=get.integer("num_local_experts", get.integer("n_routed_experts", 0)),
        experts_per_token=get.integer("num_experts_per_tok", 0),
        num_shared_experts=get.integer("n_shared_experts", 0),
        moe_intermediate_size=get.integer("moe_intermediate_size", get.integer("intermediate_size")),
        first_dense_layers=get.integer("first_k_dense_replace", 0),
        source=str(meta.get("source", path)),
    )


class _Getter:
    """Typed reads from a config dict with one-line errors naming the file and field."""

    def __init__(self, cfg: dict[str, Any], path: Path | str) -> None:
        self.cfg, self.path = cfg, path

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.cfg.get(key)
        if value is None:
            if default is None:
                raise InputError(self.path, "missing (a positive integer is required)", field=key)
            return default
        lowest = 1 if default is None else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            kind = "a positive" if lowest else "a non-negative"
            raise InputError(self.path, f"expected {kind} integer, got {value!r}", field=key)
        return value


def _weight_bytes(cfg: dict[str, Any], path: Path | str) -> float:
    quant = cfg.get("quantization_config") or {}
    if quant.get("quant_method") == "fp8":
        return 1.0
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    if dtype not in DTYPE_BYTES:
        raise InputError(path, f"unknown dtype {dtype!r} (expected one of {sorted(DTYPE_BYTES)})",
                         field="torch_dtype")
    return DTYPE_BYTES[dtype]


def _layer_windows(cfg: dict[str, Any], layers: int, get: _Getter) -> tuple[int, ...]:
    """Per-layer sliding windows following the transformers conventions for each family.

    ``layer_types`` wins when present; Gemma-2 alternates (even layers sliding); Gemma-3
    slides except every ``sliding_window_pattern``-th layer; Qwen2 slides layers at or above
    ``max_window_layers`` only when ``use_sliding_window``; otherwise a non-null
    ``sliding_window`` applies to every layer (Mistral-7B-v0.1).
    """
    window = cfg.get("sliding_window")
    if not window or cfg.get("use_sliding_window") is False:
        return ()
    window = get.integer("sliding_window")
    if "layer_types" in cfg:
        return tuple(window if t == "sliding_attention" else 0 for t in cfg["layer_types"])
    if cfg.get("model_type") == "gemma2":
        return tuple(window if i % 2 == 0 else 0 for i in range(layers))
    if cfg.get("model_type") == "gemma3_text":
        every = get.integer("sliding_window_pattern", 6)
        return tuple(0 if (i + 1) % every == 0 else window for i in range(layers))
    if cfg.get("use_sliding_window"):
        first = get.integer("max_window_layers", 0)
        return tuple(window if i >= first else 0 for i in range(layers))
    return (window,) * layers
