"""Moves: what the placement rules decide to copy between neighbouring tiers.

A move is one hop (``src`` -> ``dst``, neighbouring tiers, so one link) of a batch of blocks,
of one *kind*. The rules append moves to a queue in the state; whoever runs the core applies
them: cache mode at once, in queue order (:func:`kvplan.sim.core.rules.drain`); event mode
hands each to a link (kvplan.sim.transfers) and calls ``rules.land`` when it arrives. A hop
into an absent DRAM tier is the bounce buffer on the way to SSD: landing forwards it.

Table row (MOVE_WORDS words), blocks in a separate buffer::

    ID      unique, increasing (the event mode's transfer id)
    KIND    LOAD (a request's prefix into HBM), STAGE (prefetch into HBM), PROMOTE (SSD ->
            DRAM only), STORE (a copy down by the store rule), DEMOTE (an evicted block down)
    SRC DST tiers of the hop        START COUNT   its blocks in the block buffer
    PARENT  the move whose landing started this hop (-1: none), e.g. SSD -> DRAM -> HBM
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from kvplan.sim.core.layout import (
    MB_TAIL,
    MBLK_AT,
    MBLK_CAP,
    MOVES_AT,
    MOVES_CAP,
    MQ_HEAD,
    MQ_TAIL,
    NEXT_MOVE_ID,
    I,
    M,
    V,
    compiled,
    inline,
)


class MoveKind(IntEnum):
    """Why blocks move (a move's KIND word)."""

    LOAD = 0
    STAGE = 1
    PROMOTE = 2
    STORE = 3
    DEMOTE = 4


LOAD, STAGE, PROMOTE, STORE, DEMOTE = (int(k) for k in MoveKind)
MOVE_WORDS = 7
ID, KIND, SRC, DST, START, COUNT, PARENT = range(MOVE_WORDS)


@compiled(I(M, I, I, I, M, I))
def push(m, kind, src, dst, blocks, parent):
    """Queue a move of ``blocks`` (an array); returns its id."""
    row, start, n = m[MQ_TAIL], m[MB_TAIL], len(blocks)
    if row >= m[MOVES_CAP] or start + n > m[MBLK_CAP]:
        raise ValueError("core move queue full")
    at = m[MOVES_AT] + row * MOVE_WORDS
    mid = m[NEXT_MOVE_ID]
    m[NEXT_MOVE_ID] = mid + 1
    m[at + ID], m[at + KIND], m[at + SRC], m[at + DST] = mid, kind, src, dst
    m[at + START], m[at + COUNT], m[at + PARENT] = start, n, parent
    base = m[MBLK_AT] + start
    for i in range(n):
        m[base + i] = blocks[i]
    m[MQ_TAIL] = row + 1
    m[MB_TAIL] = start + n
    return mid


@inline
def row_at(m, row):
    """Offset of queue row ``row``."""
    return m[MOVES_AT] + row * MOVE_WORDS


@inline
def blocks_of(m, at):
    """The blocks of the move at offset ``at`` (a view into the block buffer)."""
    base = m[MBLK_AT] + m[at + START]
    return m[base:base + m[at + COUNT]]


@compiled(V(M))
def clear(m):
    """Empty the queue (its moves were applied or handed over)."""
    m[MQ_HEAD] = m[MQ_TAIL] = m[MB_TAIL] = 0


@dataclass(frozen=True, slots=True)
class Move:
    """A queued move read out to Python (event mode hands each to a link)."""

    id: int
    kind: int
    src: int
    dst: int
    blocks: np.ndarray
    """int64 block ids (a copy)."""
    parent: int


def take(m: np.ndarray) -> list[Move]:
    """The queued moves, in queue order, and an empty queue (from Python, no compiled call)."""
    n = int(m[MQ_TAIL])
    if not n:
        return []
    rows = m[m[MOVES_AT]:m[MOVES_AT] + n * MOVE_WORDS].reshape(n, MOVE_WORDS)
    base = int(m[MBLK_AT])
    out = [Move(int(r[ID]), int(r[KIND]), int(r[SRC]), int(r[DST]),
                m[base + r[START]:base + r[START] + r[COUNT]].copy(), int(r[PARENT]))
           for r in rows]
    m[MQ_HEAD] = m[MQ_TAIL] = m[MB_TAIL] = 0
    return out
