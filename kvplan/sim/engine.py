"""Event-mode simulator: one serving replica replaying a workload (docs/simulation.md).

The loop takes the next of two clocks: the event queue (``(time_s, priority, seq)``-ordered
events, each handed to its handler by a table on its type) and the links (the next time a
transfer enters its data phase or finishes; at equal times transfers go first). Handlers
return the events they create and only the loop pushes them. Whenever the GPU is idle after
an event, the scheduler builds the next step. A batch of decodes only is advanced
analytically: its iteration times come from one numpy call to ``CostModel.step_time_s`` and it
runs until the first request finishes, HBM needs a block it cannot get, or the next event.
Arrivals come from the arrival source (:mod:`kvplan.sim.arrivals`): trace times, or
closed-loop releases when a request finishes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
from rich.console import Console
from rich.progress import Progress

from kvplan.cost.model import CostModel, attn_pairs
from kvplan.engines import scheduler_rules, storage_wait
from kvplan.hierarchy import Link, Tier
from kvplan.sim import coverage
from kvplan.sim.arrivals import make_arrivals
from kvplan.sim.blocks import BlockStream
from kvplan.sim.build import build_cost, build_links, build_state_for
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core.layout import CAP, PEAK, USED, tier_word
from kvplan.sim.coverage import StepCoverage
from kvplan.sim.events import (
    PRIO_EXPIRE,
    PRIO_STEP,
    PRIO_TRANSFER,
    Arrival,
    Event,
    EventQueue,
    PinExpire,
    StageExpire,
    StepDone,
    Unpark,
)
from kvplan.sim.kvstore import KvStore
from kvplan.sim.metrics import Collector, RunState, Snapshot
from kvplan.sim.overlap import hidden_s
from kvplan.sim.prefetch import make_prefetch
from kvplan.sim.prefetch.session import next_turns
from kvplan.sim.request import Req
from kvplan.sim.results import ReplayResult
from kvplan.sim.scheduler import Scheduler
from kvplan.workload import Workload

_MAX_RUN_ITERS = 4096
_WALL_CHECK_EVERY = 1024
Scheduled = list[tuple[float, int, Event]]


class EventSim:
    """State of one event-mode run; ``run()`` drives it, ``result()`` reads it out."""

    def __init__(self, workload: Workload, config: ReplayConfig, cost: CostModel) -> None:
        self.config, self.cost = config, cost
        self.stream = BlockStream.from_workload(workload)
        t = workload.table
        self.arrival_s = t.column("arrival_s").to_numpy()
        self.input_tokens = t.column("input_tokens").to_numpy()
        self.output_tokens = np.maximum(t.column("output_tokens").to_numpy(), 1)
        self.session = t.column("session_id").to_numpy()
        self.arrivals = make_arrivals(workload, config.arrivals)
        self.collector = Collector(workload, config, self.arrivals.planned_s)
        self.prefetch = make_prefetch(config)
        self.next_turn = next_turns(self.session)
        self.arrived = np.zeros(len(self.arrival_s), dtype=bool)
        rules = scheduler_rules(config.engine)
        self.store = KvStore(config, build_state_for(config, cost, self.stream, self.arrival_s),
                             build_links(cost, self.collector.timeline), workload.block_size,
                             cost.kv_bytes_per_token * workload.block_size,
                             self.prefetch.just_in_time, rules.full_admission,
                             self.prefetch.from_arrival,
                             storage_wait(config.engine, config.storage_prefetch))
        self.coverage = StepCoverage(cost)
        self.sched = Scheduler(self.store, config.max_batched_tokens, config.max_seqs, rules)
        self.queue = EventQueue()
        self.batch: list[tuple[Req, int]] = []
        self.gpu_busy = False
        self.now = 0.0
        self.stop_reason = "done"
        self._idle_s = cost.step_time_s(0, 0, 0, 0)

    def run(self, progress=None) -> None:
        """Process events until none is left or a cap is hit."""
        q, cfg, links = self.queue, self.config, self.store.transfers
        for when, prio, ev in self.arrivals.first():
            q.push(when, prio, ev)
        wall0, n = time.perf_counter(), 0
        while True:
            t_links = links.next_time()
            t = min(t_links, q.peek_time())
            if t == math.inf:
                break
            if t > cfg.max_sim_s:
                self.stop_reason = f"simulated-time cap {cfg.max_sim_s:g} s reached"
                break
            n += 1
            if n % _WALL_CHECK_EVERY == 0:
                if time.perf_counter() - wall0 > cfg.max_wall_s:
                    self.stop_reason = f"wall-time cap {cfg.max_wall_s:g} s reached"
                    break
                if progress is not None:
                    progress(self.collector.finished)
            if t >= self.collector.next_sec:
                self.collector.sample_until(t, self.snapshot())
            self.now = t
            if t_links <= t:
                handled = self._land_transfers()
            else:
                ev = q.pop()[1]
                handled = _HANDLERS[type(ev)](self, ev)
            for when, prio, new in handled:
                q.push(when, prio, new)
            for when, prio, new in self._after_event():
                q.push(when, prio, new)
        if self.stop_reason == "done" and self.collector.finished < len(self.arrival_s):
            self.stop_reason = "stuck: the waiting queue's head never fits in HBM"

    def snapshot(self) -> Snapshot:
        """Occupancy and queue lengths now (the time series' row)."""
        m, sched = self.store.m, self.sched
        return Snapshot(self.store.hbm_used(), tier_word(m, Tier.DRAM, USED),
                        tier_word(m, Tier.SSD, USED), len(sched.running), len(sched.waiting),
                        sched.parked)

    # -- handlers ------------------------------------------------------------------------------

    def _on_arrival(self, ev: Arrival) -> Scheduled:
        i = ev.req
        s = self.stream
        req = Req(i, int(self.session[i]), self.now, int(self.input_tokens[i]),
                  int(self.output_tokens[i]), s.ids[s.offsets[i]:s.offsets[i + 1]])
        self.sched.waiting.append(req)
        self.collector.arrival_s[i] = self.now
        self.arrived[i] = True
        return self.arrivals.after_arrival(i)

    def _land_transfers(self) -> Scheduled:
        """The transfers due now land; requests whose loads all landed are woken."""
        for req in self.store.transfers.land_due(self.now):
            self._unpark(req)
        return []

    def _on_unpark(self, ev: Unpark) -> Scheduled:
        req = ev.req
        req.pending -= 1
        if req.pending == 0:
            self._unpark(req)
        return []

    def _on_pin_expire(self, ev: PinExpire) -> Scheduled:
        self.store.expire_session_pins(ev.session, ev.req)
        return []

    def _on_stage_expire(self, ev: StageExpire) -> Scheduled:
        if not self.arrived[ev.req]:
            self.store.drop_unused_stage(ev.req)
        return []

    def _unpark(self, req: Req) -> None:
        """All of ``req``'s loads landed: it runs from the next step on."""
        req.load_stall_s += self.now - req.park_start_s
        if self.config.layerwise_load:
            req.load_copy_s = self.now - req.park_start_s
        self.sched.unpark(req)

    def _on_step_done(self, ev: StepDone) -> Scheduled:
        """The step's decoders advance on the clock; its prefill chunks and the finishing
        decoders are handled in running order."""
        self.gpu_busy = False
        store, sched, now = self.store, self.sched, self.now
        out: Scheduled = []
        finishing = sched.decoders.advance(ev.iters)
        for req, n in sorted(self.batch + [(r, 0) for r in finishing], key=_run_order):
            if n:
                self._advance_prefill(req, n, now)
                if req.n_cached < len(req.blocks):
                    store.commit(req, now)
                if req.catching_up:
                    continue
                sched.prefilled(req)
                if req.generated < req.out:
                    sched.decoders.add(req)
                    continue
            else:
                sched.decoders.sync(req)
            out.extend(self._finish(req, now))
        store.end_step(now)
        self.batch = []
        return out

    def _advance_prefill(self, req: Req, n: int, now: float) -> None:
        """A prefill chunk of ``n`` tokens ran; reaching num_tokens samples a token."""
        if req.admissions == 1:
            req.prefill_tokens += n
        else:
            req.recomputed_tokens += n
        req.computed += n
        if req.computed == req.num_tokens:
            req.catching_up = False
            req.generated += 1
            if req.generated == 1:
                req.first_token_s = now

    def _finish(self, req: Req, now: float) -> Scheduled:
        ttl = self.config.session_ttl_s
        self.store.release(req, now, keep_pins=ttl > 0)
        self.sched.finish(req)
        self.collector.finish(req, now)
        out = self.arrivals.after_finish(req.idx, now)
        if ttl > 0:
            out = out + [(now + ttl, PRIO_EXPIRE, PinExpire(req.session, req.idx))]
        return out + self._stage_next_turn(req, now) if self.prefetch.after_turn(req) else out

    def _stage_next_turn(self, req: Req, now: float) -> Scheduled:
        """Session prefetch: stage ``req``'s prompt blocks (what the serving stack knows the
        next turn reuses; not the next prompt's new content) for the session's next turn
        during its think / tool gap (kvplan.sim.prefetch.session); dropped if that turn has
        not arrived after stage_ttl_s."""
        j = int(self.next_turn[req.idx])
        if j < 0 or self.arrived[j]:
            return []
        self.store.stage_session(j, req.blocks, now)
        return [(now + self.config.stage_ttl_s, PRIO_EXPIRE, StageExpire(j))]

    # -- after every event: start the next step if the GPU is idle ---------------------------

    def _after_event(self) -> Scheduled:
        return self._start_step() if not self.gpu_busy else []

    def _start_step(self) -> Scheduled:
        now = self.now
        items, unparks = self.sched.schedule(now)
        out: Scheduled = [(when, PRIO_TRANSFER, Unpark(req)) for when, req in unparks]
        if self.sched.waiting:
            staged = self.store.staged
            for req in self.prefetch.to_stage(self.sched.waiting):
                if req.idx not in staged:
                    self.store.stage(req, now)
        if not items and not self.sched.decoders.count:
            return out
        self.gpu_busy = True
        self.batch = items
        if items:
            iters, dt = 1, self._step_time(items)
        else:
            iters, dt = self._decode_run()
        out.append((now + dt, PRIO_STEP, StepDone(iters)))
        return out

    def _step_time(self, items: list[tuple[Req, int]]) -> float:
        """One iteration: the prefill chunks ``items`` plus one token of every decoder."""
        prefill = pairs = 0
        for req, n in items:
            prefill += n
            pairs += attn_pairs(n, req.computed)
        dec = self.sched.decoders
        ctx = dec.context_tokens()
        self.coverage.add_step(prefill + dec.count, dec.count, ctx)
        dt = self.cost.step_time_s(prefill, pairs, dec.count, ctx)
        return dt - self._overlap_s(items) if self.config.layerwise_load else dt

    def _overlap_s(self, items: list[tuple[Req, int]]) -> float:
        """Layer-wise loading: the copies the step's requests waited on partly ran behind
        their own chunks' compute (kvplan.sim.overlap); that part of the wait was no stall and
        that part of the compute is already done."""
        hidden = 0.0
        for req, n in items:
            if req.load_copy_s > 0.0:
                own = self.cost.step_time_s(n, attn_pairs(n, req.computed), 0, 0) - self._idle_s
                h = hidden_s(req.load_copy_s, own, self.cost.spec.num_layers)
                req.load_stall_s -= h
                req.load_copy_s = 0.0
                hidden += h
        return hidden

    def _decode_run(self) -> tuple[int, float]:
        """How many decode-only iterations to run at once, and their total time.

        Stops at the first finisher, the first iteration ending at or after the next event,
        and the last iteration whose new blocks HBM can still provide.
        """
        dec = self.sched.decoders
        n = dec.count
        k_fin = min(dec.min_left(), _MAX_RUN_ITERS)
        ctx0 = dec.context_tokens()
        horizon = min(self.queue.peek_time(), self.store.transfers.next_time()) - self.now
        k, total = self.cost.decode_run_s(n, ctx0, horizon, k_fin)
        crossing = dec.crossing_within(k)
        k_room = self._iters_with_room(crossing, k)
        if k_room < k:
            k, total = k_room, self.cost.decode_run_s(n, ctx0, math.inf, k_room)[1]
        self.coverage.add_run(n, ctx0, k)
        grow, now = self.store.grow, self.now
        for slack, req in crossing:
            if slack < k:
                dec.sync(req)
                grow(req, req.computed + k, now)
                dec.add(req)
        return k, total

    def _iters_with_room(self, crossing: list[tuple[int, Req]], k: int) -> int:
        """Largest k' <= k whose iterations' new blocks fit in free + evictable HBM (>= 1:
        the scheduler already holds blocks for the first iteration). A decoder that can run
        ``slack`` more iterations in its blocks needs ceil((j - slack) / bs) more for j."""
        bs, room = self.store.bs, self.store.room()

        def need(j: int) -> int:
            return sum(-((s - j) // bs) for s, _ in crossing if s < j)

        if need(k) <= room:
            return k
        lo, hi = 1, k
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if need(mid) <= room else (lo, mid)
        return lo

    def result(self) -> ReplayResult:
        m, links = self.store.m, self.store.transfers.links
        state = RunState(
            stop_reason=self.stop_reason, block_bytes=self.store.block_bytes,
            capacity_blocks=tuple(tier_word(m, t, CAP) for t in Tier),
            peak_blocks=tuple(tier_word(m, t, PEAK) for t in Tier),
            link_bytes=tuple(ln.bytes_total for ln in links),
            link_busy_s=tuple(ln.busy_s for ln in links),
            staged_used_bytes=self.store.staged_used_bytes,
            staged_unused_bytes=self.store.staged_unused_bytes,
            extrapolated=coverage.summary(self.coverage, {
                link.label: ln.sizes for link, ln in zip(Link, links, strict=True)}))
        return self.collector.result(state)


_HANDLERS: dict[type, Callable[[EventSim, Event], Scheduled]] = {
    Arrival: EventSim._on_arrival, StepDone: EventSim._on_step_done, Unpark: EventSim._on_unpark,
    PinExpire: EventSim._on_pin_expire, StageExpire: EventSim._on_stage_expire,
}
"""Each event type's handler. A table of the class's functions, not of bound methods on the
instance: bound methods stored on ``self`` would make every run a reference cycle, whose
state (block records, the stream's ids: hundreds of MB on a large trace) only the cyclic
collector frees, at some later time, so back-to-back runs in one worker stacked up."""


def _run_order(item: tuple[Req, int]) -> int:
    return item[0].run_seq


def run_event(workload: Workload, config: ReplayConfig, progress: bool = False) -> ReplayResult:
    """Replay ``workload`` through one serving replica with tiered KV storage."""
    sim = EventSim(workload, config, build_cost(config))
    if progress:
        with _progress_bar(workload.num_requests) as update:
            sim.run(update)
    else:
        sim.run()
    return sim.result()


@contextlib.contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A transient rich progress bar on stderr over finished requests."""
    with Progress(*Progress.get_default_columns(), transient=True,
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("replay", total=total)
        yield lambda done: bar.update(task, completed=done)
