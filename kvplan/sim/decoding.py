"""Decoding requests advanced together on one shared decode clock (docs/simulation.md).

Past its prefill a running request takes exactly one token per step and needs nothing else
until its KV crosses into a new block or it finishes. So instead of touching every decoder
every step, a decoder stores ``computed`` and ``generated`` as of the tick it joined
(``tick0``); at tick ``T`` it has ``T - tick0`` more of each. Two heaps keyed by tick name the
only decoders a step must look at: those due for a new KV block, and those finishing::

    joined at tick 10 with computed 1000, holding 2 blocks of 512, output left 30
    -> due at tick 10 + 2 x 512 - 1000 = 34 (its 1025th token needs block 3),
       finishes at tick 40; at tick 20 it has computed 1010

Every decoder runs in every step (the scheduler's order guarantees it), so the clock moves
all members at once. A member that changes (a new block, preemption, its last token) is
synced and leaves, and joins again if it goes on decoding; heap entries of an earlier
membership are stale and skipped.
"""

from __future__ import annotations

import heapq

from kvplan.sim.request import Req


class Decoders:
    """The running requests past their prefill, on a shared decode clock."""

    def __init__(self, block_size: int) -> None:
        self.bs = block_size
        self.tick = 0
        """Decode iterations run so far."""
        self.count = 0
        self._base = 0
        """Sum over members of ``computed - tick0``: their computed tokens = base + count x tick."""
        self._due: list[tuple[int, int, Req]] = []
        self._fin: list[tuple[int, int, Req]] = []
        self._ids = 0

    def add(self, req: Req) -> None:
        """``req`` (its fields current) decodes from now on."""
        self._ids += 1
        req.tick0, req.member_id = self.tick, self._ids
        self.count += 1
        self._base += req.computed - self.tick
        held = req.n_cached + req.n_private
        heapq.heappush(self._due, (self.tick + held * self.bs - req.computed, self._ids, req))
        heapq.heappush(self._fin, (self.tick + req.out - req.generated, self._ids, req))
        if len(self._fin) > 4 * self.count + 64:
            self._due, self._fin = self._live(self._due), self._live(self._fin)

    def sync(self, req: Req) -> None:
        """Bring ``req``'s fields up to the clock; it leaves (``add`` it again to stay)."""
        ran = self.tick - req.tick0
        self._base -= req.computed - req.tick0
        req.computed += ran
        req.generated += ran
        req.tick0 = req.member_id = -1
        self.count -= 1

    def context_tokens(self) -> int:
        """Sum of (computed + 1) over members: the KV the next iteration's decodes read."""
        return self._base + self.count * (self.tick + 1)

    def pop_due(self) -> list[Req]:
        """Members needing a new block for the next token, in running order (still members)."""
        return _pop_until(self._due, self.tick)

    def crossing_within(self, k: int) -> list[tuple[int, Req]]:
        """``(slack, req)`` of members needing a new block within ``k`` iterations, slack =
        iterations they can still run in their blocks, in running order."""
        due, limit, out = self._due, self.tick + k, []
        stack = [0] if due else []
        while stack:
            i = stack.pop()
            when, mid, req = due[i]
            if when >= limit:
                continue
            if req.member_id == mid:
                out.append((when - self.tick, req))
            stack.extend(j for j in (2 * i + 1, 2 * i + 2) if j < len(due))
        out.sort(key=lambda e: e[1].run_seq)
        return out

    def min_left(self) -> int:
        """Fewest iterations until some member has generated all its output."""
        fin = self._fin
        while fin[0][2].member_id != fin[0][1]:
            heapq.heappop(fin)
        return fin[0][0] - self.tick

    def advance(self, iters: int) -> list[Req]:
        """Run ``iters`` iterations; the members that finished, in running order."""
        self.tick += iters
        return _pop_until(self._fin, self.tick)

    @staticmethod
    def _live(heap: list[tuple[int, int, Req]]) -> list[tuple[int, int, Req]]:
        live = [e for e in heap if e[2].member_id == e[1]]
        heapq.heapify(live)
        return live


def _pop_until(heap: list[tuple[int, int, Req]], tick: int) -> list[Req]:
    """Pop the entries due at or before ``tick``; the live ones (member id still current),
    in running order."""
    out = []
    while heap and heap[0][0] <= tick:
        _, mid, req = heapq.heappop(heap)
        if req.member_id == mid:
            out.append(req)
    out.sort(key=_run_order)
    return out


def _run_order(req: Req) -> int:
    return req.run_seq
