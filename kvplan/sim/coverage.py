"""Which predictions of a run fall outside the ranges a calibrated profile measured.

A calibrated curve is clamped, not extrapolated, outside its points, so a step or a transfer
beyond them is a guess. The run keeps, in O(1) per step or transfer, the smallest and largest
input each curve was asked about and how many it saw outside, and reports them once at the end
(docs/metrics.md, ``extrapolated``)::

    h2d curve measured at 64 KiB .. 256 MiB, transfers of 2 MiB .. 1 GiB
    -> "h2d transfers 2 MiB..1 GiB outside measured 64 KiB..256 MiB (12 of 300)"

A datasheet profile has no curves: its ranges are unbounded and nothing is ever flagged.
"""

from __future__ import annotations

import math
from bisect import bisect_left

from kvplan.cost.model import CostModel
from kvplan.sim.results import Extrapolation


class Range:
    """Running min / max of the inputs given to one curve, and how many fell outside it."""

    __slots__ = ("lo", "hi", "scale", "low", "high", "seen", "outside")

    def __init__(self, lo: float = -math.inf, hi: float = math.inf, scale: float = 1.0) -> None:
        self.lo, self.hi, self.scale = lo * scale, hi * scale, scale
        """Measured range in the caller's units (curve units x ``scale``)."""
        self.low, self.high = math.inf, -math.inf
        self.seen = self.outside = 0

    def add(self, x: float, n: int = 1) -> None:
        """``n`` predictions at input ``x``."""
        self.span(x, x, n, 0 if self.lo <= x <= self.hi else n)

    def inside(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def span(self, low: float, high: float, n: int, outside: int) -> None:
        """``n`` predictions with inputs from ``low`` to ``high``, ``outside`` of them outside."""
        if low < self.low:
            self.low = low
        if high > self.high:
            self.high = high
        self.seen += n
        self.outside += outside

    def describe(self, what: str, unit: str) -> str:
        """'' when all inputs were inside, else one short clause naming the ranges."""
        if not self.outside:
            return ""
        f = _bytes if unit == "bytes" else _tokens
        s = self.scale
        return (f"{what} {f(self.low / s)}..{f(self.high / s)} outside measured "
                f"{f(self.lo / s)}..{f(self.hi / s)} ({self.outside:,} of {self.seen:,})")


def link_range(cost: CostModel, name: str) -> Range:
    """The range of a link's measured curve in whole-transfer bytes (h2d/d2h are split over
    the replica's tp GPUs, so a transfer of n bytes asks the curve about n / tp)."""
    curve = cost.profile.curves.get(name)
    if curve is None:
        return Range()
    return Range(curve.x[0], curve.x[-1], cost.tp if name in ("h2d", "d2h") else 1)


class StepCoverage:
    """Token counts (gemm curve) and decode KV bytes read (attn_decode curve) of every GPU
    iteration (CostModel.coverage_ranges)."""

    def __init__(self, cost: CostModel) -> None:
        self.cost = cost
        tokens, read = cost.coverage_ranges()
        self.active = tokens is not None or read is not None
        self.tokens = Range(*tokens) if tokens else Range()
        self.read = Range(*read) if read else Range()
        self.outside = 0
        """Iterations outside either range."""

    def add_step(self, tokens: int, seqs: int, ctx: int) -> None:
        """One iteration of ``tokens`` tokens, ``seqs`` of them decodes over ``ctx`` context."""
        if not self.active:
            return
        read, tokens = self.cost.step_read_bytes(tokens, seqs, ctx), max(tokens, 1)
        self.outside += not (self.tokens.inside(tokens) and self.read.inside(read))
        self.tokens.add(tokens)
        self.read.add(read)

    def add_run(self, seqs: int, ctx0: int, k: int) -> None:
        """``k`` decode-only iterations of ``seqs`` sequences, context ctx0 + seqs x j at the
        j-th. Bytes read grow with j, so the iterations outside the hbm range are a prefix
        and a suffix, found by bisection."""
        if not self.active:
            return
        cost, rng = self.cost, self.read

        def read(j: int) -> float:
            return cost.step_read_bytes(seqs, seqs, ctx0 + seqs * j)

        first, last = read(0), read(k - 1)
        out = 0
        if not (rng.inside(first) and rng.inside(last)):
            out = bisect_left(range(k), True, key=lambda j: read(j) >= rng.lo)
            out += k - bisect_left(range(k), True, key=lambda j: read(j) > rng.hi)
        rng.span(first, last, k, out)
        self.tokens.add(seqs, k)
        self.outside += k if not self.tokens.inside(seqs) else out


def summary(steps: StepCoverage, links: dict[str, Range]) -> Extrapolation:
    """The run's ``extrapolated`` text and counts ('' and 0 when everything was covered)."""
    parts = [steps.tokens.describe("step tokens", "tokens"),
             steps.read.describe("step HBM bytes read per GPU", "bytes")]
    parts += [rng.describe(f"{name} transfers", "bytes") for name, rng in links.items()]
    return Extrapolation("; ".join(p for p in parts if p), steps.outside,
                         sum(r.outside for r in links.values()))


def _bytes(n: float) -> str:
    """2097152 -> '2 MiB', 1536 -> '1.5 KiB'."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n:.4g} B"


def _tokens(n: float) -> str:
    return f"{n:,.0f}"
