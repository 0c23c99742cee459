"""Text -> token ids: a built-in estimator, a real tokenizer by name, or a ``tokenizer.json``.

The estimator needs no vocabulary. It splits UTF-8 text the way byte-level BPE pre-tokenizers
do (letters, digits, punctuation, spaces, line breaks; a single space joins the word after
it), then cuts each run into pieces of a typical BPE token's width:

    class          piece width   e.g.
    letters        11 bytes      " token" -> 1, " tokenization" -> 2 (" tokenizati" "on")
    digits         3 digits      "2024" -> 2, as GPT-4/Llama-3 split numbers
    punctuation    5 bytes       "()" -> 1, "```" -> 1, "======" -> 2
    spaces         16 bytes      8-space indent -> 1
    line breaks    4 bytes       "\\n\\n" -> 1
    3/4-byte chars 1 char        CJK ideographs, emoji: 1 each

The widths are fitted (``python bench/bench_tokens.py --fit``) to the five named tokenizers
of :mod:`kvplan.trace.tokenizers` on the bundled chat, MT-Bench and agent texts: the widest
error of the total count over every tokenizer and text set is the least.

Each piece's id is a 64-bit FNV-1a hash of its bytes, so equal text gives equal ids and the
block hashes of shared prefixes agree. Its error against real tokenizers is in docs/workload.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from kvplan.trace.framing import ESTIMATOR_FRAMING, ChatFraming
from kvplan.trace.tokenizers import NAMED, check_name, load_json, load_named

_WIDTH = np.array([11, 3, 5, 16, 4, 4], dtype=np.int64)  # letters digits punct space newline wide


@njit(cache=True)
def _char_class(b):
    if (b >= 97 and b <= 122) or (b >= 65 and b <= 90) or (b >= 0xC0 and b < 0xE0) or b == 95:
        return 0
    if b >= 48 and b <= 57:
        return 1
    if b == 32:
        return 3
    if b == 10 or b == 13 or b == 9:
        return 4
    if b >= 0xE0:
        return 5
    return 2


@njit(cache=True)
def _estimate(data, offsets, width):
    out = np.empty(data.shape[0] + 1, dtype=np.uint64)
    counts = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    prime = np.uint64(0x100000001B3)
    n = 0
    for m in range(offsets.shape[0] - 1):
        i, end = offsets[m], offsets[m + 1]
        start_n = n
        while i < end:
            j = i
            lead = data[i] == 32 and i + 1 < end and _char_class(data[i + 1]) in (0, 2)
            if lead:
                j += 1
            c = _char_class(data[j])
            k = j + 1
            if c == 5:
                while k < end and data[k] >= 0x80 and data[k] < 0xC0:
                    k += 1
            else:
                while k < end and (_char_class(data[k]) == c
                                   or (c == 0 and data[k] >= 0x80 and data[k] < 0xC0)):
                    k += 1
            w = width[c]
            p = j
            while p < k:
                q = min(p + w, k)
                h = np.uint64(0xCBF29CE484222325)
                for t in range(i if p == j else p, q):
                    h = (h ^ np.uint64(data[t])) * prime
                out[n] = h
                n += 1
                p = q
            i = k
        counts[m] = n - start_n
    return out[:n], counts


def estimate_tokens(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo token ids of each text ``data[offsets[m]:offsets[m+1]]`` (UTF-8 bytes).

    Returns (flat ids, count per text). Example: b"Hello world" -> 2 ids ("Hello", " world").
    """
    return _estimate(np.ascontiguousarray(data, dtype=np.uint8),
                     np.ascontiguousarray(offsets, dtype=np.int64), _WIDTH)


@dataclass(frozen=True)
class TextTokenizer:
    """Turns a batch of texts into flat token ids + counts, and frames chat messages.

    ``spec`` is None (the built-in estimator), a name of :data:`kvplan.trace.tokenizers.NAMED`
    (a real tokenizer with its family's chat framing), or the path of a local Hugging Face
    ``tokenizer.json`` (framed like the estimator).
    """

    spec: str | None = None

    def __post_init__(self) -> None:
        if self.spec is not None:
            object.__setattr__(self, "spec", str(self.spec))
            check_name(self.spec)

    @property
    def name(self) -> str:
        return "estimator" if self.spec is None else self.spec

    @property
    def framing(self) -> ChatFraming:
        """Tokens around each chat message (docs/workload.md, "Chat framing")."""
        if self.spec in NAMED:
            return load_named(self.spec)[1]
        return ESTIMATOR_FRAMING

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(flat uint64 ids, int64 count per text) for a batch of texts."""
        if self.spec is None:
            encoded = [t.encode("utf-8", errors="replace") for t in texts]
            lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
            offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            return estimate_tokens(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)
        backend = (load_named(self.spec)[0] if self.spec in NAMED
                   else load_json(Path(self.spec)))
        encoded_ids = backend.encode_batch(list(texts))
        counts = np.fromiter((len(e) for e in encoded_ids), dtype=np.int64, count=len(texts))
        ids = np.fromiter((i for e in encoded_ids for i in e), dtype=np.uint64,
                          count=int(counts.sum()))
        return ids, counts
