"""KV storage of the event simulator: requests' HBM blocks over the tier-rules core.

HBM holds two kinds of blocks (vLLM v1's block pool)::

    HBM capacity  |  cached prompt blocks (the HBM tier)      |  private blocks  |  free  |
                     pinned = in use by a request, a staging      prompt tail, decode
                     reservation or a session pin; unpinned =     tokens, swap-ins, and
                     cached, evicted lazily by the HBM policy     blocks being computed

A request's KV covers ``ceil(computed / block_size)`` blocks: its first ``n_cached`` are
shared prompt blocks pinned in the HBM tier, the rest ``n_private``. When a step completes a
prompt block, it turns from private into a cached block (or pins the copy another request
already computed). Every placement decision (lookup, reservations, loads, stores, demotions,
landings) is the core's (kvplan.sim.core.rules), the same rules cache mode runs; this class
keeps the per-request bookkeeping (engine behaviour: swaps, session pins, staging budgets,
the oracle's just-in-time loads) and hands the core's moves to the links
(kvplan.sim.transfers.TransferManager). Its methods return what the engine must schedule;
nothing is left in a mailbox.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from kvplan.hierarchy import Link, Tier
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core import layout as L
from kvplan.sim.core import moves, rules
from kvplan.sim.request import Req, blocks_for
from kvplan.sim.storageprefetch import WAIT_COMPLETE, StorageWait, kept_hits
from kvplan.sim.transfers import SharedLink, TransferManager, just_in_time_stall_s

HBM = int(Tier.HBM)


class KvStore:
    """A replica's KV storage: the core's tiers plus requests' private HBM blocks."""

    def __init__(self, config: ReplayConfig, state: tuple[np.ndarray, np.ndarray],
                 links: list[SharedLink], block_size: int, block_bytes: int,
                 just_in_time: bool, full_admission: bool = False,
                 from_arrival: bool = False, storage_wait: StorageWait = WAIT_COMPLETE) -> None:
        self.m, self.f = state
        self.bs = block_size
        self.block_bytes = block_bytes
        self.transfers = TransferManager(links, state, block_bytes)
        self.just_in_time = just_in_time
        self.from_arrival = from_arrival
        """Just-in-time loads may not start before their request arrives."""
        self.jit_free_at = [0.0] * len(links)
        self.swap = L.tier_word(self.m, Tier.DRAM, L.CAP) > 0
        """Preemption swaps private blocks to DRAM (a DRAM tier exists)."""
        self.staged: dict[int, np.ndarray] = {}
        """Request -> the blocks staged for it (pinned in HBM until it is admitted)."""
        self.staged_blocks = 0
        self.staged_copied: dict[int, int] = {}
        """Request -> blocks its stage copied into HBM (for the bytes staged but never used)."""
        self.staged_used_bytes = self.staged_unused_bytes = 0
        """Bytes copied into HBM by staging whose request was admitted / never came."""
        self.session_stages: OrderedDict[int, None] = OrderedDict()
        """Next turns staged by session prefetch, oldest first: an allocation that finds no
        room drops them (staging never holds HBM a running or admitted request needs)."""
        self.staging_cap = int(config.staging_budget_frac * L.tier_word(self.m, HBM, L.CAP))
        self.session_pins: OrderedDict[int, tuple[int, np.ndarray]] = OrderedDict()
        """Session -> (request that left the pins, its prompt blocks pinned in HBM)."""
        self.full_admission = full_admission
        """Admit only when HBM holds the whole sequence (SchedulerRules.full_admission)."""
        self.storage_wait = storage_wait
        """How long admission waits for SSD hits (kvplan.sim.storageprefetch)."""

    # -- HBM occupancy (read straight from the core's state) ----------------------------------

    def hbm_used(self) -> int:
        """Resident + private HBM blocks."""
        return L.tier_word(self.m, HBM, L.USED) + int(self.m[L.PRIVATE])

    def room(self) -> int:
        """HBM blocks a reservation could get now: free + unpinned cached."""
        return int(rules.room(self.m))

    # -- reservations, growth, commit, release -----------------------------------------------

    def alloc(self, n: int, now: float) -> bool:
        """Reserve ``n`` private HBM blocks, releasing session pins, then session stages
        (oldest first) if needed."""
        self.f[L.NOW] = now
        while not rules.reserve(self.m, self.f, n):
            if self.session_pins:
                rules.unpin_blocks(self.m, self.session_pins.popitem(last=False)[1][1])
            elif self.session_stages:
                self.staged_unused_bytes += self._drop_stage(next(iter(self.session_stages)))
            else:
                return False
        self._start(now)
        return True

    def grow(self, req: Req, computed_target: int, now: float) -> bool:
        """Allocate the blocks ``req`` needs to hold ``computed_target`` tokens."""
        need = blocks_for(computed_target, self.bs) - req.n_cached - req.n_private
        if need <= 0:
            return True
        if not self.alloc(need, now):
            return False
        req.n_private += need
        return True

    def commit(self, req: Req, now: float, computed: int | None = None) -> None:
        """Prompt blocks ``req`` completed become shared cached blocks (the store rule copies
        them down at ``end_step``): after a step, or when the step is scheduled, as if
        ``computed`` tokens were done (SchedulerRules.cache_at_schedule)."""
        full = min((req.computed if computed is None else computed) // self.bs, len(req.blocks))
        if full <= req.n_cached:
            return
        self.f[L.NOW] = now
        rules.commit(self.m, self.f, req.blocks, req.n_cached, full)
        req.n_private -= full - req.n_cached
        req.n_cached = full

    def end_step(self, now: float) -> None:
        """The blocks committed this step are copied down as one batch per hop."""
        self.f[L.NOW] = now
        rules.flush_stores(self.m, self.f)
        self._start(now)

    def release(self, req: Req, now: float, keep_pins: bool = False) -> None:
        """Free ``req``'s HBM blocks; its prompt blocks stay cached (pinned if ``keep_pins``)."""
        self.f[L.NOW] = now
        cached = req.blocks[:req.n_cached]
        rules.touch_prefix(self.m, self.f, req.blocks, req.n_cached)
        if keep_pins:
            self._release_session(req.session)
            self.session_pins[req.session] = (req.idx, cached)
        else:
            rules.unpin_blocks(self.m, cached)
        rules.free_private(self.m, req.n_private)
        req.n_cached = req.n_private = 0

    def expire_session_pins(self, session: int, req_idx: int) -> None:
        """The TTL of the pins ``req_idx`` left for its session ran out."""
        if self.session_pins.get(session, (-1,))[0] == req_idx:
            self._release_session(session)

    def _release_session(self, session: int) -> None:
        pins = self.session_pins.pop(session, None)
        if pins is not None:
            rules.unpin_blocks(self.m, pins[1])

    def swap_out(self, req: Req, now: float) -> None:
        """Preemption by swap: ``req``'s private blocks go to DRAM; it keeps its progress."""
        req.swap_cached, req.swap_computed, req.swapped = req.n_cached, req.computed, \
            req.n_private
        if req.n_private:
            self.transfers.start_bytes(now, Link.D2H, req.n_private * self.block_bytes)

    # -- admission ----------------------------------------------------------------------------

    def admit(self, req: Req, now: float, budget: int) -> tuple[int, float] | None:
        """Admit ``req`` if HBM has room for its loads (or its first chunk when nothing loads),
        and with ``full_admission`` for its whole sequence too.

        Returns ``(loads it waits on, unpark time)``: 0 loads means it runs this step; the
        unpark time is the oracle bound's (else inf). None, with no side effect, when HBM
        cannot hold it. A swapped-out request whose stored prefix is still complete gets its
        private blocks back over h2d instead of recomputing.
        """
        m, f, blocks = self.m, self.f, req.blocks
        f[L.NOW] = now
        hits = rules.lookup(m, blocks, (req.num_tokens - 1) // self.bs)
        if self.storage_wait is not WAIT_COMPLETE:
            hits = kept_hits(m[m[L.LEVELS_AT]:m[L.LEVELS_AT] + hits], self.bs, self.block_bytes,
                             self.transfers.links[Link.SSD_READ].alone_s, self.storage_wait)
        restore = req.swapped > 0 and hits >= req.swap_cached
        if restore:
            hits = req.swap_cached
        swap_in = req.swapped if restore else 0
        computed = req.swap_computed if restore else hits * self.bs
        n_load = hits - rules.count_level(m, hits, HBM) + swap_in
        chunk = min(req.num_tokens - computed, budget)
        first_chunk = blocks_for(computed + chunk, self.bs) - hits - swap_in
        # a request that loads is parked and grows when it runs, unless its loads are timed
        # just in time (oracle): then it may run at once and needs its first chunk's blocks
        need = n_load + first_chunk if self.just_in_time or not n_load else n_load
        whole = blocks_for(req.num_tokens, self.bs) - rules.count_level(m, hits, HBM)
        if not self.session_pins and not self.session_stages and not (
                rules.fits(m, need, blocks, hits) and (
                    not self.full_admission or rules.fits(m, whole, blocks, hits))):
            return None
        rules.pin_prefix(m, blocks, hits)
        self._release_session(req.session)
        if not self.alloc(need, now):
            rules.unpin_prefix(m, blocks, hits)
            return None
        waits = rules.admit(m, f, blocks, hits)
        out = int(m[L.OUT_AT])
        self._record(req, now, tuple(int(x) for x in m[out:out + 3]), hits)
        wait_ids = m[out + 4:out + 4 + waits].tolist()
        req.computed, req.n_cached, req.n_private = computed, hits, need - n_load + swap_in
        req.swapped = 0
        req.catching_up = True
        req.park_start_s = now
        return self._start_loads(req, now, wait_ids, swap_in)

    def _record(self, req: Req, now: float, counts: tuple[int, int, int], hits: int) -> None:
        req.admissions += 1
        if req.admissions == 1:
            req.first_admit_s = now
            req.hit_blocks = counts
        else:
            req.readmit_hit_tokens += hits * self.bs
        if req.idx in self.staged:
            self.staged_used_bytes += self._drop_stage(req.idx)

    def _drop_stage(self, idx: int) -> int:
        """Unpin what was staged for request ``idx``; returns the bytes its stage copied."""
        self.session_stages.pop(idx, None)
        staged = self.staged.pop(idx)
        rules.unpin_blocks(self.m, staged)
        self.staged_blocks -= len(staged)
        return self.staged_copied.pop(idx) * self.block_bytes

    def _start_loads(self, req: Req, now: float, wait_ids: list[int], swap_in: int
                     ) -> tuple[int, float]:
        queued = moves.take(self.m)
        loads = [mv for mv in queued if mv.kind == moves.LOAD]
        for mid in wait_ids:
            self.transfers.waiting_on(mid).waiters.append(req)
        if self.just_in_time:
            rest = self.transfers.land_loads_now(queued)
            self.transfers.start(now, rest)
            return self._just_in_time(req, now, loads, swap_in, len(wait_ids))
        self.transfers.start(now, queued, req, swap_in * self.block_bytes)
        from_dram = any(mv.src == Tier.DRAM for mv in loads)
        if swap_in and not from_dram:
            self.transfers.start_bytes(now, Link.H2D, swap_in * self.block_bytes, req)
        req.pending = len(wait_ids) + bool(from_dram or swap_in) + any(
            mv.src == Tier.SSD for mv in loads)
        return req.pending, float("inf")

    def _just_in_time(self, req: Req, now: float, loads: list[moves.Move], swap_in: int,
                      waits: int) -> tuple[int, float]:
        """Oracle bound: loads ran ahead, ending exactly at admission if the links allowed;
        an overrun parks ``req`` until the returned time."""
        n_ssd = sum(len(mv.blocks) for mv in loads if mv.src == Tier.SSD)
        n_h2d = sum(len(mv.blocks) for mv in loads if mv.src == Tier.DRAM) + swap_in + n_ssd
        stall = 0.0
        for link, n in ((Link.SSD_READ, n_ssd), (Link.H2D, n_h2d)):
            if n:
                ln = self.transfers.links[link]
                nbytes = n * self.block_bytes
                work = ln.work_s(nbytes)
                s, end = just_in_time_stall_s(self.jit_free_at[link], work, now,
                                              req.arrival_s if self.from_arrival else -math.inf)
                self.jit_free_at[link] = end
                ln.account(nbytes, end - work, end)
                stall = max(stall, s)
        req.pending = waits + (stall > 0)
        return req.pending, now + stall if stall > 0 else float("inf")

    # -- staging (lookahead prefetch) -------------------------------------------------------

    def stage(self, req: Req, now: float) -> None:
        """Stage ``req``'s stored prefix into HBM staging space (SSD blocks in two hops);
        SSD blocks beyond the staging budget are promoted to DRAM only."""
        if req.idx not in self.staged and not req.swapped:
            self._stage(req.idx, req.blocks, (req.num_tokens - 1) // self.bs, now)

    def _stage(self, idx: int, blocks: np.ndarray, limit: int, now: float) -> None:
        m, f = self.m, self.f
        f[L.NOW] = now
        hits = rules.lookup(m, blocks, limit)
        room = self.staging_cap - self.staged_blocks
        to_hbm = min(room, hits - rules.count_level(m, hits, HBM))
        granted = to_hbm > 0 and self.alloc(to_hbm, now)
        n = rules.stage(m, f, blocks, hits, room, to_hbm if granted else 0)
        out = int(m[L.OUT_AT])
        self.staged[idx] = m[out:out + n].copy()
        self.staged_copied[idx] = n
        self.staged_blocks += n
        self._start(now)

    def stage_session(self, idx: int, blocks: np.ndarray, now: float) -> None:
        """Stage ``blocks`` (the previous turn's prompt) for a session's next turn, request
        ``idx`` (kvplan.sim.prefetch.session): the stored ones in HBM are pinned, tail first
        (a shared head stays cached anyway; the session's own tail is what a gap loses), then
        those below HBM are staged as by :meth:`stage`, all within what is left of the
        staging budget (a stage holds its blocks until its turn arrives, its TTL ends or an
        allocation needs the room)."""
        if idx in self.staged:
            return
        m = self.m
        self.f[L.NOW] = now
        limit = len(blocks)
        hits = rules.lookup(m, blocks, limit)
        in_hbm = np.flatnonzero(m[m[L.LEVELS_AT]:m[L.LEVELS_AT] + hits] == HBM)
        room = max(self.staging_cap - self.staged_blocks, 0)
        pins = blocks[in_hbm[len(in_hbm) - min(room, len(in_hbm)):]]
        rules.pin_blocks(m, pins)
        self.staged_blocks += len(pins)
        self._stage(idx, blocks, limit, now)
        self.staged[idx] = np.concatenate([pins, self.staged[idx]])
        self.session_stages[idx] = None

    def drop_unused_stage(self, idx: int) -> None:
        """A staged turn did not arrive in time: unpin its blocks; its copies were wasted."""
        if idx in self.staged:
            self.staged_unused_bytes += self._drop_stage(idx)

    def _start(self, now: float) -> None:
        """Hand the moves the core queued (if any: most reservations queue none) to the
        links."""
        if self.m[L.MQ_TAIL]:
            self.transfers.start(now, moves.take(self.m))
