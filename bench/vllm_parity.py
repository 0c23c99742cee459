"""Step-by-step parity of kvplan's scheduler with vLLM 0.34.0's v1 Scheduler (no model, no GPU).

vLLM side: its own ``Scheduler`` with its KV cache manager and prefix cache, built from a
``VllmConfig`` (``EngineArgs.create_engine_config()`` on the stand-in H100 of
bench/vllm_cpu.py) and a hand-built ``KVCacheConfig`` of N blocks (one full-attention group);
each step calls ``schedule()`` and then ``update_from_output()`` with made-up sampled tokens
(each request's next token from a fixed list, so a later turn can quote an earlier answer).

kvplan side: the same requests (chained block hashes of the same token ids) through kvplan's
``Scheduler`` and ``KvStore`` in an HBM-only replica of N - 1 blocks (vLLM keeps block 0 as
its null block), driven one iteration at a time without a clock (the seam: ``schedule(now)``
then the event loop's step-completion handler with one iteration).

Per step both sides report: tokens scheduled per request (prefill chunks and decodes),
requests admitted and their prefix-cache hit tokens, preemptions, and finished requests; the
first differing steps are printed per workload. Workloads: shared-prefix, same-step sharing,
long prompts (chunked prefill), exact repeats, cache pressure (preemption), admission of long
prompts into a nearly full cache, and multi-turn sessions that quote earlier answers.

    PYTHONPATH=. /work/venvs/engines/bin/python bench/vllm_parity.py [-v] [--workload NAME]

Needs the venv of bench/vllm_cpu.py and kvplan's own dependencies on the path (the venv can
import kvplan's pure-Python simulator with numpy, numba, pyarrow and polars installed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BS = 16
"""Tokens per block on both sides."""


@dataclass(frozen=True)
class Spec:
    """One request: its prompt, the tokens the model 'samples', and the step it arrives at."""

    prompt: list[int]
    output: list[int]
    arrival_step: int


@dataclass(frozen=True)
class Workload:
    name: str
    requests: list[Spec]
    num_blocks: int
    """vLLM's KVCacheConfig.num_blocks (kvplan gets one fewer: vLLM's null block)."""
    max_batched_tokens: int = 128
    max_seqs: int = 16


@dataclass
class Step:
    """What one scheduler step did, in request ids."""

    scheduled: dict[int, int] = field(default_factory=dict)
    admitted: dict[int, int] = field(default_factory=dict)
    """Newly admitted (or resumed) request -> prefix-cache hit tokens."""
    preempted: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)

    def key(self) -> tuple:
        return (sorted(self.scheduled.items()), sorted(self.admitted.items()),
                sorted(self.preempted), sorted(self.finished))


# -- workloads ---------------------------------------------------------------------------------

def _tokens(rng: np.random.Generator, n: int) -> list[int]:
    return rng.integers(1000, 30000, n).tolist()


def shared_prefix(rng) -> Workload:
    system = _tokens(rng, 64)
    reqs = [Spec(system + _tokens(rng, int(rng.integers(8, 60))), _tokens(rng, int(rng.integers(4, 24))),
                 int(rng.integers(0, 12))) for _ in range(14)]
    return Workload("shared-prefix", sorted(reqs, key=lambda r: r.arrival_step), 96)


def same_step(rng) -> Workload:
    docs = [_tokens(rng, 80) for _ in range(3)]
    reqs = [Spec(docs[i % 3] + _tokens(rng, 10 + 7 * i), _tokens(rng, 6), 2 * (i // 6))
            for i in range(12)]
    return Workload("same-step-sharing", reqs, 128, max_batched_tokens=256)


def long_prompt(rng) -> Workload:
    reqs = [Spec(_tokens(rng, int(rng.integers(300, 700))), _tokens(rng, 8), 3 * i)
            for i in range(6)]
    return Workload("long-prompt", reqs, 160, max_batched_tokens=128)


def repeats(rng) -> Workload:
    prompts = [_tokens(rng, 48), _tokens(rng, 33)]
    reqs = [Spec(prompts[i % 2], _tokens(rng, 5), i) for i in range(10)]
    return Workload("exact-repeats", reqs, 64)


def cache_pressure(rng) -> Workload:
    reqs = [Spec(_tokens(rng, int(rng.integers(40, 100))), _tokens(rng, int(rng.integers(20, 60))),
                 int(rng.integers(0, 6))) for _ in range(10)]
    return Workload("cache-pressure", sorted(reqs, key=lambda r: r.arrival_step), 32)


def admission(rng) -> Workload:
    reqs = [Spec(_tokens(rng, 40), _tokens(rng, 40), 0) for _ in range(3)]
    reqs += [Spec(_tokens(rng, int(rng.integers(200, 260))), _tokens(rng, 4), 1 + i)
             for i in range(4)]
    return Workload("admission-full-cache", reqs, 30, max_batched_tokens=64)


def eviction_order(rng) -> Workload:
    """One request at a time in a small pool: which cached blocks survive decides the hits."""
    prompts = [_tokens(rng, 40) for _ in range(3)]
    reqs = [Spec(prompts[p], _tokens(rng, 20), 30 * i) for i, p in enumerate([0, 1, 2, 0, 1, 2])]
    return Workload("eviction-order", reqs, 10, max_batched_tokens=64)


def mixed(rng) -> Workload:
    """Many requests: shared documents, repeats, long and short prompts, a tight pool."""
    docs = [_tokens(rng, int(rng.integers(30, 200))) for _ in range(5)]
    reqs = []
    for _ in range(60):
        head = docs[int(rng.integers(0, 5))] if rng.random() < 0.7 else []
        reqs.append(Spec(head + _tokens(rng, int(rng.integers(1, 120))),
                         _tokens(rng, int(rng.integers(1, 50))), int(rng.integers(0, 80))))
    return Workload("mixed", sorted(reqs, key=lambda r: r.arrival_step), 64, max_seqs=12)


def multi_turn(rng) -> Workload:
    reqs, t = [], 0
    for _ in range(3):
        history = _tokens(rng, 40)
        for _ in range(3):
            out = _tokens(rng, int(rng.integers(18, 40)))
            reqs.append(Spec(list(history), out, t))
            history = history + out + _tokens(rng, 12)
            t += 9
    return Workload("multi-turn", sorted(reqs, key=lambda r: r.arrival_step), 200)


WORKLOADS = (shared_prefix, same_step, long_prompt, repeats, cache_pressure, admission,
             eviction_order, mixed, multi_turn)


# -- vLLM --------------------------------------------------------------------------------------

class VllmSide:
    """vLLM's Scheduler, one schedule() + update_from_output() per step."""

    def __init__(self, w: Workload, model: str) -> None:
        import torch
        from vllm.engine.arg_utils import EngineArgs
        from vllm.utils.hashing import get_hash_fn_by_name
        from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
        from vllm.v1.core.sched.scheduler import Scheduler
        from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
        from vllm.v1.structured_output import StructuredOutputManager

        cfg = EngineArgs(model=model, block_size=BS, enable_prefix_caching=True,
                         max_num_batched_tokens=w.max_batched_tokens, max_num_seqs=w.max_seqs,
                         max_model_len=4096, async_scheduling=False, skip_tokenizer_init=True,
                         kv_cache_memory_bytes=1 << 30).create_engine_config()
        cfg.cache_config.num_gpu_blocks = w.num_blocks
        spec = FullAttentionSpec(block_size=BS, num_kv_heads=8, head_size=128, dtype=torch.bfloat16)
        kv = KVCacheConfig(num_blocks=w.num_blocks, kv_cache_tensors=[],
                           kv_cache_groups=[KVCacheGroupSpec(["layer.0"], spec)])
        self.sched = Scheduler(vllm_config=cfg, kv_cache_config=kv, block_size=BS,
                               structured_output_manager=StructuredOutputManager(cfg))
        hash_fn = get_hash_fn_by_name(cfg.cache_config.prefix_caching_hash_algo)
        init_none_hash(hash_fn)
        self.hasher = get_request_block_hasher(BS, hash_fn)
        self.w = w
        self.config = cfg

    def add(self, i: int) -> None:
        from vllm.sampling_params import SamplingParams
        from vllm.v1.request import Request

        s = self.w.requests[i]
        params = SamplingParams(max_tokens=len(s.output), ignore_eos=True)
        self.sched.add_request(Request(str(i), list(s.prompt), params, None,
                                       arrival_time=float(s.arrival_step),
                                       block_hasher=self.hasher))

    def step(self) -> Step:
        from vllm.v1.outputs import ModelRunnerOutput

        out = self.sched.schedule()
        rec = Step(scheduled={int(k): v for k, v in out.num_scheduled_tokens.items()},
                   admitted={int(r.req_id): r.num_computed_tokens for r in out.scheduled_new_reqs},
                   preempted={int(r) for r in (out.preempted_req_ids or ())})
        ids = list(out.num_scheduled_tokens)
        sampled = []
        for rid in ids:
            req = self.sched.requests[rid]
            done = req.num_computed_tokens >= req.num_tokens
            sampled.append([self.w.requests[int(rid)].output[req.num_output_tokens]] if done else [])
        result = self.sched.update_from_output(out, ModelRunnerOutput(req_ids=ids,
                                                                      sampled_token_ids=sampled))
        for eco in result.values():
            rec.finished |= {int(o.request_id) for o in eco.outputs if o.finish_reason is not None}
        return rec

    def busy(self) -> bool:
        return self.sched.has_requests()


# -- kvplan ------------------------------------------------------------------------------------

def chained_hashes(tokens: list[int]) -> list[int]:
    """One uint64 per full block, chained: equal only when every earlier token is equal."""
    out, h = [], hashlib.blake2b(digest_size=8)
    for k in range(len(tokens) // BS):
        h.update(np.asarray(tokens[k * BS:(k + 1) * BS], dtype=np.int64).tobytes())
        out.append(int.from_bytes(h.copy().digest(), "little"))
    return out


def commit_upto(store, req, tokens: int, now: float) -> None:
    """Cache ``req``'s full blocks up to ``tokens`` computed tokens (kvplan's commit rule)."""
    store.commit(req, now, tokens)


class KvplanSide:
    """kvplan's Scheduler and KvStore in an HBM-only replica, one iteration per step.

    ``rules`` 0: kvplan without the vLLM scheduler rules (kvplan.sim.schedrules.PLAIN); 1: with
    them (what ``engine="vllm"`` runs); 2: also (c), cached blocks of generated tokens, patched
    on here: each request's blocks get its output's full blocks (their ids come from a phantom
    workload row that is never replayed, so the core's arrays cover them) and decoders commit
    their blocks each step.
    """

    def __init__(self, w: Workload, vllm_rules: int = 0) -> None:
        import pyarrow as pa

        from kvplan.hierarchy import Tier
        from kvplan.sim.build import build_cost
        from kvplan.sim.config import ReplayConfig
        from kvplan.sim.core.layout import CAP, tier_word
        from kvplan.sim.engine import EventSim
        from kvplan.units import GIB
        from kvplan.workload import WORKLOAD_SCHEMA, WorkloadMeta
        from kvplan.workload import Workload as KvWorkload

        reqs = list(w.requests) + [Spec([t for s in w.requests for t in s.prompt + s.output],
                                        [0], 10**9)]
        n = len(reqs)
        hashes = [chained_hashes(s.prompt) for s in w.requests]
        hashes.append([h for s in w.requests for h in chained_hashes(s.prompt + s.output)])
        table = pa.table({
            "request_id": list(range(n)), "session_id": list(range(n)), "turn": [0] * n,
            "arrival_s": [float(s.arrival_step) for s in reqs],
            "input_tokens": [len(s.prompt) for s in reqs],
            "output_tokens": [len(s.output) for s in reqs],
            "block_hashes": hashes, "tool_wait_s": [None] * n}, schema=WORKLOAD_SCHEMA)
        meta = WorkloadMeta(source_format="synth", source_file="vllm_parity", block_size=BS,
                            tokenizer="none")
        cfg = ReplayConfig(max_batched_tokens=w.max_batched_tokens, max_seqs=w.max_seqs,
                           engine="vllm")
        cost = build_cost(cfg)
        cfg = ReplayConfig(max_batched_tokens=w.max_batched_tokens, max_seqs=w.max_seqs,
                           engine="vllm",
                           hbm_kv_gib=(w.num_blocks - 1) * BS * cost.kv_bytes_per_token / GIB)
        self.sim = EventSim(KvWorkload(table=table, meta=meta), cfg, cost)
        assert tier_word(self.sim.store.m, Tier.HBM, CAP) == w.num_blocks - 1
        if not vllm_rules:
            self.sim.sched.cache_at_schedule = self.sim.store.full_admission = False
        self.decode_blocks = vllm_rules > 1
        self.w = w
        st = self.sim.stream
        self.ids = dict(zip(hashes[-1], st.ids[st.offsets[n - 1]:st.offsets[n]].tolist(),
                            strict=True))
        self.now = 0.0

    def add(self, i: int) -> None:
        import numpy as np

        from kvplan.sim.events import Arrival

        self.sim._on_arrival(Arrival(i))
        if self.decode_blocks:  # vLLM also caches full blocks of generated tokens
            s = self.w.requests[i]
            req = self.sim.sched.waiting[-1]
            out = [self.ids[h] for h in chained_hashes(s.prompt + s.output)[len(req.blocks):]]
            req.blocks = np.concatenate([req.blocks, np.asarray(out, dtype=np.int64)])

    def step(self) -> Step:
        from kvplan.sim.events import StepDone

        sim, sched = self.sim, self.sim.sched
        before = {r.idx for r in sched.running}
        preemptions = {r.idx: r.preemptions for r in sched.running}
        items, _ = sched.schedule(self.now)
        rec = Step(scheduled={r.idx: n for r, n in items},
                   admitted={r.idx: r.computed for r, _ in items if r.idx not in before},
                   preempted={i for i, p in preemptions.items()
                              if _req(sched, i) is None or _req(sched, i).preemptions > p})
        rec.scheduled |= {r.idx: 1 for r in sched.running if r.tick0 >= 0}
        if self.decode_blocks:
            tick = sched.decoders.tick
            for r in sched.running:
                if r.tick0 >= 0:
                    commit_upto(sim.store, r, r.computed + tick - r.tick0 + 1, self.now)
        running = list(sched.running)
        sim.batch = items
        sim.now = self.now
        sim._on_step_done(StepDone(1))
        rec.finished = {r.idx for r in running if r.run_seq == -1 and r.generated >= r.out}
        self.now += 1.0
        return rec

    def busy(self) -> bool:
        return bool(self.sim.sched.waiting or self.sim.sched.running)


def _req(sched, idx: int):
    return next((r for r in list(sched.running) + list(sched.waiting) if r.idx == idx), None)


# -- the diff ----------------------------------------------------------------------------------

def run(w: Workload, model: str, vllm_rules: int = 0, max_steps: int = 5000
        ) -> tuple[list[Step], list[Step]]:
    sides = (VllmSide(w, model), KvplanSide(w, vllm_rules))
    logs: tuple[list[Step], list[Step]] = ([], [])
    nxt = 0
    for step in range(max_steps):
        while nxt < len(w.requests) and w.requests[nxt].arrival_step <= step:
            for side in sides:
                side.add(nxt)
            nxt += 1
        if nxt == len(w.requests) and not any(side.busy() for side in sides):
            break
        for side, log in zip(sides, logs, strict=True):
            log.append(side.step())
    return logs


def describe(i: int, a: Step, b: Step) -> str:
    parts = []
    for name in ("scheduled", "admitted", "preempted", "finished"):
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            parts.append(f"{name}: vLLM {_show(x)} | kvplan {_show(y)}")
    return f"  step {i}: " + "; ".join(parts)


def _show(v) -> str:
    return str(dict(sorted(v.items()))) if isinstance(v, dict) else str(sorted(v))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-v", action="store_true", help="print every differing step")
    ap.add_argument("--workload", help="run only this workload")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--all-rules", action="store_true",
                    help="also run kvplan without vLLM's scheduler rules (a) same-step "
                         "caching and (b) whole-prompt admission, and with (c) cached blocks "
                         "of generated tokens patched on")
    args = ap.parse_args()
    import vllm_cpu

    vllm_cpu.setup()
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = str(vllm_cpu.model_dir(Path(tmp) / "llama-3.1-8b"))
        for make in WORKLOADS:
            w = make(np.random.default_rng(args.seed))
            if args.workload and w.name != args.workload:
                continue
            for rules in (0, 1, 2) if args.all_rules else (1,):
                t0 = time.perf_counter()
                a, b = run(w, model, rules)
                n = max(len(a), len(b))
                pad = Step()
                diff = [i for i in range(n) if (a[i] if i < len(a) else pad).key()
                        != (b[i] if i < len(b) else pad).key()]
                label = w.name + (" -rules a,b", "", " +rule c")[rules]
                summary[label] = {"steps_vllm": len(a), "steps_kvplan": len(b),
                                  "differing_steps": len(diff)}
                print(f"{label}: {len(w.requests)} requests, {w.num_blocks} blocks of {BS}; "
                      f"steps vLLM {len(a)}, kvplan {len(b)}; differing steps {len(diff)} "
                      f"({time.perf_counter() - t0:.1f} s)")
                for i in diff[:None if args.v else 3]:
                    print(describe(i, a[i] if i < len(a) else pad, b[i] if i < len(b) else pad))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
