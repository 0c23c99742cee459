"""Named offsets into the core's state: one int64 array ``m`` and one float64 array ``f``.

Numba compiles the core, and every compiled operation takes the whole state as these two
arrays (two arguments: cheap to pass from Python; the core is compiled without reference
counting, see :func:`compiled`).
``m`` starts with a header of named words; the ``*_AT`` words hold where each region
starts. Each block has a record of BLOCK_WORDS words, zero when the block was never seen (so
a fresh state needs no initialisation pass); each tier ``t`` (0 HBM, 1 DRAM, 2 SSD) has a
header of TIER_WORDS at ``th(t)``, a *slot pool* of ``POOL`` slots (its resident blocks
and its policy's ghost entries, so a policy's structures grow with the tier, not with the
number of distinct blocks) and its policy's region::

    m:  [header | tier 0 | tier 1 | tier 2 | block records: n x [w_0, w_1, w_2, hits,
         origin, inflight, unseen, spare] | per tier: slot keys[POOL], free slots[POOL], pin
         flags[POOL], policy ints | future offsets[n + 1], cursors[n] and ranks (oracle only) | levels | out |
         scratch a, b, c | fresh | move table | move blocks]
    f:  [NOW, NOW_SEEN | policy floats per tier | distinct use times (oracle only)]

A record's word ``w_t`` packs the block's state in tier t::

    w_t = 0                              not in tier t (and no ghost entry)
    w_t = slot + 1                       not resident; the policy keeps a ghost entry in slot
    w_t = (refs + 1) << REF_SHIFT | (slot + 1)    resident in slot, refs users (0: cached)

Worked example: block 2 cached in DRAM slot 5 and in use by one request in HBM slot 0::

    record of block 2 at m[BLOCKS_AT] + 2 * BLOCK_WORDS:  [2 << 40 | 1, 1 << 40 | 6, 0, ...]

Built by :func:`kvplan.sim.core.state.build_state`; read from Python with :func:`tier_word`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from kvplan.hierarchy import Link, Tier

M = types.int64[::1]
"""Numba type of the int state ``m`` (and of block-id arrays)."""
F = types.float64[::1]
"""Numba type of the float state ``f``."""
I, B, V, R = types.int64, types.boolean, types.void, types.float64  # noqa: E741
"""Numba scalar types: int, bool, no result, float. Every compiled function of the core
declares its signature with these, so it is compiled once (at import, or loaded from numba's
cache), never once per literal argument type."""



def compiled(signature):
    """Compile a core operation for ``signature``: once, cached on disk, and without numba's
    reference counting (``_nrt=False``). The core never allocates: it works in arrays its
    caller owns, so nothing needs counting, and the counting numba would otherwise emit
    around array arguments of inlined helpers (atomic operations it cannot always prune
    inside loops) cost a third of the replay time."""
    return njit(signature, cache=True, _nrt=False)


inline = njit(inline="always", cache=True, _nrt=False)
"""Compile a core helper into each caller (numba inlines it where it is called)."""

NO_RC = {"_nrt": False}
"""``jit_options`` of the core's ``@overload`` implementations (see ``compiled``)."""

HBM, DRAM, SSD = int(Tier.HBM), int(Tier.DRAM), int(Tier.SSD)
H2D, D2H, SSD_READ, SSD_WRITE = (int(link) for link in Link)
NO_TIER = -1

STORE, EVICT = 0, 1
"""``copy_on`` codes (kvplan.sim.core.spec.TierRules)."""

# -- header words of m ----------------------------------------------------------------------
N_BLOCKS = 0
"""Dense block ids are 0 .. N_BLOCKS - 1."""
INCLUSIVE = 1
"""1: a block promoted upward keeps its lower copy."""
COPY_ON = 2
"""3 words, by tier (HBM's unused): STORE or EVICT."""
MIN_HITS = 5
"""3 words, by tier: prefix hits a block needs to enter the tier."""
PRIVATE = 8
"""HBM blocks reserved outside the HBM tier (private to requests; see rules.reserve)."""
BLOCKS_AT = 9
"""Block records."""
FUTURE_AT, CURSOR_AT, FUTURE_R_AT = 10, 11, 12
"""Oracle next uses (kvplan.sim.policies.belady): per block, its use times as ranks among the
distinct use times, sorted (CSR offsets[n + 1] and ranks), and a cursor per block (0: none)."""
LEVELS_AT, LEVELS_CAP = 13, 14
"""Lookup scratch: tier of each block of the last looked-up prefix."""
OUT_AT, OUT_CAP = 15, 16
"""Small results of the last operation (docstrings say which)."""
A_AT, B_AT, C_AT, SCRATCH_CAP = 17, 18, 19, 20
"""Three scratch block lists of SCRATCH_CAP words each."""
FRESH_AT, FRESH_N, FRESH_CAP = 21, 22, 23
"""Blocks committed since the last flush_stores (write-through candidates)."""
MOVES_AT, MOVES_CAP, MQ_HEAD, MQ_TAIL = 24, 25, 26, 27
"""Move table (MOVE_WORDS per move) and its queue ends (kvplan.sim.core.moves)."""
MBLK_AT, MBLK_CAP, MB_TAIL = 28, 29, 30
"""Blocks of the queued moves."""
NEXT_MOVE_ID = 31
LINK_BLOCKS = 32
"""4 words, by link: blocks moved (counted when a move is applied at once, cache mode)."""
DISTINCT_AT, N_DISTINCT, NOW_LO, NOW_HI = 36, 37, 38, 39
"""The distinct use times, sorted (in f); how many; and NOW's rank among them: how many are
< NOW and <= NOW (updated when NOW moves)."""
BELOW = 40
"""3 words, by tier: the next present tier below it (-1: none)."""
COUNTS_HITS = 43
"""1 when some tier's min_hits > 0 (prefix hits must be counted per block)."""
TIER_HDR = 44
"""First tier header."""

# -- block record words (at m[BLOCKS_AT] + BLOCK_WORDS * b) ----------------------------------
BLOCK_WORDS = 8
"""One 64-byte cache line (build_state aligns the records): a block's words cost one memory
access. The eighth word is spare."""
HITS, ORIGIN, INFLIGHT, UNSEEN = 3, 4, 5, 6
"""After the three tier words: prefix hits so far; 1 + the tier a staged block came from
(0: none); 1 + the id of the move loading it into HBM (0: none); 1 while the block sits in
HBM room a request reserved and the HBM policy has not been told of it
(kvplan.sim.core.tier.fill_reserved)."""
REF_SHIFT = 40
REF1 = 1 << REF_SHIFT
"""One user in a tier word."""
SLOT_MASK = REF1 - 1

# -- tier header words (at th(t)) -----------------------------------------------------------
TIER_WORDS = 12
CAP, CODE, USED, PINNED, PI, PF, PEAK, POOL, KEYS_AT, FREE_AT, FREE_N, PINS_AT = \
    range(TIER_WORDS)
"""Capacity in blocks; policy code; resident blocks; pinned blocks; policy int / float
region offsets; peak occupancy (HBM: resident + private); slots in the pool; slot -> block;
the free slots (a stack) and how many; slot -> 1 while its block is pinned (a copy of
``users(w_t) > 0`` next to the keys, so a victim search passing pinned blocks reads a small
array instead of one block record, a cache miss, per block; kept by ``set_pinned``)."""

# -- f ---------------------------------------------------------------------------------------
NOW = 0
"""Simulation time of the current operation (oracles compare next uses against it)."""
NOW_SEEN = 1
"""The NOW that NOW_LO / NOW_HI were computed for."""
F_HEADER = 2

HEADER = TIER_HDR + 3 * TIER_WORDS


@inline
def th(t):
    """Offset of tier ``t``'s header."""
    return TIER_HDR + t * TIER_WORDS


@inline
def word_at(m, b, w):
    """Offset of word ``w`` of block ``b``'s record."""
    return m[BLOCKS_AT] + BLOCK_WORDS * b + w


@inline
def ref_at(m, t, b):
    """Offset of block ``b``'s tier word ``w_t`` (module docstring)."""
    return m[BLOCKS_AT] + BLOCK_WORDS * b + t


@inline
def resident(w):
    """A tier word says the block is resident."""
    return w >= REF1


@inline
def users(w):
    """Users of a resident block (0: cached, evictable)."""
    return (w >> REF_SHIFT) - 1


@inline
def slot_of(w):
    """The slot a tier word names (-1: none)."""
    return (w & SLOT_MASK) - 1


@inline
def set_pinned(m, t, w):
    """Copy the pin state of tier word ``w`` (resident, just changed) to its slot's flag."""
    m[m[th(t) + PINS_AT] + slot_of(w)] = w >= 2 * REF1


def tier_word(m: np.ndarray, t: int, word: int) -> int:
    """A tier header word from Python. Example: tier_word(m, DRAM, USED) -> DRAM's blocks."""
    return int(m[TIER_HDR + t * TIER_WORDS + word])
