"""``Req``, one request's progress in event mode, and the token-to-block arithmetic both modes
share.

A request holds ``ceil(tokens / block_size)`` HBM blocks for the tokens whose KV it has
computed: its full prompt blocks are shared cached blocks, the rest (the prompt's partial
last block and the generated tokens' blocks) are private to it. Its prefix lookup may reuse
at most ``num_tokens - 1`` tokens (vLLM keeps one token to compute, so the first output
token has logits). Worked example, block size 16, prompt 40 tokens (2 full blocks), 20
output tokens::

    lookup limit      (40 - 1) // 16 = 2 blocks
    prefill holds     ceil(40 / 16) = 3 blocks: 2 prompt blocks + 1 partial (private)
    decode computes   tokens 40 .. 58 (the last output token's KV is never computed), so it
                      ends holding ceil(59 / 16) = 4 blocks: 1 more private block
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def blocks_for(tokens: int, block_size: int) -> int:
    """Blocks holding ``tokens`` tokens. Example: 40 tokens of 16 -> 3."""
    return -(-tokens // block_size)


@dataclass(frozen=True)
class Shapes:
    """Per request, what both modes need besides its prompt blocks (module docstring)."""

    limit_blocks: np.ndarray
    """int64: most prompt blocks its lookup may reuse, (input_tokens - 1) // block_size."""
    tail_blocks: np.ndarray
    """int64: private blocks its prefill holds beyond the full prompt blocks (0 or 1)."""
    decode_blocks: np.ndarray
    """int64: private blocks its decode adds."""

    @classmethod
    def of(cls, input_tokens: np.ndarray, output_tokens: np.ndarray, block_size: int
           ) -> Shapes:
        """Example: block 16, input [40], output [20] -> limit [2], tail [1], decode [1]."""
        inp = np.asarray(input_tokens, dtype=np.int64)
        out = np.maximum(np.asarray(output_tokens, dtype=np.int64), 1)
        prefill = -(-inp // block_size)
        return cls(limit_blocks=np.maximum(inp - 1, 0) // block_size,
                   tail_blocks=prefill - inp // block_size,
                   decode_blocks=-(-(inp + out - 1) // block_size) - prefill)


class Req:
    """One request's progress, storage state and per-request statistics (event mode)."""

    __slots__ = (
        "idx", "session", "arrival_s", "prompt", "out", "blocks", "generated", "computed",
        "n_cached", "n_private", "pending", "park_start_s", "catching_up", "admissions",
        "swapped", "swap_cached", "swap_computed", "first_admit_s", "first_token_s",
        "load_stall_s", "hit_blocks", "readmit_hit_tokens", "prefill_tokens",
        "recomputed_tokens", "preemptions", "run_seq", "tick0", "member_id", "load_copy_s",
    )

    def __init__(self, idx: int, session: int, arrival_s: float, prompt: int, out: int,
                 blocks: np.ndarray) -> None:
        self.idx, self.session, self.arrival_s = idx, session, arrival_s
        self.prompt, self.out, self.blocks = prompt, out, blocks
        """``blocks``: dense ids of its full prompt blocks, head first (int64, contiguous)."""
        self.generated = self.computed = self.n_cached = self.n_private = self.pending = 0
        self.park_start_s = 0.0
        self.catching_up = False
        self.admissions = self.swapped = self.swap_cached = self.swap_computed = 0
        self.first_admit_s = self.first_token_s = float("nan")
        self.load_stall_s = 0.0
        self.load_copy_s = 0.0
        """Layer-wise loading: the copy it last waited on, until its next chunk runs."""
        self.hit_blocks = (0, 0, 0)
        self.readmit_hit_tokens = self.prefill_tokens = self.recomputed_tokens = 0
        self.preemptions = 0
        self.run_seq = 0
        """Order of joining ``running`` (scheduler)."""
        self.tick0 = self.member_id = -1
        """While decoding: tick its fields are as of, and its membership (kvplan.sim.decoding)."""

    @property
    def num_tokens(self) -> int:
        """Prompt plus tokens generated so far (vLLM's ``num_tokens``)."""
        return self.prompt + self.generated
