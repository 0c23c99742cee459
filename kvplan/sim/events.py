"""Event queue of the event-mode simulator, and its small frozen events.

The queue is keyed ``(time_s, priority, seq)``: ``seq`` is an instance counter, so two events
at the same time and priority pop in the order they were pushed (SimPy's rule) and a run is
deterministic. Handlers in the engine return the events they create; only the loop pushes.

Priorities at equal times: transfers finish first (freed bytes and loaded blocks are visible
to the step that follows), then GPU steps, then arrivals, then session-pin expiries.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

PRIO_TRANSFER = 0
PRIO_STEP = 1
PRIO_ARRIVAL = 2
PRIO_EXPIRE = 3


@dataclass(frozen=True, slots=True)
class Arrival:
    """Request ``req`` (a row of the workload) arrives."""

    req: int


@dataclass(frozen=True, slots=True)
class StepDone:
    """The GPU finishes ``iters`` iterations of the batch it started (decode runs: iters > 1)."""

    iters: int


@dataclass(frozen=True, slots=True)
class LinkWake:
    """Link ``link`` may have a transfer phase ending now; stale when ``version`` moved on."""

    link: int
    version: int


@dataclass(frozen=True, slots=True)
class Unpark:
    """A just-in-time (oracle) load of ``req`` ends; ``req`` is a ``kvstore.Req``."""

    req: object


@dataclass(frozen=True, slots=True)
class PinExpire:
    """The HBM pins that request ``req`` left for its session ``session`` expire."""

    session: int
    req: int


Event = Arrival | StepDone | LinkWake | Unpark | PinExpire


class EventQueue:
    """A binary heap of ``(time_s, priority, seq, event)``."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Event]] = []
        self._seq = 0

    def push(self, time_s: float, priority: int, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time_s, priority, self._seq, event))

    def pop(self) -> tuple[float, Event]:
        time_s, _, _, event = heapq.heappop(self._heap)
        return time_s, event

    def peek_time(self) -> float:
        """Time of the next event (``inf`` when empty)."""
        return self._heap[0][0] if self._heap else float("inf")

    def __len__(self) -> int:
        return len(self._heap)
