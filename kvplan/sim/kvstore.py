"""KV storage of the event simulator: HBM block pool over the tier stack, loads and offloads.

HBM holds two kinds of blocks (vLLM v1's block pool)::

    HBM capacity  |  cached prompt blocks (Tier, refcounted)  |  private blocks  |  free  |
                     pinned = in use by a request, a staging      prompt tail, decode
                     reservation or a session pin; unpinned =     tokens, swap-ins, and
                     cached, evicted lazily by the HBM policy     blocks being computed

A request's KV covers ``ceil(computed / block_size)`` blocks: its first ``n_cached`` are
shared prompt blocks pinned in the HBM tier, the rest ``n_private``. When a step completes a
prompt block, it turns from private into a cached block (or pins the copy another request
already computed). A block being loaded is resident in the HBM tier from the start of its load
(its space is taken) and listed in ``loading`` until the transfer lands; a request that hits it
waits on that transfer.

Loads: DRAM hits go over h2d as one transfer; SSD hits go ssd_read -> DRAM -> h2d (two hops,
the second a new batched transfer). Offloads: write-through copies blocks a step completed over
d2h, and on landing in DRAM over ssd_write; write-back (and exclusive tiers) copy a block down
only when it is evicted. Copying a block out never removes it from HBM.
"""

from __future__ import annotations

from collections import OrderedDict

from kvplan.sim.config import ReplayConfig
from kvplan.sim.tiers import Tier
from kvplan.sim.transfers import D2H, H2D, SSD_READ, SSD_WRITE, Link, Transfer, just_in_time_stall_s

HBM, DRAM, SSD = 0, 1, 2


class Req:
    """One request's progress, storage state and per-request statistics."""

    __slots__ = (
        "idx", "session", "arrival_s", "prompt", "out", "blocks", "generated", "computed",
        "n_cached", "n_private", "pending", "park_start_s", "catching_up", "admissions",
        "swapped", "swap_cached", "swap_computed", "first_admit_s", "first_token_s",
        "load_stall_s", "hit_blocks", "readmit_hit_tokens", "prefill_tokens",
        "recomputed_tokens", "preemptions", "run_seq", "tick0", "member_id",
    )

    def __init__(self, idx: int, session: int, arrival_s: float, prompt: int, out: int,
                 blocks: list[int]) -> None:
        self.idx, self.session, self.arrival_s = idx, session, arrival_s
        self.prompt, self.out, self.blocks = prompt, out, blocks
        self.generated = self.computed = self.n_cached = self.n_private = self.pending = 0
        self.park_start_s = 0.0
        self.catching_up = False
        self.admissions = self.swapped = self.swap_cached = self.swap_computed = 0
        self.first_admit_s = self.first_token_s = float("nan")
        self.load_stall_s = 0.0
        self.hit_blocks = [0, 0, 0]
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


class KvStore:
    """HBM pool + DRAM/SSD tiers + the four links; starts and lands every transfer."""

    def __init__(self, config: ReplayConfig, tiers: list[Tier], links: list[Link],
                 block_size: int, block_bytes: int) -> None:
        self.hbm, self.dram, self.ssd = tiers
        self.links = links
        self.bs = block_size
        self.block_bytes = block_bytes
        self.write_through = config.write != "write-back" and config.inclusive
        self.selective = config.write == "write-through-selective"
        self.store_threshold = config.store_threshold
        self.exclusive = not config.inclusive
        self.swap = self.dram.present
        self.has_lower = self.dram.present or self.ssd.present
        self.private_total = 0
        self.loading: dict[int, Transfer] = {}
        self.staged: dict[int, list[int]] = {}
        self.origin: dict[int, int] = {}
        self.staged_blocks = 0
        self.staging_cap = int(config.staging_budget_frac * self.hbm.capacity_blocks)
        self.hit_counts: dict[int, int] = {}
        self.session_pins: OrderedDict[int, tuple[int, list[int]]] = OrderedDict()
        """Session -> (request that left the pins, its prompt blocks pinned in HBM)."""
        self.just_in_time = False
        self.jit_free_at = [0.0] * len(links)
        self.timers: list[tuple[float, Req]] = []
        """Oracle wake-ups ``(time_s, request)`` (drained by the engine)."""
        self.ready: list[Req] = []
        """Requests whose loads all landed (drained by the engine)."""
        self.woken: set[int] = set()
        """Links whose next phase change moved (drained by the engine into LinkWake events)."""
        self.peak = [0, 0, 0]

    # -- HBM allocation ---------------------------------------------------------------------

    def hbm_used(self) -> int:
        return self.hbm.used_blocks + self.private_total

    def alloc(self, n: int, now: float) -> bool:
        """Take ``n`` private HBM blocks, evicting cached ones (then session pins) if needed."""
        hbm = self.hbm
        short = n - (hbm.capacity_blocks - hbm.used_blocks - self.private_total)
        if short > 0:
            while short > hbm.evictable_blocks and self.session_pins:
                self._unpin_all(self.session_pins.popitem(last=False)[1][1])
            if short > hbm.evictable_blocks:
                return False
            self._evicted_hbm(hbm.evict(short), now)
        self.private_total += n
        used = hbm.used_blocks + self.private_total
        if used > self.peak[HBM]:
            self.peak[HBM] = used
        return True

    def grow(self, req: Req, computed_target: int, now: float) -> bool:
        """Allocate the blocks ``req`` needs to hold ``computed_target`` tokens."""
        need = -(-computed_target // self.bs) - req.n_cached - req.n_private
        if need <= 0:
            return True
        if not self.alloc(need, now):
            return False
        req.n_private += need
        return True

    def commit(self, req: Req, now: float, fresh: list[int]) -> None:
        """After a step: prompt blocks ``req`` completed become shared cached blocks."""
        full = min(req.computed // self.bs, len(req.blocks))
        if full <= req.n_cached:
            return
        hbm = self.hbm
        resident = hbm.refs
        for b in req.blocks[req.n_cached:full]:
            if b in resident:
                hbm.pin(b)
            else:
                hbm.insert(b, now, pin=True)
                fresh.append(b)
        req.n_private -= full - req.n_cached
        self.private_total -= full - req.n_cached
        req.n_cached = full

    def release(self, req: Req, now: float, keep_pins: bool = False) -> None:
        """Free ``req``'s HBM blocks; its prompt blocks stay cached (pinned if ``keep_pins``)."""
        cached = req.blocks[:req.n_cached]
        self.hbm.touch_all(reversed(cached), now)
        if keep_pins:
            self._release_session(req.session)
            self.session_pins[req.session] = (req.idx, cached)
        else:
            self._unpin_all(cached)
        self.private_total -= req.n_private
        req.n_cached = req.n_private = 0

    def expire_session_pins(self, session: int, req_idx: int) -> None:
        """The TTL of the pins ``req_idx`` left for its session ran out."""
        if self.session_pins.get(session, (-1,))[0] == req_idx:
            self._release_session(session)

    def _release_session(self, session: int) -> None:
        pins = self.session_pins.pop(session, None)
        if pins is not None:
            self._unpin_all(pins[1])

    def _unpin_all(self, blocks: list[int]) -> None:
        self.hbm.unpin_all(blocks)

    # -- admission: prefix lookup and loads --------------------------------------------------

    def lookup(self, req: Req) -> list[int]:
        """Tier level of each block of the longest stored prefix (at most num_tokens - 1)."""
        hbm, dram, ssd = self.hbm.refs, self.dram.refs, self.ssd.refs
        levels: list[int] = []
        add = levels.append
        for b in req.blocks[:(req.prompt + req.generated - 1) // self.bs]:
            if b in hbm:
                add(HBM)
            elif b in dram:
                add(DRAM)
            elif b in ssd:
                add(SSD)
            else:
                break
        return levels

    def admit(self, req: Req, now: float, budget: int) -> int | None:
        """Admit ``req`` if HBM has room for its loads (or its first chunk when nothing loads).

        Returns the number of loads it now waits on (0: it runs this step), or None with no
        side effect when HBM cannot hold it. A swapped-out request whose stored prefix is
        still complete gets its private blocks back over h2d instead of recomputing.
        """
        levels = self.lookup(req)
        restore = req.swapped > 0 and len(levels) >= req.swap_cached
        if restore:
            del levels[req.swap_cached:]
        hits = len(levels)
        computed = req.swap_computed if restore else hits * self.bs
        swap_in = req.swapped if restore else 0
        n_load = hits - levels.count(HBM) + swap_in
        cached = req.blocks[:hits]
        hbm_hits = [b for b, lv in zip(cached, levels, strict=True) if lv == HBM]
        chunk = min(req.num_tokens - computed, budget)
        first_chunk = -(-(computed + chunk) // self.bs) - hits - swap_in
        # a request that loads is parked and grows when it runs, unless its loads are timed
        # just in time (oracle): then it may run at once and needs its first chunk's blocks
        need = n_load + first_chunk if self.just_in_time or not n_load else n_load
        if not self.session_pins and not self._fits(need, hbm_hits):
            return None
        self.hbm.pin_all(hbm_hits)
        self._release_session(req.session)
        if not self.alloc(need, now):
            self._unpin_all(hbm_hits)
            return None
        self._record_admission(req, now, levels, cached)
        req.computed, req.n_cached, req.n_private = computed, hits, need - n_load + swap_in
        self.private_total -= n_load - swap_in
        req.swapped = 0
        req.catching_up = True
        return self._start_loads(req, now, levels, cached, swap_in)

    def _fits(self, need: int, hits: list[int]) -> bool:
        """Whether ``alloc(need)`` would succeed with ``hits`` pinned, when no session pins
        are held: refuses a request that does not fit without pinning and unpinning its hits."""
        hbm = self.hbm
        short = need - (hbm.capacity_blocks - hbm.used_blocks - self.private_total)
        refs = hbm.refs
        return short <= 0 or short <= hbm.evictable_blocks - sum(1 for b in hits if not refs[b])

    def _record_admission(self, req: Req, now: float, levels: list[int], cached: list[int]
                          ) -> None:
        req.admissions += 1
        counts = [0, 0, 0]
        origin = self.origin
        for b, lv in zip(cached, levels, strict=True):
            counts[origin.pop(b, lv) if lv == HBM and origin else lv] += 1
            if self.selective and lv == HBM:
                self._count_hit(b, now)
        if req.admissions == 1:
            req.first_admit_s = now
            req.hit_blocks = counts
        else:
            req.readmit_hit_tokens += len(levels) * self.bs
        for b in self.staged.pop(req.idx, ()):
            self.hbm.unpin(b)
            self.staged_blocks -= 1

    def _start_loads(self, req: Req, now: float, levels: list[int], cached: list[int],
                     swap_in: int) -> int:
        """Start ``req``'s loads (or, for the oracle bound, time them just in time)."""
        hbm, loading = self.hbm, self.loading
        waits: set[int] = set()
        from_dram: list[int] = []
        from_ssd: list[int] = []
        loaded: list[int] = []
        for b, lv in zip(cached, levels, strict=True):
            if lv == HBM:
                tr = loading.get(b)
                if tr is not None and id(tr) not in waits:
                    waits.add(id(tr))
                    tr.waiters.append(req)
                continue
            loaded.append(b)
            (from_dram if lv == DRAM else from_ssd).append(b)
        hbm.insert_all(loaded, now, pin=True)
        self.dram.touch_all(from_dram, now)
        self.ssd.touch_all(from_ssd, now)
        req.park_start_s = now
        if self.just_in_time:
            if from_ssd and self.dram.present and not self.exclusive:
                self._insert_dram(from_ssd, now)
            return self._just_in_time(req, now, len(from_dram) + swap_in, len(from_ssd), waits)
        swap_bytes = swap_in * self.block_bytes
        if from_dram or swap_in:
            self._start(H2D, now, from_dram, "load", req, extra_bytes=swap_bytes)
        if from_ssd:
            self._start(SSD_READ, now, from_ssd, "load", req)
        req.pending = len(waits) + bool(from_dram or swap_in) + bool(from_ssd)
        return req.pending

    def _just_in_time(self, req: Req, now: float, n_h2d: int, n_ssd: int, waits: set[int]
                      ) -> int:
        """Oracle bound: loads ran ahead, ending exactly at admission if the links allowed;
        an overrun parks ``req`` until a timer (drained by the engine) wakes it."""
        stall = 0.0
        for link, n in ((SSD_READ, n_ssd), (H2D, n_h2d + n_ssd)):
            if n:
                ln = self.links[link]
                nbytes = n * self.block_bytes
                work = ln.work_s(nbytes)
                s, end = just_in_time_stall_s(self.jit_free_at[link], work, now)
                self.jit_free_at[link] = end
                ln.account(nbytes, end - work, end)
                stall = max(stall, s)
        req.pending = len(waits) + (stall > 0)
        if stall > 0:
            self.timers.append((now + stall, req))
        return req.pending

    # -- staging (lookahead prefetch) -------------------------------------------------------

    def stage(self, req: Req, now: float) -> None:
        """Stage ``req``'s stored prefix into HBM staging space (SSD blocks in two hops);
        SSD blocks beyond the staging budget are promoted to DRAM only."""
        if req.idx in self.staged or req.swapped:
            return
        levels = self.lookup(req)
        room = self.staging_cap - self.staged_blocks
        to_hbm: list[tuple[int, int]] = []
        promote: list[int] = []
        for b, lv in zip(req.blocks, levels, strict=False):
            if lv == HBM:
                continue
            if len(to_hbm) < room:
                to_hbm.append((b, lv))
            elif lv == SSD and self.dram.present:
                promote.append(b)
        if to_hbm and self.alloc(len(to_hbm), now):
            self.private_total -= len(to_hbm)
            self._stage_into_hbm(req, now, to_hbm)
        else:
            self.staged[req.idx] = []
        if promote:
            self._start(SSD_READ, now, promote, "promote")

    def _stage_into_hbm(self, req: Req, now: float, to_hbm: list[tuple[int, int]]) -> None:
        from_dram = [b for b, lv in to_hbm if lv == DRAM]
        from_ssd = [b for b, lv in to_hbm if lv == SSD]
        self.hbm.insert_all([b for b, _ in to_hbm], now, pin=True)
        for b, lv in to_hbm:
            self.origin[b] = lv
        self.staged[req.idx] = [b for b, _ in to_hbm]
        self.staged_blocks += len(to_hbm)
        if from_dram:
            self._start(H2D, now, from_dram, "stage")
        if from_ssd:
            self._start(SSD_READ, now, from_ssd, "stage")

    # -- offloads and evictions --------------------------------------------------------------

    def offload_fresh(self, fresh: list[int], now: float) -> None:
        """Write-through: copy the blocks a step completed down to DRAM (then SSD)."""
        if fresh and self.write_through and not self.selective and self.has_lower:
            self._start(D2H, now, fresh, "offload")

    def _count_hit(self, b: int, now: float) -> None:
        n = self.hit_counts.get(b, 0) + 1
        self.hit_counts[b] = n
        if n == self.store_threshold and self.has_lower and b not in self.dram:
            self._start(D2H, now, [b], "offload")

    def _evicted_hbm(self, victims: list[int], now: float) -> None:
        if self.write_through or not self.has_lower:
            return
        down = [b for b in victims if b not in self.dram and b not in self.ssd]
        if down:
            self._start(D2H, now, down, "offload")

    def _insert_dram(self, blocks: list[int], now: float) -> None:
        """Insert landed blocks into DRAM, making room for the whole batch with one eviction."""
        dram = self.dram
        resident = dram.refs
        dram.touch_all([b for b in blocks if b in resident], now)
        new = [b for b in blocks if b not in resident]
        victims = dram.evict(len(new) - dram.free_blocks)
        dram.insert_all(new[-dram.capacity_blocks:], now)
        if victims and not self.write_through and self.ssd.present:
            down = [v for v in victims if v not in self.ssd]
            if down:
                self._start(SSD_WRITE, now, down, "offload")
        self.peak[DRAM] = max(self.peak[DRAM], dram.used_blocks)

    def _insert_ssd(self, blocks: list[int], now: float) -> None:
        ssd = self.ssd
        resident = ssd.refs
        ssd.touch_all([b for b in blocks if b in resident], now)
        new = [b for b in blocks if b not in resident]
        ssd.evict(len(new) - ssd.free_blocks)
        ssd.insert_all(new[-ssd.capacity_blocks:], now)
        self.peak[SSD] = max(self.peak[SSD], ssd.used_blocks)

    def swap_out(self, req: Req, now: float) -> None:
        """Preemption by swap: ``req``'s private blocks go to DRAM; it keeps its progress."""
        req.swap_cached, req.swap_computed, req.swapped = req.n_cached, req.computed, \
            req.n_private
        if req.n_private:
            self._start(D2H, now, [], "swap", extra_bytes=req.n_private * self.block_bytes)

    # -- transfers ---------------------------------------------------------------------------

    def _start(self, link: int, now: float, blocks: list[int], kind: str, req: Req | None = None,
               extra_bytes: int = 0) -> Transfer:
        ln = self.links[link]
        nbytes = len(blocks) * self.block_bytes + extra_bytes
        tr = Transfer(link, nbytes, ln.work_s(nbytes), blocks, kind, req)
        if link in (H2D, SSD_READ) and kind in ("load", "stage"):
            for b in blocks:
                self.loading[b] = tr
        ln.start(now, tr)
        self.woken.add(link)
        return tr

    def land(self, tr: Transfer, now: float) -> None:
        """A transfer finished: move its blocks on, wake the requests waiting on it."""
        if tr.link == SSD_READ:
            if self.exclusive:
                for b in tr.blocks:
                    if b in self.ssd:
                        self.ssd.remove(b)
            if self.dram.present and (not self.exclusive or tr.kind == "promote"):
                self._insert_dram(tr.blocks, now)
            if tr.kind != "promote":
                nxt = self._start(H2D, now, tr.blocks, tr.kind, tr.req)
                nxt.waiters = tr.waiters
            return
        if tr.link == H2D:
            self._landed_in_hbm(tr, now)
        elif tr.link == D2H and tr.kind == "offload":
            if self.dram.present:
                self._insert_dram(tr.blocks, now)
            if self.ssd.present and (self.write_through or not self.dram.present):
                self._start(SSD_WRITE, now, tr.blocks, "offload")
        elif tr.link == SSD_WRITE:
            self._insert_ssd(tr.blocks, now)

    def _landed_in_hbm(self, tr: Transfer, now: float) -> None:
        loading = self.loading
        for b in tr.blocks:
            if loading.get(b) is tr:
                del loading[b]
            if self.exclusive and b in self.dram:
                self.dram.remove(b)
        for req in ([tr.req] if tr.req is not None else []) + tr.waiters:
            self.wake(req)

    def wake(self, req: Req) -> None:
        """One of ``req``'s awaited loads landed."""
        req.pending -= 1
        if req.pending == 0:
            self.ready.append(req)
