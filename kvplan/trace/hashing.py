"""Stable chained block hashes: identical prefixes share blocks, one differing token breaks the chain.

The chain runs over *units* (tokens, or a source trace's block ids) with a fixed seed, so the
same prefix hashes the same way in every session, file, run and machine (no Python ``hash()``)::

    units        t0   t1   t2   t3 | t4   t5   t6   t7 | t8  t9      (block_size = 4)
    chain        c0   c1   c2   c3 | c4   c5   c6   c7 | c8  c9      c_i = mix(c_{i-1}, t_i)
    block hash                  c3 |                c7 |  (tail not hashed)

A block's hash is the chain value at its last token, so it identifies the whole prefix up to
and including that block. Merging blocks of size ``b`` into blocks of size ``k*b`` therefore
just keeps every k-th hash (:func:`coarsen`), and hashing tokens directly at block size ``k*b``
gives the same values. A source whose tokens are unknown (Mooncake's 512-token ids) can also
be split into finer blocks that divide its own (:func:`refine`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kvplan.errors import KvplanError

CHAIN_SEED = np.uint64(0x6B7670_6C616E)  # "kvplan"


@njit(cache=True, inline="always")
def _fmix64(x):
    """MurmurHash3's 64-bit finalizer: a bijective avalanche mix of one uint64."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB93FE1A85EC3)
    x ^= x >> np.uint64(33)
    return x


@njit(cache=True)
def _chain(units, offsets, seed, out):
    k = np.uint64(0x9E3779B97F4A7C15)
    for r in range(offsets.shape[0] - 1):
        h = seed
        for i in range(offsets[r], offsets[r + 1]):
            h = _fmix64((h * k) ^ _fmix64(units[i] + k))
            out[i] = h
    return out


def chain_units(units: np.ndarray, offsets: np.ndarray,
                out: np.ndarray | None = None) -> np.ndarray:
    """Chain value at every unit of each sequence ``units[offsets[r]:offsets[r+1]]``.

    ``out`` (uint64, may be ``units`` itself) receives the chain instead of a new array.
    Example: two sequences [5, 6, 7] and [5, 6, 9] (offsets [0, 3, 6]) give chains whose
    first two values are equal and whose third values differ.
    """
    units = np.ascontiguousarray(units, dtype=np.uint64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    out = np.empty(units.shape[0], dtype=np.uint64) if out is None else out
    return _chain(units, offsets, CHAIN_SEED, out)


@njit(cache=True)
def _positions(starts, n_blocks, block_size):
    out = np.empty(n_blocks.sum(), dtype=np.int64)
    p = 0
    for r in range(starts.shape[0]):
        for j in range(n_blocks[r]):
            out[p] = starts[r] + block_size * (j + 1) - 1
            p += 1
    return out


def block_positions(starts: np.ndarray, n_blocks: np.ndarray, block_size: int) -> np.ndarray:
    """Flat indices of each row's block-end units: ``start + block_size*(j+1) - 1`` for j < n.

    Example: starts [0, 10], n_blocks [2, 1], block_size 4 -> [3, 7, 13].
    """
    return _positions(np.ascontiguousarray(starts, dtype=np.int64),
                      np.ascontiguousarray(n_blocks, dtype=np.int64), np.int64(block_size))


def coarsen(hashes: np.ndarray, offsets: np.ndarray, input_tokens: np.ndarray,
            old_block_size: int, new_block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge chained block hashes to a coarser block size; returns (flat hashes, offsets).

    Keeps every k-th hash (k = new/old), the one at the end of each merged block, and only the
    ``input_tokens // new_block_size`` full merged blocks. Example: old 512, new 1024, a
    1,600-token prompt with hashes [a, b, c] -> [b] (one full 1,024-token block).
    """
    if new_block_size % old_block_size or new_block_size < old_block_size:
        raise KvplanError(
            f"cannot convert block size {old_block_size} to {new_block_size}: the new block size "
            f"must be a multiple of {old_block_size} (finer blocks need the token content)")
    k = new_block_size // old_block_size
    n_new = np.asarray(input_tokens, dtype=np.int64) // new_block_size
    flat = np.asarray(hashes)[block_positions(np.asarray(offsets[:-1]), n_new, k)]
    new_offsets = np.zeros(len(n_new) + 1, dtype=np.int64)
    np.cumsum(n_new, out=new_offsets[1:])
    return flat, new_offsets


SUB_BLOCK_SALT = np.uint64(0x7375_6262_6C6F_636B)  # "subblock"
TAIL_SALT = np.uint64(0x7461_696C_0000_0000)  # "tail"


@njit(cache=True)
def _refine(hashes, offsets, n_new, k, out):
    p = 0
    for r in range(n_new.shape[0]):
        n_parent = offsets[r + 1] - offsets[r]
        for i in range(n_new[r]):
            j, s = i // k, np.uint64(i % k)
            if j < n_parent:
                parent = hashes[offsets[r] + j]
                out[p] = parent if s == k - 1 else _fmix64(parent ^ _fmix64(SUB_BLOCK_SALT + s))
            else:
                out[p] = _fmix64(_fmix64(TAIL_SALT + np.uint64(r)) ^ np.uint64(i))
            p += 1
    return out


def refine(hashes: np.ndarray, offsets: np.ndarray, input_tokens: np.ndarray,
           old_block_size: int, new_block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Split chained block hashes into a finer block size that divides the old one.

    With ``k = old / new``, sub-block ``s`` of parent block ``j`` (chained hash ``C_j``) hashes
    ``mix(C_j, s)``, and the last one (``s = k - 1``) keeps ``C_j`` itself, so merging back with
    :func:`coarsen` gives the parents. Two requests share sub-block ``i`` iff they share parent
    ``i // k``, and so every block before it: the chain property holds. Sub-blocks past the
    last full parent (inside the partial tail, whose content the parents do not identify) get
    hashes unique to their request. Example: old 512, new 256, a 1,300-token prompt with
    parents [A, B] -> [mix(A, 0), A, mix(B, 0), B, T] with ``T`` unique to the request.
    """
    if old_block_size % new_block_size:
        raise KvplanError(
            f"cannot convert block size {old_block_size} to {new_block_size}: a finer block "
            f"size must divide {old_block_size} (or a coarser one be a multiple of it)")
    n_new = np.asarray(input_tokens, dtype=np.int64) // new_block_size
    new_offsets = np.zeros(len(n_new) + 1, dtype=np.int64)
    np.cumsum(n_new, out=new_offsets[1:])
    out = np.empty(int(new_offsets[-1]), dtype=np.uint64)
    _refine(np.ascontiguousarray(hashes, dtype=np.uint64),
            np.ascontiguousarray(offsets, dtype=np.int64), n_new,
            np.uint64(old_block_size // new_block_size), out)
    return out, new_offsets


def reblock_hashes(hashes: np.ndarray, offsets: np.ndarray, input_tokens: np.ndarray,
                   old_block_size: int, new_block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`coarsen` to a larger block size, :func:`refine` to a smaller one."""
    if new_block_size < old_block_size:
        return refine(hashes, offsets, input_tokens, old_block_size, new_block_size)
    return coarsen(hashes, offsets, input_tokens, old_block_size, new_block_size)


CONTENT_FREE_BASE = np.uint64(0x6E6F636F_00000000)  # "noco"


def content_free_hashes(first_block: int, n: int) -> np.ndarray:
    """Unique hashes of blocks ``first_block .. first_block + n - 1`` of a lengths-only trace.

    Traces without content (Azure, BurstGPT) share no block, so block ``b`` (numbered through
    the whole workload in request order) hashes ``CONTENT_FREE_BASE + b``: distinct by
    construction, and consecutive, which Parquet's delta encoding stores in ~0 bits per hash.
    Example: requests with 2, 0 and 3 full blocks -> BASE + [0, 1], [], BASE + [2, 3, 4].
    """
    out = np.arange(first_block, first_block + n, dtype=np.uint64)
    out += CONTENT_FREE_BASE
    return out
