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
    moe_intermediate_size: int = 0
    """Width of one routed expert's gated MLP."""
    shared_intermediate_size: int = 0
    """Total width of the always-active shared experts of an MoE layer (0 = none): DeepSeek
    n_shared_experts x moe_intermediate_size, Qwen2-MoE shared_expert_intermediate_size."""
    dense_layers: tuple[int, ...] = ()
    """0-based layers of an MoE model whose MLP is dense (intermediate_size), not experts."""
    expert_weight_bytes_per_param: float = 0.0
    """Stored bytes per routed-expert weight (gpt-oss mxfp4: 4.25 bits); 0 = as the rest."""
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
    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts (0 for dense models)."""
        return self.num_layers - len(self.dense_layers) if self.is_moe else 0

    @property
    def expert_bytes_per_param(self) -> float:
        """Bytes per routed-expert weight."""
        return self.expert_weight_bytes_per_param or self.weight_bytes_per_param

    @property
    def windows(self) -> tuple[int, ...]:
        """Per-layer window (0 = global), always num_layers long."""
        return self.layer_windows or (0,) * self.num_layers


def list_models() -> list[str]:
    """Names of the bundled model presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def preset_for(model_id: str) -> str | None:
    """The bundled preset of a model name or Hugging Face id: the name itself, else the id's
    last part lower-cased (``meta-llama/Llama-3.1-8B`` -> ``llama-3.1-8b``); None if neither."""
    presets = list_models()
    for candidate in (model_id, model_id.rstrip("/").rsplit("/", 1)[-1].lower()):
        if candidate in presets:
            return candidate
    return None


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
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, nested too deeply, huge integer
        raise InputError(path, f"not valid UTF-8 JSON ({str(exc)[:80] or 'nested too deeply'})"
                         ) from None
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object (a Hugging Face config.json)")
    return data


def spec_from_config(cfg: dict[str, Any], *, name: str, path: Path | str) -> ModelSpec:
    """Build a ModelSpec from a parsed Hugging Face config.json (multimodal: its text_config)."""
    meta = _object(cfg, "_kvplan", path)
    if "num_hidden_layers" not in cfg:
        cfg = _object(cfg, "text_config", path) or cfg
    get = _Getter(cfg, path)
    layers = get.integer("num_hidden_layers", limit=MAX_LAYERS)
    heads = get.integer("num_attention_heads")
    hidden = get.integer("hidden_size")
    head_dim = get.integer("head_dim", hidden // heads)
    if head_dim == 0 and not cfg.get("kv_lora_rank"):
        raise InputError(path, f"hidden_size {hidden} // num_attention_heads {heads} is 0; "
                         "expected a head_dim >= 1", field="head_dim")
    return ModelSpec(
        name=name,
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=get.integer("num_key_value_heads", heads, lowest=1),
        head_dim=head_dim,
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
        source=str(meta.get("source", path))[:500],
        **_moe_fields(cfg, layers, get),
    )


MOE_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok",
            "experts_per_token", "moe_intermediate_size", "n_shared_experts",
            "shared_expert_intermediate_size", "decoder_sparse_step", "moe_layer_freq",
            "first_k_dense_replace")
"""Keys whose presence (with a non-zero value) marks a mixture-of-experts config."""
_EXPERT_COUNT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")
_TOP_K_KEYS = ("num_experts_per_tok", "experts_per_token")
_MOE_MODEL_TYPES = ("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "gpt_oss")


def _moe_fields(cfg: dict[str, Any], layers: int, get: _Getter) -> dict[str, Any]:
    """MoE fields of the four config families kvplan reads (docs/models.md, "Mixture of experts").

    Mixtral / gpt-oss: ``num_local_experts``, ``num_experts_per_tok`` (gpt-oss also
    ``experts_per_token``), expert width = ``intermediate_size``. Qwen2/3-MoE: ``num_experts``,
    ``moe_intermediate_size``, MoE every ``decoder_sparse_step``-th layer except
    ``mlp_only_layers``; Qwen2-MoE adds one shared expert of ``shared_expert_intermediate_size``.
    DeepSeek-V2/V3: ``n_routed_experts``, ``n_shared_experts`` x ``moe_intermediate_size``, the
    first ``first_k_dense_replace`` layers dense, then every ``moe_layer_freq``-th. A config
    that shows any MoE key or model type but lacks the expert count or top-k is an error.
    """
    marks = [k for k in MOE_KEYS if cfg.get(k)] or (
        ["model_type"] if cfg.get("model_type") in _MOE_MODEL_TYPES else [])
    if not marks:
        return {}
    count_key = next((k for k in _EXPERT_COUNT_KEYS if cfg.get(k) is not None), None)
    top_key = next((k for k in _TOP_K_KEYS if cfg.get(k) is not None), None)
    if count_key is None or top_key is None:
        missing = "the expert count (" + " / ".join(_EXPERT_COUNT_KEYS) + ")" if count_key is None \
            else "the experts per token (" + " / ".join(_TOP_K_KEYS) + ")"
        raise InputError(get.path, f"looks like a mixture-of-experts config ({marks[0]} = "
                         f"{cfg[marks[0]]!r:.40}) but {missing} is missing; kvplan will not read it "
                         "as a dense model", field=marks[0])
    experts, top_k = get.integer(count_key), get.integer(top_key)
    if top_k > experts:
        raise InputError(get.path, f"{top_k} experts per token exceed the {experts} experts",
                         field=top_key)
    width = get.integer("moe_intermediate_size", 0) or get.integer("intermediate_size")
    shared = get.integer("n_shared_experts", 0) * width
    shared = shared or get.integer("shared_expert_intermediate_size", 0)
    return {"num_experts": experts, "experts_per_token": top_k, "moe_intermediate_size": width,
            "shared_intermediate_size": shared, "dense_layers": _dense_layers(cfg, layers, get),
            "expert_weight_bytes_per_param": _expert_bytes(cfg)}


def _dense_layers(cfg: dict[str, Any], layers: int, get: _Getter) -> tuple[int, ...]:
    """Layers with a dense MLP: DeepSeek's first k and off-frequency layers, Qwen's
    ``mlp_only_layers`` and off-step layers (layer i is MoE when (i + 1) % step == 0)."""
    first = get.integer("first_k_dense_replace", 0)
    freq = get.integer("moe_layer_freq", 1) or 1
    step = get.integer("decoder_sparse_step", 1) or 1
    only = cfg.get("mlp_only_layers") or []
    if not isinstance(only, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                             for i in only):
        raise InputError(get.path, f"expected a list of layer indices, got {only!r:.40}",
                         field="mlp_only_layers")
    return tuple(i for i in range(layers)
                 if i < first or (i - first) % freq or (i + 1) % step or i in only)


def _expert_bytes(cfg: dict[str, Any]) -> float:
    """gpt-oss stores its experts in MXFP4: 4-bit values + one 8-bit scale per 32 -> 4.25 bits."""
    quant = cfg.get("quantization_config") or {}
    return 4.25 / 8 if isinstance(quant, dict) and quant.get("quant_method") == "mxfp4" else 0.0


MAX_LAYERS = 10_000
"""Most layers a config may declare (the largest models have about 130)."""
MAX_DIMENSION = 1 << 24
"""Largest value of any other integer field (widths, heads, experts, vocabulary)."""


def _object(cfg: dict[str, Any], key: str, path: Path | str) -> dict[str, Any]:
    """An optional sub-object of the config (absent or null: empty)."""
    value = cfg.get(key)
    if value is not None and not isinstance(value, dict):
        raise InputError(path, f"expected a JSON object, got {type(value).__name__}", field=key)
    return value or {}


class _Getter:
    """Typed reads from a config dict with one-line errors naming the file and field."""

    def __init__(self, cfg: dict[str, Any], path: Path | str) -> None:
        self.cfg, self.path = cfg, path

    def integer(self, key: str, default: int | None = None, *, lowest: int | None = None,
                limit: int = MAX_DIMENSION) -> int:
        """``key`` as an integer in lowest..limit; required when ``default`` is None, and
        then at least 1 (else at least 0) unless ``lowest`` says otherwise."""
        value = self.cfg.get(key)
        if value is None:
            if default is None:
                raise InputError(self.path, "missing (a positive integer is required)", field=key)
            return default
        if lowest is None:
            lowest = 1 if default is None else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            kind = "a positive" if lowest else "a non-negative"
            raise InputError(self.path, f"expected {kind} integer, got {value!r:.40}", field=key)
        if value > limit:
            raise InputError(self.path, f"expected at most {limit:,}, got {value:,}", field=key)
        return value


def _weight_bytes(cfg: dict[str, Any], path: Path | str) -> float:
    if _object(cfg, "quantization_config", path).get("quant_method") == "fp8":
        return 1.0
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise InputError(path, f"unknown dtype {dtype!r:.40} (expected one of "
                         f"{sorted(DTYPE_BYTES)})", field="torch_dtype")
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
        types = cfg["layer_types"]
        if not isinstance(types, list) or len(types) != layers:
            raise InputError(get.path, f"expected a list of num_hidden_layers ({layers}) "
                             "layer types", field="layer_types")
        return tuple(window if t == "sliding_attention" else 0 for t in types)
    if cfg.get("model_type") == "gemma2":
        return tuple(window if i % 2 == 0 else 0 for i in range(layers))
    if cfg.get("model_type") == "gemma3_text":
        every = get.integer("sliding_window_pattern", 6, lowest=1)
        return tuple(0 if (i + 1) % every == 0 else window for i in range(layers))
    if cfg.get("use_sliding_window"):
        first = get.integer("max_window_layers", 0)
        return tuple(window if i >= first else 0 for i in range(layers))
    return (window,) * layers
