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

Storage (prefix lookup, allocation, loads) is the :class:`~kvplan.sim.kvstore.KvStore`'s job.
"""

from __future__ import annotations

from collections import deque

from kvplan.sim.kvstore import KvStore, Req


class Scheduler:
    """FCFS waiting queue + running list; hands tokens out under a budget."""

    def __init__(self, store: KvStore, max_batched_tokens: int, max_seqs: int) -> None:
        self.store = store
        self.max_batched_tokens = max_batched_tokens
        self.max_seqs = max_seqs
        self.waiting: deque[Req] = deque()
        self.running: list[Req] = []
        self.preemptions = 0
        self.parked = 0
        """Admitted requests waiting on their own loads (they hold a sequence slot)."""

    def schedule(self, now: float) -> list[tuple[Req, int]]:
        """Pick this step's ``(request, new tokens)``; empty when nothing can run."""
        items: list[tuple[Req, int]] = []
        preemptions = self.preemptions
        budget = self._schedule_running(now, items, self.max_batched_tokens)
        if self.preemptions == preemptions:
            self._admit_waiting(now, items, budget)
        return items

    def _schedule_running(self, now: float, items: list[tuple[Req, int]], budget: int) -> int:
        bs, grow, running = self.store.bs, self.store.grow, self.running
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            n = min(req.prompt + req.generated - req.computed, budget)
            if -(-(req.computed + n) // bs) > req.n_cached + req.n_private:
                while not grow(req, req.computed + n, now):
                    victim = running.pop()
                    self._preempt(victim, now)
                    if victim is req:
                        return budget
            items.append((req, n))
            budget -= n
            i += 1
        return budget

    def _preempt(self, req: Req, now: float) -> None:
        """Free ``req``'s HBM blocks and put it back at the head of the queue; with a DRAM
        tier its private blocks are swapped out (kept), else it recomputes from its prefix."""
        if self.store.swap:
            self.store.swap_out(req, now)
        self.store.release(req, now)
        req.computed = 0
        req.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(req)

    def _admit_waiting(self, now: float, items: list[tuple[Req, int]], budget: int) -> None:
        while self.waiting and budget > 0 and len(self.running) + self.parked < self.max_seqs:
            req = self.waiting[0]
            loads = self.store.admit(req, now, budget)
            if loads is None:
                return
            self.waiting.popleft()
            if loads:
                self.parked += 1
                continue
            n = min(req.num_tokens - req.computed, budget)
            self.running.append(req)
            items.append((req, n))
            budget -= n

    def unpark(self, req: Req) -> None:
        """``req``'s loads landed: it runs from the next step on."""
        self.parked -= 1
        self.running.append(req)

    def finish(self, req: Req) -> None:
        self.running.remove(req)
