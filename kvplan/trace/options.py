"""Options shared by the readers that must tokenize text or synthesize arrivals."""

from __future__ import annotations

from dataclasses import dataclass, field

from kvplan.errors import KvplanError
from kvplan.trace.arrivals import ArrivalSpec
from kvplan.trace.tokenizers import check_name
from kvplan.workload.validate import MAX_BLOCK_SIZE

TEXT_BLOCK_SIZE = 16
"""Default tokens per block for text traces, as vLLM's default block size."""


@dataclass(frozen=True)
class ReadOptions:
    """How to read a trace; readers ignore what does not apply to their format."""

    block_size: int | None = None
    """Tokens per block; None = the source's own (Mooncake 512, Parquet as written, text 16)."""
    tokenizer: str | None = None
    """For text traces: a tokenizer name (cl100k_base, llama-3, ...: kvplan.trace.tokenizers)
    or the path of a local Hugging Face tokenizer.json; None = the built-in estimator."""
    arrivals: ArrivalSpec = field(default_factory=ArrivalSpec)
    """Arrival synthesis for traces without timestamps."""

    def __post_init__(self) -> None:
        if self.block_size is not None and not 1 <= self.block_size <= MAX_BLOCK_SIZE:
            raise KvplanError(f"--block-size must be in 1..{MAX_BLOCK_SIZE:,}, got "
                              f"{self.block_size}")
        if self.tokenizer is not None:
            object.__setattr__(self, "tokenizer", str(self.tokenizer))
            check_name(self.tokenizer)

    @property
    def text_block_size(self) -> int:
        return self.block_size or TEXT_BLOCK_SIZE
