"""Event queue of the event-mode simulator, and its small frozen events.

The queue is keyed ``(time_s, priority, seq)``: ``seq`` is an instance counter, so two events
at the same time and priority pop in the order they were pushed (SimPy's rule) and a run is
deterministic. Handlers in the engine return the events they create; only the loop pushes.

Priorities at equal times: just-in-time load ends first, then GPU steps, then arrivals, then
session-pin expiries. Transfers on the links are not queued events: the engine's loop takes
them from the links' own clock, before any event at the same time (freed bytes and loaded
blocks are visible to the step that follows).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

PRIO_TRANSFER = 0
"""Just-in-time (oracle) load ends."""
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
class Unpark:
    """A just-in-time (oracle) load of ``req`` ends; ``req`` is a ``kvplan.sim.request.Req``."""

    req: object


@dataclass(frozen=True, slots=True)
class PinExpire:
    """The HBM pins that request ``req`` left for its session ``session`` expire."""

    session: int
    req: int


@dataclass(frozen=True, slots=True)
class StageExpire:
    """What was staged for request ``req`` (a session's next turn) is dropped unless it has
    arrived."""

    req: int


Event = Arrival | StepDone | Unpark | PinExpire | StageExpire


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
