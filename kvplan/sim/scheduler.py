"""Continuous-batching scheduler with vLLM v1's single rule (docs/simulation.md).

Every request has ``num_tokens`` (prompt + tokens generated so far) and ``computed`` (tokens
whose KV is in HBM). Each step hands out tokens under ``max_batched_tokens``: a request gets
``min(num_tokens - computed, budget left)``, so a long prompt is prefilled in chunks and a
decoding request takes 1 token, with no special case. A step that brings ``computed`` up to
``num_tokens`` samples one new token.

``schedule()`` runs two short phases, like ``vllm/v1/core/sched/scheduler.py``:

1. running requests, in admission order: allocate HBM blocks for their tokens; when the pool
   says no, preempt the most recently admitted running request (recompute, or swap to DRAM when
   a DRAM tier exists) and retry;
2. waiting requests (only when step 1 preempted nobody, as vLLM), FCFS: admit while a sequence slot, budget and HBM blocks are left; the
   head that does not fit blocks the queue (no skipping). An admitted request whose prefix
   must be loaded from DRAM/SSD is parked until the loads land; it then joins ``running``.

The engine's :class:`~kvplan.sim.schedrules.SchedulerRules` add where engines differ: blocks
cached when a step is scheduled (here) and whole-sequence admission (the store's ``admit``).

Storage (prefix lookup, allocation, loads) is the :class:`~kvplan.sim.kvstore.KvStore`'s job.
Decoding requests sit on a shared decode clock (:class:`~kvplan.sim.decoding.Decoders`), so
phase 1 looks only at the requests that need more than their one token: those prefilling and
those due for a new KV block; every running request between them takes one token of budget.
"""

from __future__ import annotations

from collections import deque

from kvplan.sim.decoding import Decoders
from kvplan.sim.kvstore import KvStore
from kvplan.sim.request import Req
from kvplan.sim.schedrules import PLAIN, SchedulerRules


class Scheduler:
    """FCFS waiting queue + running list; hands tokens out under a budget."""

    def __init__(self, store: KvStore, max_batched_tokens: int, max_seqs: int,
                 rules: SchedulerRules = PLAIN) -> None:
        self.store = store
        self.cache_at_schedule = rules.cache_at_schedule
        """Cache a step's full blocks when it is scheduled (kvplan.sim.schedrules)."""
        self.max_batched_tokens = max_batched_tokens
        self.max_seqs = max_seqs
        self.waiting: deque[Req] = deque()
        self.running: list[Req] = []
        """Admission order; prefilling requests and decoders."""
        self.prefilling: list[Req] = []
        """The running requests still catching up (prompt or recompute), admission order."""
        self.decoders = Decoders(store.bs)
        self.preemptions = 0
        self.parked = 0
        """Admitted requests waiting on their own loads (they hold a sequence slot)."""
        self._seq = 0

    def schedule(self, now: float) -> tuple[list[tuple[Req, int]], list[tuple[float, Req]]]:
        """Pick this step's prefill chunks ``(request, new tokens)``; every member of
        ``decoders`` decodes one token. Both empty when nothing can run. Also returns the
        ``(time, request)`` wake-ups of admissions timed just in time (oracle bound)."""
        items: list[tuple[Req, int]] = []
        unparks: list[tuple[float, Req]] = []
        preemptions = self.preemptions
        budget = self._schedule_running(now, items, self.max_batched_tokens)
        if self.preemptions == preemptions:
            self._admit_waiting(now, items, budget, unparks)
        return items, unparks

    def _schedule_running(self, now: float, items: list[tuple[Req, int]], budget: int) -> int:
        """vLLM's loop over ``running`` in order, visiting only prefilling and due requests;
        ``done`` running requests (a prefix) have had their tokens.

        Decoders always lead ``running`` (a request behind a prefilling one gets no budget
        until that one is done) and number at most the budget (each was scheduled when it
        became one), so the budget never runs out before a decoder: every decoder runs.
        """
        bs, grow, running, dec = self.store.bs, self.store.grow, self.running, self.decoders
        done = 0
        for req in _merge(self.prefilling, dec.pop_due()):
            if req.run_seq < 0:
                continue
            pos = running.index(req)
            if pos - done >= budget:
                break
            budget -= pos - done
            if req.tick0 >= 0:
                dec.sync(req)
            n = min(req.prompt + req.generated - req.computed, budget)
            if -(-(req.computed + n) // bs) > req.n_cached + req.n_private:
                while not grow(req, req.computed + n, now):
                    victim = running.pop()
                    self._preempt(victim, now)
                    if victim is req:
                        return budget
            if self.cache_at_schedule:
                self.store.commit(req, now, req.computed + n)
            if req.catching_up:
                items.append((req, n))
            else:
                dec.add(req)
            budget -= n
            done = pos + 1
        cut = min(len(running), done + budget)
        assert all(req.tick0 < 0 for req in running[cut:]), "a decoder missed the budget"
        return budget - (cut - done)

    def _preempt(self, req: Req, now: float) -> None:
        """Free ``req``'s HBM blocks and put it back at the head of the queue; with a DRAM
        tier its private blocks are swapped out (kept), else it recomputes from its prefix."""
        if req.tick0 >= 0:
            self.decoders.sync(req)
        elif req.catching_up:
            self.prefilling.remove(req)
        req.run_seq = -1
        if self.store.swap:
            self.store.swap_out(req, now)
        self.store.release(req, now)
        req.computed = 0
        req.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(req)

    def _admit_waiting(self, now: float, items: list[tuple[Req, int]], budget: int,
                       unparks: list[tuple[float, Req]]) -> None:
        while self.waiting and budget > 0 and len(self.running) + self.parked < self.max_seqs:
            req = self.waiting[0]
            admitted = self.store.admit(req, now, budget)
            if admitted is None:
                return
            self.waiting.popleft()
            loads, unpark_at = admitted
            if unpark_at < float("inf"):
                unparks.append((unpark_at, req))
            if loads:
                self.parked += 1
                continue
            n = min(req.num_tokens - req.computed, budget)
            if self.cache_at_schedule:
                self.store.commit(req, now, req.computed + n)
            self._run(req)
            items.append((req, n))
            budget -= n

    def _run(self, req: Req) -> None:
        """``req`` joins ``running`` (at the end), catching up."""
        self._seq += 1
        req.run_seq = self._seq
        self.running.append(req)
        self.prefilling.append(req)

    def unpark(self, req: Req) -> None:
        """``req``'s loads landed: it runs from the next step on."""
        self.parked -= 1
        self._run(req)

    def prefilled(self, req: Req) -> None:
        """``req`` caught up: it decodes from the next step on (unless it just finished)."""
        self.prefilling.remove(req)

    def finish(self, req: Req) -> None:
        """``req`` (synced, not prefilling) generated its last token."""
        self.running.remove(req)
        req.run_seq = -1


def _merge(a: list[Req], b: list[Req]) -> list[Req]:
    """Two lists in running order merged into one (both short)."""
    return sorted(a + b, key=lambda r: r.run_seq) if a and b else a + b
