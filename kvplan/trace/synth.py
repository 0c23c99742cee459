"""Seeded synthetic workloads in the canonical table: chat, agent, shared-prefix, long-doc QA.

Each session is a token stream of segments (random 64-bit ids; shared segments reuse the same
ids, so their blocks are shared). Every output segment is a request whose prompt is the stream
before it, exactly as for real conversations (:mod:`kvplan.trace.conversation`):

- ``chat``: multi-turn sessions, turns ~ 1 + Poisson(mean_turns - 1); user and answer lengths
  lognormal; a short system prompt shared by all sessions; think time between turns.
- ``agent``: a long shared system prompt + tool schema, many calls per run, each call's
  observation appended (growing context); tool waits between calls.
- ``shared-prefix``: single-turn requests on one of ``templates`` long prompts chosen with Zipf
  popularity p(k) ~ 1 / k^zipf_s (like SGLang's generated-shared-prefix bench), then a unique
  question.
- ``long-doc-qa``: sessions ask several questions about one of ``documents`` long documents
  (uniform choice); the document is the shared prefix.

Every parameter is a field of :class:`SynthSpec` with its default; lengths are in tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from kvplan.errors import KvplanError
from kvplan.trace.arrivals import ArrivalSpec, synthesize
from kvplan.trace.hashing import block_positions, chain_units
from kvplan.trace.table import Columns, build_workload
from kvplan.workload import Workload, WorkloadMeta

KINDS = ("chat", "agent", "shared-prefix", "long-doc-qa")


@dataclass(frozen=True)
class SynthSpec:
    """Parameters of a synthetic workload (override any with ``--set name=value``)."""

    kind: str = "chat"
    sessions: int = 200
    block_size: int = 16
    system_tokens: int = 200
    """chat: shared system prompt; agent: shared system prompt + tool schema (set 4,000)."""
    mean_turns: float = 4.0
    """chat/agent/long-doc-qa: mean requests per session (1 + Poisson)."""
    user_tokens_median: float = 80.0
    """Median length of a user message / question / observation (lognormal, sigma 1)."""
    output_tokens_median: float = 200.0
    """Median answer length (lognormal, sigma 0.8)."""
    templates: int = 16
    template_tokens: int = 2000
    zipf_s: float = 1.1
    documents: int = 10
    document_tokens: int = 20000

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise KvplanError(f"unknown synth kind '{self.kind}', expected one of "
                              f"{', '.join(KINDS)}")
        for name in ("sessions", "block_size", "mean_turns"):
            if getattr(self, name) < 1:
                raise KvplanError(f"synth: {name} must be >= 1, got {getattr(self, name)}")

    def with_overrides(self, pairs: list[str]) -> SynthSpec:
        """Apply ``name=value`` overrides, typed like the field's default."""
        known = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        changes = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or name not in known or name == "kind":
                raise KvplanError(f"bad --set '{pair}': expected name=value with name one of "
                                  f"{', '.join(n for n in known if n != 'kind')}")
            try:
                changes[name] = known[name](value)
            except ValueError:
                raise KvplanError(f"bad --set '{pair}': expected a {known[name].__name__}"
                                  ) from None
        return replace(self, **changes)


AGENT_DEFAULTS = {"system_tokens": 4000, "mean_turns": 15.0, "user_tokens_median": 400.0,
                  "output_tokens_median": 80.0}


def default_spec(kind: str) -> SynthSpec:
    """The documented defaults for ``kind`` (agent runs: long prompt, many short calls)."""
    return SynthSpec(kind=kind, **(AGENT_DEFAULTS if kind == "agent" else {}))


def synth_workload(spec: SynthSpec, arrivals: ArrivalSpec) -> Workload:
    """Generate the workload described by ``spec``, arrivals from ``arrivals`` (seeded)."""
    rng = np.random.default_rng(np.random.SeedSequence(arrivals.seed).spawn(4)[3])
    sessions = _SESSIONS[spec.kind](spec, rng)
    session, prompt, output, hashes, offsets = _requests(sessions, spec.block_size)
    after_tool = np.full(len(session), spec.kind == "agent")
    arrival, tool_wait = synthesize(arrivals, session, output, after_tool)
    meta = WorkloadMeta(source_format="synth", source_file=f"synth {spec}",
                        block_size=spec.block_size, tokenizer="none",
                        arrival_process=arrivals.describe())
    return build_workload(Columns(session, arrival, prompt, output, hashes, offsets,
                                  tool_wait if spec.kind == "agent" else None), meta)


Segment = tuple[np.ndarray, bool]  # (token ids, is a model output)


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**63, size=max(int(n), 1), dtype=np.int64).astype(np.uint64)


def _len(rng: np.random.Generator, median: float, sigma: float) -> int:
    return max(1, int(rng.lognormal(np.log(median), sigma)))


def _turns(rng: np.random.Generator, spec: SynthSpec) -> int:
    return 1 + int(rng.poisson(spec.mean_turns - 1))


def _chat(spec: SynthSpec, rng: np.random.Generator) -> list[list[Segment]]:
    system = _ids(rng, spec.system_tokens)
    out = []
    for _ in range(spec.sessions):
        segs: list[Segment] = [(system, False)]
        for _ in range(_turns(rng, spec)):
            segs += [(_ids(rng, _len(rng, spec.user_tokens_median, 1.0)), False),
                     (_ids(rng, _len(rng, spec.output_tokens_median, 0.8)), True)]
        out.append(segs)
    return out


def _shared_prefix(spec: SynthSpec, rng: np.random.Generator) -> list[list[Segment]]:
    templates = [_ids(rng, spec.template_tokens) for _ in range(spec.templates)]
    p = 1.0 / np.arange(1, spec.templates + 1) ** spec.zipf_s
    pick = rng.choice(spec.templates, size=spec.sessions, p=p / p.sum())
    return [[(templates[k], False), (_ids(rng, _len(rng, spec.user_tokens_median, 1.0)), False),
             (_ids(rng, _len(rng, spec.output_tokens_median, 0.8)), True)] for k in pick]


def _long_doc(spec: SynthSpec, rng: np.random.Generator) -> list[list[Segment]]:
    docs = [_ids(rng, spec.document_tokens) for _ in range(spec.documents)]
    out = []
    for k in rng.integers(0, spec.documents, size=spec.sessions):
        segs: list[Segment] = [(docs[k], False)]
        for _ in range(_turns(rng, spec)):
            segs += [(_ids(rng, _len(rng, spec.user_tokens_median, 1.0)), False),
                     (_ids(rng, _len(rng, spec.output_tokens_median, 0.8)), True)]
        out.append(segs)
    return out


_SESSIONS = {"chat": _chat, "agent": _chat, "shared-prefix": _shared_prefix,
             "long-doc-qa": _long_doc}


def _requests(sessions: list[list[Segment]], block_size: int):
    """Chain each session's stream once; one request per output segment."""
    lengths = np.array([sum(len(t) for t, _ in s) for s in sessions], dtype=np.int64)
    bounds = np.r_[0, np.cumsum(lengths)]
    chain = chain_units(np.concatenate([t for s in sessions for t, _ in s]), bounds)
    session, prompt, output = [], [], []
    for i, segs in enumerate(sessions):
        pos = 0
        for tokens, is_output in segs:
            if is_output:
                session.append(i)
                prompt.append(pos)
                output.append(len(tokens))
            pos += len(tokens)
    session, prompt, output = (np.array(x, dtype=np.int64) for x in (session, prompt, output))
    n_blocks = prompt // block_size
    offsets = np.r_[0, np.cumsum(n_blocks)].astype(np.int64)
    hashes = chain[block_positions(bounds[session], n_blocks, block_size)]
    return session, prompt, output, hashes, offsets
