"""Import vLLM 0.34.0's argument parser, config and v1 scheduler on a CPU-only machine.

vLLM's wheel pulls a CUDA PyTorch and about 9 GB of CUDA libraries. None of that is needed to
parse arguments, build a ``VllmConfig`` or run the scheduler, so the lightest venv that works
(2.2 GB, most of it CPU PyTorch; measured on this 2-core VM) is::

    python3.11 -m venv /work/venvs/engines
    P=/work/venvs/engines/bin/pip
    $P install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    $P install --no-deps vllm==0.34.0
    $P install --no-deps transformers==5.19.0 "fastapi>=0.133,<0.137" xgrammar==0.2.8 \\
        apache-tvm-ffi==0.1.11 "llguidance>=1.7,<1.8" aiohappyeyeballs aiohttp aiosignal \\
        annotated-doc annotated-types anyio attrs cachetools cbor2 certifi cloudpickle \\
        filelock frozenlist fsspec h11 httpcore2 httpx2 huggingface_hub idna jinja2 \\
        markupsafe msgspec multidict numpy openai openai-harmony packaging \\
        partial-json-parser pillow prometheus_client propcache psutil py-cpuinfo pybase64 \\
        pydantic pydantic-core pyyaml pyzmq regex requests safetensors sniffio starlette \\
        tokenizers tqdm truststore typing-extensions typing-inspection urllib3 uvloop yarl

(``--no-deps`` everywhere: a plain ``pip install vllm`` would pull the CUDA stack.) What the
CUDA build would load at import time is stood in for by :func:`setup`:

- ``vllm._C_stable_libtorch`` (custom ops, compiled against CUDA PyTorch 2.14): an empty module;
- the platform: a CUDA platform that answers as one H100 (capability 9.0, 80 GiB) instead of
  asking NVML, so attention-backend and block-size rules are the CUDA ones;
- model inspection, which vLLM runs in a subprocess that imports the model's CUDA kernels: a
  stand-in ``LlamaForCausalLM`` with the text-generation interface, inspected in process.

Nothing else is changed: the parser, ``EngineArgs.create_engine_config()``, the KV cache
manager and the scheduler are vLLM's own code.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

KVPLAN = Path(__file__).resolve().parents[1]
VLLM_VERSION = "0.34.0"


def setup() -> None:
    """Stand in for what needs CUDA; call before anything imports ``vllm.platforms``."""
    sys.modules.setdefault("vllm._C_stable_libtorch", types.ModuleType("vllm._C_stable_libtorch"))
    import torch
    import vllm
    import vllm.model_executor.models.registry as registry
    import vllm.platforms as platforms
    from vllm.platforms.cuda import CudaPlatformBase
    from vllm.platforms.interface import DeviceCapability

    if vllm.__version__ != VLLM_VERSION:
        raise SystemExit(f"expected vLLM {VLLM_VERSION}, found {vllm.__version__}")

    class H100(CudaPlatformBase):
        @classmethod
        def get_device_capability(cls, device_id: int = 0) -> DeviceCapability:
            return DeviceCapability(9, 0)

        @classmethod
        def get_device_name(cls, device_id: int = 0) -> str:
            return "NVIDIA H100 80GB HBM3"

        @classmethod
        def get_device_total_memory(cls, device_id: int = 0) -> int:
            return 80 << 30

        @classmethod
        def is_fully_connected(cls, physical_device_ids: list[int]) -> bool:
            return True

        @classmethod
        def device_count(cls) -> int:
            return 8

    class LlamaForCausalLM(torch.nn.Module):
        def __init__(self, *, vllm_config, prefix: str = "") -> None:
            super().__init__()

        def embed_input_ids(self, input_ids):
            return input_ids

        def forward(self, input_ids, positions, intermediate_tensors=None, inputs_embeds=None):
            return input_ids

        def compute_logits(self, hidden_states):
            return hidden_states

    platforms.current_platform = H100()
    registry._run_in_subprocess = lambda fn: fn()
    registry._LazyRegisteredModel.load_model_cls = lambda self: LlamaForCausalLM
    registry._LazyRegisteredModel._get_module_hash = lambda self: None


def model_dir(folder: Path, preset: str = "llama-3.1-8b") -> Path:
    """A model directory holding only kvplan's copy of the preset's Hugging Face config.json."""
    cfg = json.loads((KVPLAN / "kvplan" / "model" / "presets" / f"{preset}.json").read_text())
    cfg.pop("_kvplan", None)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder
