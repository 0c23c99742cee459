"""Synthesized arrival times for traces without timestamps (ShareGPT, agent logs, synth).

New sessions start by a Poisson process (``rate_per_s``) or, with ``cv`` set, a gamma renewal
process of the same mean rate and that coefficient of variation (cv > 1: burstier). A session's
next turn arrives after the previous turn's response has streamed (``output_tokens *
response_s_per_token``, a nominal 50 tok/s) plus a gap: the user's think time for chat turns,
the tool's run time for agent turns::

    turn 0 at start;  arrival[t] = arrival[t-1] + out[t-1] * 0.02 s + gap[t]

Defaults and why (docs/workload.md): 1 new session/s keeps a single replica busy but not
saturated on ShareGPT-sized prompts; think time lognormal(median 10 s, sigma 1.0), a heavy
right tail as measured for human read/type pauses; tool time lognormal(median 1.5 s, sigma
1.0), shell commands and file edits of coding agents mostly take about a second, tests longer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kvplan.errors import KvplanError
from kvplan.trace.table import turns_of


@dataclass(frozen=True)
class Dist:
    """A positive duration distribution in seconds, written ``exp:MEAN``, ``const:S`` or
    ``lognormal:MEDIAN,SIGMA``."""

    kind: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> Dist:
        kind, _, rest = text.partition(":")
        arity = {"exp": 1, "const": 1, "lognormal": 2}
        try:
            params = tuple(float(x) for x in rest.split(","))
        except ValueError:
            params = ()
        if kind not in arity or len(params) != arity[kind] or min(params, default=-1) < 0:
            raise KvplanError(f"bad distribution '{text}': expected exp:MEAN, const:SECONDS or "
                              "lognormal:MEDIAN,SIGMA with non-negative numbers")
        return cls(kind, params)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "exp":
            return rng.exponential(self.params[0], n)
        if self.kind == "const":
            return np.full(n, self.params[0])
        median, sigma = self.params
        return rng.lognormal(np.log(max(median, 1e-12)), sigma, n)

    @property
    def mean_s(self) -> float:
        if self.kind == "lognormal":
            return self.params[0] * float(np.exp(self.params[1] ** 2 / 2))
        return self.params[0]

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(f'{p:g}' for p in self.params)}"


DEFAULT_THINK_TIME = "lognormal:10,1.0"
"""User think time between chat turns (seconds; the module docstring says why)."""
DEFAULT_TOOL_TIME = "lognormal:1.5,1.0"
"""Agent tool time when a log records none (seconds)."""


@dataclass(frozen=True)
class ArrivalSpec:
    """How arrivals are synthesized; every random draw comes from ``seed``."""

    rate_per_s: float = 1.0
    """New sessions per second (mean)."""
    cv: float | None = None
    """Coefficient of variation of session inter-arrival gaps; None = Poisson (cv 1)."""
    think_time: Dist = field(default_factory=lambda: Dist.parse(DEFAULT_THINK_TIME))
    """Pause between a response and the user's next turn (chat)."""
    tool_time: Dist = field(default_factory=lambda: Dist.parse(DEFAULT_TOOL_TIME))
    """Tool run time between two LLM calls of an agent, when the log does not record it."""
    response_s_per_token: float = 0.02
    """Nominal streaming time of a response per output token (50 tok/s)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0 or (self.cv is not None and not self.cv > 0):
            raise KvplanError(f"--rate must be > 0 and --cv > 0, got {self.rate_per_s}, {self.cv}")

    def describe(self) -> str:
        process = (f"poisson(rate={self.rate_per_s:g}/s)" if self.cv is None
                   else f"gamma(rate={self.rate_per_s:g}/s, cv={self.cv:g})")
        return (f"{process}; think={self.think_time}; tool={self.tool_time}; "
                f"response={self.response_s_per_token:g} s/token; seed={self.seed}")

    def rngs(self) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
        """Independent streams for session starts, think times and tool times."""
        seqs = np.random.SeedSequence(self.seed).spawn(3)
        return tuple(np.random.default_rng(s) for s in seqs)  # type: ignore[return-value]


def session_starts(spec: ArrivalSpec, n_sessions: int, rng: np.random.Generator) -> np.ndarray:
    """Start times (s) of ``n_sessions`` sessions; the first starts at 0.

    Gamma gaps with shape 1/cv^2 and scale cv^2/rate have mean 1/rate and that cv; cv = 1 is
    the exponential (Poisson) case.
    """
    if spec.cv is None:
        gaps = rng.exponential(1.0 / spec.rate_per_s, n_sessions)
    else:
        shape = 1.0 / spec.cv**2
        gaps = rng.gamma(shape, 1.0 / (spec.rate_per_s * shape), n_sessions)
    starts = np.cumsum(gaps)
    return starts - starts[0] if n_sessions else starts


def turn_arrivals(session: np.ndarray, turn: np.ndarray, output_tokens: np.ndarray,
                  gap_s: np.ndarray, starts: np.ndarray, s_per_token: float) -> np.ndarray:
    """Arrival of every turn; rows grouped by session, turns in order within each session.

    Example: one session starting at 5 s, outputs [100, 50], gaps [-, 3 s], 0.02 s/token ->
    arrivals [5, 5 + 2 + 3] = [5, 10].
    """
    prev_out = np.r_[0, output_tokens[:-1]].astype(np.float64)
    delta = np.where(turn > 0, prev_out * s_per_token + gap_s, 0.0)
    total = np.cumsum(delta)
    first = np.flatnonzero(turn == 0)
    base = np.repeat(total[first] - delta[first], np.diff(np.r_[first, len(turn)]))
    return starts[session] + total - base


def synthesize(spec: ArrivalSpec, session: np.ndarray, output_tokens: np.ndarray,
               after_tool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(arrival_s, tool_wait_s) for requests grouped by session, in turn order.

    Session i (numbered by first appearance) starts at the i-th start time; a turn right
    after a tool result waits a tool time (also returned as ``tool_wait_s``), others a think
    time. ``tool_wait_s`` is NaN (null) where no tool ran.
    """
    _, first, inverse = np.unique(session, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    dense = rank[inverse]
    turn = turns_of(dense)
    rng_start, rng_think, rng_tool = spec.rngs()
    starts = session_starts(spec, len(first), rng_start)
    think = spec.think_time.sample(rng_think, len(dense))
    tool = spec.tool_time.sample(rng_tool, len(dense))
    used_tool = after_tool & (turn > 0)
    gap = np.where(used_tool, tool, think)
    arrival = turn_arrivals(dense, turn, output_tokens, gap, starts, spec.response_s_per_token)
    return arrival, np.where(used_tool, tool, np.nan)
