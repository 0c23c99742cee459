"""The tier rules, written once: prefix lookup, HBM reservations, loads, commits, stores,
demotions and landings. Cache mode and event mode both run requests through these.

Every operation takes the state ``(m, f)`` (kvplan.sim.core.layout) and queues the moves it
decides (kvplan.sim.core.moves); it never waits. A request's life, in the order both modes
call the operations (cache mode all at once, event mode spread over steps and events)::

    lookup(blocks, limit)         tier of each block of the longest stored prefix
    pin_prefix / reserve(n)       pin its HBM hits; room for n blocks (LOADs, or its first
                                  chunk when nothing loads), evicting cached blocks
    admit(blocks, hits)           count its hits, load its DRAM / SSD blocks into HBM
    ... landings, then reserve(first chunk) if it loaded ...
    commit(blocks, lo, hi)        blocks it computed become cached; flush_stores() at the
                                  end of the step copies them down (the store rule)
    reserve(...)                  its decode blocks, as they are needed
    touch_prefix / unpin_blocks / free_private      release

HBM capacity is accounted here only: capacity = resident blocks (the HBM tier, cached or
pinned) + PRIVATE (blocks reserved for requests: prompt tails, decode tokens, blocks being
computed or loaded) + free. ``reserve`` evicts cached blocks to make room and fails, with no
side effect, when the unpinned ones are too few.

Where blocks go (the rules of kvplan.sim.core.spec.TierRules): a DRAM or SSD hit is loaded
into HBM (SSD in two hops through DRAM); inclusive tiers keep the lower copy (a block read
from SSD is kept in DRAM too), exclusive ones drop it when it lands. A block enters a lower
tier by the *store* rule (when it qualifies: computed, landed above, or its prefix hits reach
``min_hits``) or the *evict* rule (evicted from the tier above and held by no lower tier);
a tier that does not take it ends the chain. Worked example, write-through, HBM + DRAM + SSD:
a computed block b is queued STORE HBM -> DRAM at ``flush_stores``; when it lands in DRAM
(inserted, maybe evicting a DRAM block, which write-through drops) it is queued STORE
DRAM -> SSD; landing there ends it. Blocks a lower tier already holds are not copied again.
"""

from __future__ import annotations

from kvplan.sim.core import moves, tier
from kvplan.sim.core.layout import (
    A_AT,
    B_AT,
    BELOW,
    BLOCK_WORDS,
    BLOCKS_AT,
    C_AT,
    CAP,
    COPY_ON,
    COUNTS_HITS,
    D2H,
    DRAM,
    EVICT,
    FRESH_AT,
    FRESH_CAP,
    FRESH_N,
    H2D,
    HBM,
    HITS,
    INCLUSIVE,
    INFLIGHT,
    LEVELS_AT,
    LINK_BLOCKS,
    MIN_HITS,
    MQ_HEAD,
    MQ_TAIL,
    NO_TIER,
    ORIGIN,
    OUT_AT,
    PEAK,
    PINNED,
    PRIVATE,
    REF1,
    SSD,
    SSD_READ,
    SSD_WRITE,
    STORE,
    USED,
    B,
    F,
    I,
    M,
    V,
    compiled,
    inline,
    ref_at,
    resident,
    set_pinned,
    th,
    word_at,
)
from kvplan.sim.core.moves import DEMOTE, LOAD, PROMOTE, STAGE
from kvplan.sim.policies import dispatch

# -- where blocks go down -----------------------------------------------------------------------


@inline
def _below(m, t):
    """The next present tier below ``t`` (-1: none)."""
    return m[BELOW + t]


@inline
def _takes(m, t, b, rule):
    """Tier ``t`` takes block ``b`` by ``rule`` (STORE or EVICT): its rule and hit count."""
    return m[COPY_ON + t] == rule and (
        m[MIN_HITS + t] == 0 or m[word_at(m, b, HITS)] >= m[MIN_HITS + t])


@inline
def _store_from(m, b, src):
    """Where the next STORE hop of ``b`` leaves from, going down from tier ``src`` (-1: none):
    past the lower tiers that already hold it, to the first that lacks it and takes it."""
    t = src
    while True:
        lower = _below(m, t)
        if lower == NO_TIER or not _takes(m, lower, b, STORE):
            return NO_TIER
        if not tier.contains(m, lower, b):
            return t
        t = lower


@inline
def _held_below(m, t, b):
    for lower in range(t + 1, 3):  # noqa: SIM110  (numba compiles no generators)
        if tier.contains(m, lower, b):
            return True
    return False


@compiled(V(M, I, I, I))
def _demote(m, t, victims, n):
    """Queue one DEMOTE hop for the blocks evicted from tier ``t`` (at m[victims:]) that the
    next present tier takes by the evict rule and no lower tier holds."""
    lower = _below(m, t)
    if lower == NO_TIER or m[COPY_ON + lower] != EVICT or n == 0:
        return
    out = m[C_AT]
    k = 0
    for i in range(n):
        v = m[victims + i]
        if _takes(m, lower, v, EVICT) and not _held_below(m, t, v):
            m[out + k] = v
            k += 1
    if k:
        moves.push(m, DEMOTE, t, t + 1, m[out:out + k], -1)


@inline
def _crossed(m, b, src):
    """Block ``b``'s hits just reached the ``min_hits`` of a tier below ``src`` that stores."""
    hits = m[word_at(m, b, HITS)]
    for lower in range(src + 1, 3):
        if tier.present(m, lower) and m[COPY_ON + lower] == STORE and hits == m[MIN_HITS + lower]:
            return True
    return False


@compiled(V(M, M, M, I, I))
def _queue_stores(m, blocks, src_of, n, parent):
    """Queue the STORE hops of ``blocks[:n]`` leaving from tier ``src_of[i]`` (-1: none):
    one batch HBM -> DRAM, then one DRAM -> SSD."""
    for src in range(2):
        out = m[B_AT]
        k = 0
        for i in range(n):
            if src_of[i] == src:
                m[out + k] = blocks[i]
                k += 1
        if k:
            moves.push(m, moves.STORE, src, src + 1, m[out:out + k], parent)


# -- lookup and HBM reservations --------------------------------------------------------------


@compiled(I(M, M, I))
def lookup(m, blocks, limit):
    """Tier of each block of the longest prefix of ``blocks[:limit]`` found in some tier, the
    fastest holding it, into m[LEVELS:]; returns its length. Chained hashes make the prefix
    stop at the first block no tier holds::

        blocks [a, b, c, d];  HBM {a}, DRAM {b, d}  ->  levels [HBM, DRAM], returns 2
    """
    out, rec = m[LEVELS_AT], m[BLOCKS_AT]
    n = max(min(limit, len(blocks)), 0)
    for i in range(n):
        r = rec + BLOCK_WORDS * blocks[i]
        level = NO_TIER
        for t in range(3):
            if resident(m[r + t]):
                level = t
                break
        if level == NO_TIER:
            return i
        m[out + i] = level
    return n


@compiled(I(M, I, I))
def count_level(m, hits, level):
    """How many of the last lookup's ``hits`` blocks were found in ``level``."""
    out = m[LEVELS_AT]
    n = 0
    for i in range(hits):
        n += m[out + i] == level
    return n


@compiled(I(M))
def room(m):
    """Blocks ``reserve`` can grant now: free + unpinned cached HBM blocks."""
    h = th(HBM)
    return m[h + CAP] - m[h + PINNED] - m[PRIVATE]


@compiled(B(M, I, M, I))
def fits(m, need, blocks, hits):
    """Whether ``reserve(need)`` would succeed once the HBM hits among ``blocks[:hits]``
    (the last lookup) are pinned, without pinning them."""
    h = th(HBM)
    short = need - (m[h + CAP] - m[h + USED] - m[PRIVATE])
    if short <= 0:
        return True
    levels = m[LEVELS_AT]
    unpinned_hits = 0
    for i in range(hits):
        if m[levels + i] == HBM and m[ref_at(m, HBM, blocks[i])] < 2 * REF1:
            unpinned_hits += 1
    return short <= m[h + USED] - m[h + PINNED] - unpinned_hits


@inline
def _add_ref(m, r, delta):
    """Add ``delta`` (+1 / -1) to the HBM refcount word ``m[r]`` and copy the pin state to its
    slot's flag; returns the change in the pinned count (+1 a block becomes pinned, -1 it
    becomes unpinned, else 0)."""
    if delta > 0:
        was_unpinned = m[r] < 2 * REF1
        m[r] += REF1
        set_pinned(m, HBM, m[r])
        return 1 if was_unpinned else 0
    m[r] -= REF1
    set_pinned(m, HBM, m[r])
    return -1 if m[r] < 2 * REF1 else 0


@compiled(V(M, M, I, I))
def _pin_hbm(m, blocks, hits, delta):
    """Add ``delta`` (+1 / -1) to the refcount of the last lookup's HBM hits."""
    levels, ref0, h = m[LEVELS_AT], m[BLOCKS_AT] + HBM, th(HBM)
    pinned = m[h + PINNED]
    for i in range(hits):
        if m[levels + i] == HBM:
            pinned += _add_ref(m, ref0 + BLOCK_WORDS * blocks[i], delta)
    m[h + PINNED] = pinned


@compiled(V(M, M, I))
def pin_prefix(m, blocks, hits):
    """Pin the HBM hits of the last lookup."""
    _pin_hbm(m, blocks, hits, 1)


@compiled(V(M, M, I))
def unpin_prefix(m, blocks, hits):
    _pin_hbm(m, blocks, hits, -1)


@compiled(B(M, F, I))
def reserve(m, f, n):
    """Reserve ``n`` private HBM blocks, evicting cached blocks (the evict rule may demote
    them). False, with no side effect, when free + unpinned blocks are fewer than ``n``."""
    h = th(HBM)
    short = n - (m[h + CAP] - m[h + USED] - m[PRIVATE])
    if short > 0:
        if short > m[h + USED] - m[h + PINNED]:
            return False
        got = dispatch.evict(m, f, HBM, short, m[A_AT], -1)
        for i in range(got):
            m[word_at(m, m[m[A_AT] + i], ORIGIN)] = 0
        _demote(m, HBM, m[A_AT], got)
    m[PRIVATE] += n
    if m[h + USED] + m[PRIVATE] > m[h + PEAK]:
        m[h + PEAK] = m[h + USED] + m[PRIVATE]
    return True


@compiled(V(M, I))
def free_private(m, n):
    """Return ``n`` private HBM blocks (a finished request's tail and decode blocks)."""
    m[PRIVATE] -= n


# -- admission: hits and loads ------------------------------------------------------------------


@compiled(V(M, I, M, M))
def _queue_loads(m, kind, from_dram, from_ssd):
    """One hop DRAM -> HBM and one SSD -> DRAM (its second hop is queued when it lands);
    their blocks are in flight into HBM until the last hop lands."""
    if len(from_dram):
        mid = moves.push(m, kind, DRAM, HBM, from_dram, -1)
        for b in from_dram:
            m[word_at(m, b, INFLIGHT)] = mid + 1
    if len(from_ssd):
        mid = moves.push(m, kind, SSD, DRAM, from_ssd, -1)
        for b in from_ssd:
            m[word_at(m, b, INFLIGHT)] = mid + 1


@inline
def _seen(m, at, n, value):
    for i in range(n):  # noqa: SIM110  (numba compiles no generators)
        if m[at + i] == value:
            return True
    return False


@compiled(I(M, F, M, I, I))
def _start_loads(m, f, blocks, hits, out):
    """Waits on in-flight HBM hits (their move ids to m[out + 4:]); DRAM / SSD hits take
    their reserved HBM room pinned, are touched where found, and are queued as loads."""
    levels = m[LEVELS_AT]
    from_dram, from_ssd, loaded = m[A_AT], m[B_AT], m[C_AT]
    n_dram = n_ssd = waits = 0
    for i in range(hits):
        b, level = blocks[i], m[levels + i]
        if level == HBM:
            mid = m[word_at(m, b, INFLIGHT)] - 1
            if mid >= 0 and not _seen(m, out + 4, waits, mid):
                m[out + 4 + waits] = mid
                waits += 1
        elif level == DRAM:
            m[from_dram + n_dram] = b
            m[loaded + n_dram + n_ssd] = b
            n_dram += 1
        else:
            m[from_ssd + n_ssd] = b
            m[loaded + n_dram + n_ssd] = b
            n_ssd += 1
    m[PRIVATE] -= n_dram + n_ssd
    dispatch.fill_reserved(m, f, HBM, m[loaded:loaded + n_dram + n_ssd], loaded)  # all new
    dispatch.touch_all(m, f, DRAM, m[from_dram:from_dram + n_dram], False)
    dispatch.touch_all(m, f, SSD, m[from_ssd:from_ssd + n_ssd], False)
    m[out + 3] = waits
    _queue_loads(m, LOAD, m[from_dram:from_dram + n_dram], m[from_ssd:from_ssd + n_ssd])
    return waits


@compiled(I(M, F, M, I))
def admit(m, f, blocks, hits):
    """A request's HBM room is reserved and its HBM hits pinned: count its hits and load the
    rest of its prefix (the last lookup's ``hits`` blocks) into HBM.

    Per block: its hit count goes up (the store rule may queue a copy down); it counts in the
    tier it was found in (a staged block: the tier it was staged from). DRAM / SSD blocks are
    inserted into HBM pinned now (their space is taken when the load starts), touched where
    found, and queued as one LOAD DRAM -> HBM and one LOAD SSD -> DRAM. Writes m[OUT:]:
    hits per tier (3 words), the number of in-flight loads it must wait for, their ids.
    """
    levels, counts = m[LEVELS_AT], m[COUNTS_HITS] == 1
    out = m[OUT_AT]
    m[out + HBM] = m[out + DRAM] = m[out + SSD] = 0
    src_of = m[C_AT]
    for i in range(hits):
        b, level = blocks[i], m[levels + i]
        counted = level
        if level == HBM and m[word_at(m, b, ORIGIN)] != 0:
            counted = m[word_at(m, b, ORIGIN)] - 1
            m[word_at(m, b, ORIGIN)] = 0
        m[out + counted] += 1
        m[src_of + i] = NO_TIER
        if counts:
            m[word_at(m, b, HITS)] += 1
            if _crossed(m, b, level):
                m[src_of + i] = _store_from(m, b, level)
    if counts:
        _queue_stores(m, blocks, m[src_of:src_of + hits], hits, -1)
    return _start_loads(m, f, blocks, hits, out)


# -- prefetch staging ---------------------------------------------------------------------------


@compiled(I(M, F, M, I, I, I))
def stage(m, f, blocks, hits, room_blocks, granted):
    """Prefetch: the first ``room_blocks`` DRAM / SSD blocks of the last lookup's prefix go
    into HBM (pinned, into ``granted`` reserved blocks; none when 0), remembering the tier
    each came from; SSD blocks beyond the room are promoted to DRAM only (when DRAM exists).
    Queues STAGE hops like a request's loads and one PROMOTE SSD -> DRAM. Writes the staged
    blocks to m[OUT:]; returns how many."""
    levels, out = m[LEVELS_AT], m[OUT_AT]
    from_dram, from_ssd, promote = m[A_AT], m[B_AT], m[C_AT]
    taken = n_dram = n_ssd = n_promote = 0
    for i in range(hits):
        b, level = blocks[i], m[levels + i]
        if level == HBM:
            continue
        if taken < room_blocks:
            taken += 1
            if granted:
                m[out + n_dram + n_ssd] = b
                m[word_at(m, b, ORIGIN)] = level + 1
                if level == DRAM:
                    m[from_dram + n_dram] = b
                    n_dram += 1
                else:
                    m[from_ssd + n_ssd] = b
                    n_ssd += 1
        elif level == SSD and tier.present(m, DRAM):
            m[promote + n_promote] = b
            n_promote += 1
    staged = n_dram + n_ssd
    m[PRIVATE] -= staged
    dispatch.fill_reserved(m, f, HBM, m[out:out + staged], m[C_AT] + n_promote)
    _queue_loads(m, STAGE, m[from_dram:from_dram + n_dram], m[from_ssd:from_ssd + n_ssd])
    if n_promote:
        moves.push(m, PROMOTE, SSD, DRAM, m[promote:promote + n_promote], -1)
    return staged


# -- compute and release ------------------------------------------------------------------------


@compiled(V(M, F, M, I, I))
def commit(m, f, blocks, lo, hi):
    """Blocks ``blocks[lo:hi]`` were computed into the request's private HBM blocks: each
    becomes a cached block pinned by the request (or pins the copy another request already
    made); new ones wait for ``flush_stores``."""
    n = m[FRESH_N]
    if n + hi - lo > m[FRESH_CAP]:
        raise ValueError("core fresh-block buffer full")
    m[FRESH_N] = n + dispatch.fill_reserved(m, f, HBM, blocks[lo:hi], m[FRESH_AT] + n)
    m[PRIVATE] -= hi - lo


@compiled(V(M, F))
def flush_stores(m, f):
    """The store rule for the blocks committed since the last flush (one batch per hop)."""
    fresh, n = m[FRESH_AT], m[FRESH_N]
    src_of = m[C_AT]
    for i in range(n):
        m[src_of + i] = _store_from(m, m[fresh + i], HBM)
    _queue_stores(m, m[fresh:fresh + n], m[src_of:src_of + n], n, -1)
    m[FRESH_N] = 0


@compiled(V(M, F, M, I))
def touch_prefix(m, f, blocks, n):
    """A finishing request used its ``n`` cached blocks: touch them tail first (vLLM frees a
    request's blocks in reverse order), so chain tails go first among equally recent ones."""
    dispatch.touch_all(m, f, HBM, blocks[:n], True)


@compiled(V(M, M, I))
def _ref_blocks(m, blocks, delta):
    """Add ``delta`` (+1 / -1) to the refcount of HBM blocks, in order."""
    ref0, h = m[BLOCKS_AT] + HBM, th(HBM)
    pinned = m[h + PINNED]
    for b in blocks:
        pinned += _add_ref(m, ref0 + BLOCK_WORDS * b, delta)
    m[h + PINNED] = pinned


@compiled(V(M, M))
def pin_blocks(m, blocks):
    """Pin HBM-resident blocks (a session prefetch's stage), in order."""
    _ref_blocks(m, blocks, 1)


@compiled(V(M, M))
def unpin_blocks(m, blocks):
    """Unpin HBM blocks (a request's prefix, a session's pins, staged blocks), in order."""
    _ref_blocks(m, blocks, -1)


# -- landings ----------------------------------------------------------------------------------


@compiled(V(M, F, I, M))
def _insert_lower(m, f, t, blocks):
    """Blocks land in DRAM or SSD: touched if there, else inserted (a full tier evicts one
    block per insert; the evict rule may demote DRAM's victims)."""
    _demote(m, t, m[A_AT], dispatch.place_all(m, f, t, blocks, m[A_AT]))


@compiled(V(M, I, M, I))
def _onward_to_ssd(m, kind, blocks, mid):
    """After a hop HBM -> DRAM: a STORE goes on to SSD when SSD takes it and lacks it; with
    DRAM absent (the hop was the bounce buffer) every block goes on that SSD lacks."""
    if not tier.present(m, SSD):
        return
    bounce = not tier.present(m, DRAM)
    if not bounce and kind != moves.STORE:
        return
    out = m[B_AT]
    k = 0
    for b in blocks:
        if (_store_from(m, b, DRAM) == DRAM) if not bounce else not tier.contains(m, SSD, b):
            m[out + k] = b
            k += 1
    if k:
        moves.push(m, kind, DRAM, SSD, m[out:out + k], mid)


@compiled(V(M, F, I, I, I, I, M))
def land(m, f, mid, kind, src, dst, blocks):
    """Move ``mid`` (``kind``, hop ``src`` -> ``dst``) arrived: apply the rules at ``dst``
    and queue its next hop, if any."""
    inclusive = m[INCLUSIVE] == 1
    if dst == HBM:
        for b in blocks:
            if m[word_at(m, b, INFLIGHT)] == mid + 1:
                m[word_at(m, b, INFLIGHT)] = 0
        if not inclusive:
            dispatch.remove_all(m, f, DRAM, blocks)
    elif src == SSD:
        if not inclusive:
            dispatch.remove_all(m, f, SSD, blocks)
        if tier.present(m, DRAM) and (inclusive or kind == PROMOTE):
            _insert_lower(m, f, DRAM, blocks)
        if kind != PROMOTE:
            nxt = moves.push(m, kind, DRAM, HBM, blocks, mid)
            for b in blocks:
                if m[word_at(m, b, INFLIGHT)] == mid + 1:
                    m[word_at(m, b, INFLIGHT)] = nxt + 1
    elif dst == DRAM:
        if tier.present(m, DRAM):
            _insert_lower(m, f, DRAM, blocks)
        _onward_to_ssd(m, kind, blocks, mid)
    else:
        _insert_lower(m, f, SSD, blocks)


# -- cache mode: moves applied at once ----------------------------------------------------------


@compiled(I(I, I))
def hop_link(src, dst):
    """The link between neighbouring tiers (kvplan.hierarchy.hop_link, compiled)."""
    if dst < src:
        return H2D if dst == HBM else SSD_READ
    return D2H if src == HBM else SSD_WRITE


@compiled(V(M, F))
def drain(m, f):
    """Apply every queued move at once, in queue order (moves its landings queue included),
    counting blocks per link: the transfer manager of cache mode."""
    while m[MQ_HEAD] < m[MQ_TAIL]:
        at = moves.row_at(m, m[MQ_HEAD])
        m[MQ_HEAD] += 1
        src, dst = m[at + moves.SRC], m[at + moves.DST]
        m[LINK_BLOCKS + hop_link(src, dst)] += m[at + moves.COUNT]
        land(m, f, m[at + moves.ID], m[at + moves.KIND], src, dst, moves.blocks_of(m, at))
    moves.clear(m)
