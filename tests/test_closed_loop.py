"""Closed-loop sessions (kvplan.sim.arrivals): turns released by the simulated server."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.cost.model import attn_pairs
from kvplan.errors import InputError
from kvplan.sim.arrivals import session_graph
from kvplan.sim.build import build_cost, hbm_kv_gib_of, tier_capacity_blocks
from kvplan.sim.config import ReplayConfig
from kvplan.sim.replay import run_replay
from kvplan.sim.sessions import session_table
from kvplan.trace import load_workload
from kvplan.trace.convert import convert_trace
from kvplan.trace.read import default_trace_path
from kvplan.workload import WORKLOAD_SCHEMA, Workload, WorkloadMeta, read_workload
from kvplan.workload.schema import schema_for

CFG = ReplayConfig(hbm_kv_gib=4.0)
BS = 16


def sessions_workload(turns: list[tuple], extra: dict | None = None) -> Workload:
    """Rows of (session, arrival_s, input_tokens, output_tokens, tool_wait_s[, content]), in
    arrival order; prompts of one content key (default: the session) grow on one shared
    prefix, so a session's turns reuse each other."""
    rows = sorted(turns, key=lambda r: r[1])
    turn_of: dict[int, int] = {}
    cols: dict[str, list] = {k: [] for k in WORKLOAD_SCHEMA.names}
    for i, (s, t, inp, out, wait, *key) in enumerate(rows):
        cols["request_id"].append(i)
        cols["session_id"].append(s)
        cols["turn"].append(turn_of.setdefault(s, 0))
        turn_of[s] += 1
        cols["arrival_s"].append(t)
        cols["input_tokens"].append(inp)
        cols["output_tokens"].append(out)
        cols["block_hashes"].append([(key or [s])[0] * 1000 + b for b in range(inp // BS)])
        cols["tool_wait_s"].append(wait)
    cols |= extra or {}
    table = pa.table(cols).cast(schema_for(list(cols)))
    meta = WorkloadMeta(source_format="synth", source_file="test", block_size=BS,
                        tokenizer="none")
    return Workload(table, meta)


def _run(w: Workload, arrivals: str, cfg: ReplayConfig = CFG) -> pl.DataFrame:
    return run_replay(w, dataclasses.replace(cfg, arrivals=arrivals)).requests


def test_second_turn_arrives_at_first_turn_finish_plus_recorded_gap():
    # Turn 0: 1,024 tokens, 1 output token: it finishes after its one prefill step.
    w = sessions_workload([(0, 1.0, 1024, 1, None), (0, 1.5, 1040, 8, 2.5)])
    cost = build_cost(CFG)
    finish0 = 1.0 + cost.step_time_s(1024, attn_pairs(1024, 0), 0, 0)
    closed = _run(w, "closed")
    assert closed["finish_s"][0] == finish0
    assert closed["arrival_s"][1] == finish0 + 2.5  # exactly: released at finish + gap
    assert _run(w, "open")["arrival_s"][1] == 1.5  # open loop: the trace time


def test_without_a_recorded_wait_the_gap_is_the_trace_gap_less_the_nominal_response():
    # 10 s between the turns, 50 output tokens at the nominal 0.02 s/token: a 9 s gap.
    w = sessions_workload([(0, 0.0, 512, 50, None), (0, 10.0, 600, 4, None)])
    closed = _run(w, "closed")
    assert closed["arrival_s"][1] == pytest.approx(closed["finish_s"][0] + 9.0, abs=1e-12)


def test_a_negative_trace_gap_falls_back_to_a_seeded_think_time():
    # the second turn comes 0.1 s after the first, before 50 tokens could stream at 50 tok/s
    w = sessions_workload([(0, 0.0, 512, 50, None), (0, 0.1, 600, 4, None)])
    gap = session_graph(w.table).gap_s[1]
    assert gap > 0 and gap == session_graph(w.table).gap_s[1]  # same seed, same draw
    closed = _run(w, "closed")
    assert closed["arrival_s"][1] == closed["finish_s"][0] + gap


def _spaced(data, n_sessions: int) -> Workload:
    """Sessions 1,000 s apart (so the server is never busy with two at once), 1-3 turns
    each with recorded tool waits."""
    rows = []
    for s in range(n_sessions):
        t, inp = 1000.0 * s, data.draw(st.integers(16, 400))
        for k in range(data.draw(st.integers(1, 3))):
            out = data.draw(st.integers(1, 40))
            wait = data.draw(st.floats(0.0, 5.0)) if k else None
            rows.append((s, t, inp, out, wait))
            t, inp = t + 30.0, inp + data.draw(st.integers(0, 200))
    return sessions_workload(rows)


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_open_and_closed_agree_when_the_server_is_never_busy(data):
    """Closed loop on a trace = open loop on a trace whose arrivals are the closed loop's
    releases (turn finish + recorded gap, which is what a never-busy server records)."""
    w = _spaced(data, data.draw(st.integers(1, 4)))
    closed = _run(w, "closed")
    assert closed["queue_delay_s"].max() == 0.0  # never busy
    t = w.table.set_column(3, "arrival_s", pa.array(closed["arrival_s"].to_numpy()))
    open_ = _run(Workload(t, w.meta), "open")
    assert open_.equals(closed)
    assert _run(Workload(t, w.meta), "closed").equals(closed)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_overload_closed_loop_offered_load_falls_while_open_loop_queues_grow(data):
    """Many agent sessions whose trace sends each turn 10 ms after the last (recorded tool
    waits of 10 ms) on a small HBM: open loop piles turns up, closed loop waits for them."""
    n_sessions = data.draw(st.integers(6, 12))
    rows = [(s, 0.01 * s + 0.01 * k, 2000 + 300 * k, data.draw(st.integers(100, 300)),
             0.01 if k else None)
            for s in range(n_sessions) for k in range(data.draw(st.integers(2, 4)))]
    w = sessions_workload(rows)
    cfg = dataclasses.replace(CFG, hbm_kv_gib=1.0, max_seqs=4)
    closed, open_ = _run(w, "closed", cfg), _run(w, "open", cfg)
    assert closed["finished"].all() and open_["finished"].all()
    # every closed-loop arrival is at or after the open-loop one: offered load falls
    assert (closed["arrival_s"].to_numpy() >= open_["arrival_s"].to_numpy()).all()
    span = {k: float(df["arrival_s"].max() - df["arrival_s"].min())
            for k, df in (("closed", closed), ("open", open_))}
    assert span["closed"] > span["open"]
    # a closed-loop session never has two turns in the system; the open loop queues them
    by = closed.sort("session_id", "request_id").with_columns(
        pl.col("finish_s").shift(1).over("session_id").alias("prev_finish"))
    assert (by["arrival_s"] >= by["prev_finish"]).fill_null(True).all()
    assert open_["queue_delay_s"].mean() > closed["queue_delay_s"].mean()


# ---- Dynamo agentic graphs ---------------------------------------------------------------

def _row(rid, ts, inp, out, ids, wait_for=None, delay=None, tool=None, session="a"):
    rec = {"request_id": rid, "session_id": session, "timestamp": ts, "input_length": inp,
           "output_length": out, "hash_ids": ids}
    if wait_for is not None:
        rec["wait_for"] = wait_for
    if delay is not None:
        rec["delay"] = delay
    if tool is not None:
        rec["tool_wait_ms"] = tool
    return rec


def _jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


JOIN = [_row("A", 0, 1100, 20, [1, 2, 3], wait_for=[]),
        _row("B", 1000, 1200, 5, [1, 2, 4], wait_for=["A"], delay=0),
        _row("C", 1000, 1300, 300, [1, 2, 5], wait_for=["A"], delay=0),
        _row("D", 9000, 1600, 10, [1, 2, 3, 6], wait_for=["B", "C"], delay=100, tool=200)]


def test_dynamo_join_node_waits_for_its_last_parent(tmp_path):
    path = tmp_path / "graph.jsonl"
    _jsonl(path, JOIN)
    w = load_workload(path)
    assert w.table.column("wait_for").to_pylist() == [[], [0], [0], [1, 2]]
    assert w.table.column("delay_s").to_pylist() == [None, 0.0, 0.0, 0.1]
    r = _run(w, "closed")
    f = r["finish_s"].to_list()
    assert r["arrival_s"].to_list()[1:3] == [f[0], f[0]]  # both branches at A's finish
    assert f[2] > f[1]  # C, the long branch, finishes last
    assert r["arrival_s"][3] == f[2] + (0.1 + 0.2)  # the join: last parent + delay + tool
    assert _run(w, "open")["arrival_s"][3] == 9.0


def test_dynamo_graph_survives_parquet_round_trip(tmp_path):
    path, out = tmp_path / "graph.jsonl", tmp_path / "graph.parquet"
    _jsonl(path, JOIN)
    convert_trace(path, out)
    back = read_workload(out)
    assert back.table.column("wait_for").to_pylist() == [[], [0], [0], [1, 2]]
    assert back.table.column("delay_s").to_pylist() == [None, 0.0, 0.0, 0.1]
    assert _run(back, "closed").equals(_run(load_workload(path), "closed"))


@pytest.mark.parametrize(("rows", "message"), [
    ([_row("A", 0, 600, 5, [1, 2]), _row("B", 10, 600, 5, [1, 3], wait_for=["Z"])],
     ":2: field 'wait_for': unknown request id"),
    ([_row("A", 0, 600, 5, [1, 2], wait_for=["B"]), _row("B", 10, 600, 5, [1, 3])],
     ":1: field 'wait_for': waits for a request that does not arrive before it"),
    ([_row("A", 0, 600, 5, [1, 2]), _row("A", 10, 600, 5, [1, 3], wait_for=[])],
     ":2: field 'request_id': duplicate request id"),
    ([_row("A", 0, 600, 5, [1, 2], delay=-1)], ":1: field 'delay'"),
    ([_row("A", 0, 600, 5, [1, 2], wait_for="A")], ":1: field 'wait_for'"),
])
def test_bad_dynamo_graphs_name_the_line_and_field(tmp_path, rows, message):
    path = tmp_path / "bad.jsonl"
    _jsonl(path, rows)
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        load_workload(path)


def test_a_parquet_wait_for_must_name_earlier_requests(tmp_path):
    w = sessions_workload([(0, 0.0, 64, 2, None), (1, 1.0, 64, 2, None)],
                          extra={"wait_for": [[1], None]})
    path = tmp_path / "w.parquet"
    pq.write_table(w.table.replace_schema_metadata(
        {b"kvplan.workload": json.dumps(dataclasses.asdict(w.meta)).encode()}), path)
    with pytest.raises(InputError, match="row 0: expected request ids of earlier rows"):
        read_workload(path)


def test_bundled_dynamo_sample_replays_as_graph():
    w = load_workload(default_trace_path().parent / "dynamo_agentic_mooncake_sample.jsonl")
    r = _run(w, "closed")
    graph = session_graph(w.table)
    kids = np.flatnonzero(np.diff(graph.offsets))
    parent = graph.parents
    expect = r["finish_s"].to_numpy()[parent] + graph.gap_s[kids]
    assert np.array_equal(r["arrival_s"].to_numpy()[kids], expect)


# ---- per-session results and the CLI ------------------------------------------------------

def test_session_table_counts_turns_gaps_and_held_kv():
    w = sessions_workload([(0, 0.0, 512, 4, None), (0, 1.0, 800, 4, 3.0),
                           (1, 0.5, 300, 2, None)])
    r = _run(w, "closed")
    s = session_table(r).sort("session_id")
    assert s["turns"].to_list() == [2, 1]
    gap = r["arrival_s"][2] - r["finish_s"][0]  # rows by arrival: request 2 is turn 1
    assert s["between_turns_mean_s"][0] == pytest.approx(3.0) == pytest.approx(gap)
    assert s["kv_held_hbm_tokens"][0] == 512  # turn 1 found turn 0's 32 blocks in HBM
    assert s["duration_s"][0] == r["finish_s"][2] - r["arrival_s"][0]
    assert s["between_turns_mean_s"][1] is None


def _cli(*args):
    return CliRunner().invoke(app, ["replay", *args], env={"COLUMNS": "160"})


def test_replay_writes_sessions_and_takes_hbm_in_blocks(tmp_path):
    trace = tmp_path / "graph.jsonl"
    _jsonl(trace, JOIN)
    out = tmp_path / "out"
    res = _cli("-t", str(trace), "--hbm-kv-blocks", "40", "--arrivals", "closed", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "sessions (closed loop)" in res.output and "between turns, mean s" in res.output
    sessions = pl.read_parquet(out / "sessions.parquet")
    assert sessions["variant"].to_list() == ["value"] and sessions["turns"][0] == 4
    assert pl.read_parquet(out / "run.parquet")["hbm_capacity_blocks"][0] == 40


def test_hbm_tokens_round_down_to_whole_blocks_exactly():
    w = load_workload()
    cfg = ReplayConfig()
    gib = hbm_kv_gib_of(None, 100 * 512 + 511, 512, build_cost(cfg).kv_bytes_per_token)
    assert tier_capacity_blocks(dataclasses.replace(cfg, hbm_kv_gib=gib), build_cost(cfg),
                                w.block_size)[0] == 100


@pytest.mark.parametrize(("args", "message"), [
    (["--hbm-kv-blocks", "40", "--hbm-kv-gib", "2"],
     "--hbm-kv-gib and --hbm-kv-blocks are alternatives"),
    (["--hbm-kv-tokens", "100"], "--hbm-kv-tokens: 100 tokens hold no whole block of 512"),
    (["--hbm-kv-blocks", str(2**40)], "--hbm-kv-blocks: expected 1.."),
    (["--hbm-kv-blocks", "0"], "--hbm-kv-blocks"),
    (["--arrivals", "sometimes"], "--arrivals: expected closed or open"),
])
def test_bad_capacity_and_arrival_flags_name_the_flag(args, message):
    res = _cli(*args)
    assert res.exit_code == 2 and message in res.output, res.output


def test_plan_takes_hbm_in_blocks_and_verifies_in_the_arrival_mode(tmp_path):
    trace = tmp_path / "graph.jsonl"
    _jsonl(trace, JOIN)
    args = ["plan", "-t", str(trace), "--ttft-ms", "5000", "--hbm-kv-blocks", "40",
            "--dram-gib", "0", "--ssd-gib", "0", "--eviction", "lru", "--replicas", "1",
            "--tp", "1", "--verify-top", "1", "--jobs", "1", "--arrivals", "open", "--json"]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    kv = build_cost(CFG).kv_bytes_per_token
    assert data["best"]["hbm_kv_gib"] == 40 * 512 * kv / 2**30
    bad = CliRunner().invoke(app, args[:-3] + ["--arrivals", "never"], env={"COLUMNS": "160"})
    assert bad.exit_code == 2 and "--arrivals: expected closed or open" in bad.output


def test_plan_spec_arrivals_feed_the_verification_config():
    from kvplan.plan.planner import _config
    from kvplan.plan.spec import spec_from_dict
    spec = spec_from_dict({"arrivals": "open"})
    row = {"profile": "h100-sxm", "tp": 1, "replicas": 1, "hbm_kv_gib": 10.0, "dram_gib": 0.0,
           "ssd_gib": 0.0, "eviction": "lru", "inclusive": True}
    assert _config(row, spec, {}).arrivals == "open"
    assert _config(row, spec_from_dict({}), {}).arrivals == "closed"
    with pytest.raises(InputError, match="arrivals"):
        spec_from_dict({"arrivals": "both"})


@pytest.mark.parametrize(("ttl_s", "held_tokens"), [(0.0, 0), (30.0, 512)])
def test_session_ttl_pins_hold_a_released_turns_prefix_through_its_gap(ttl_s, held_tokens):
    """128 HBM blocks of 16 tokens; session 0's second turn is released 5 s after its first
    finishes, while another session's six 640-token prompts of new content pass through HBM
    (246 blocks): only the TTL pins keep the first turn's 32 blocks."""
    rows = [(0, 0.0, 512, 1, None), (0, 0.1, 600, 1, 5.0)]
    rows += [(1, 0.5 + 0.1 * k, 640, 1, 0.05 if k else None, 100 + k) for k in range(6)]
    cfg = dataclasses.replace(CFG, hbm_kv_gib=0.25, session_ttl_s=ttl_s)
    r = _run(sessions_workload(rows), "closed", cfg).sort("request_id")
    second = r.filter(pl.col("session_id") == 0).row(1, named=True)
    assert second["arrival_s"] > r["finish_s"].filter(r["session_id"] != 0).max()
    assert second["hit_hbm_tokens"] == held_tokens


def test_replay_json_carries_the_session_summary(tmp_path):
    trace = tmp_path / "graph.jsonl"
    _jsonl(trace, JOIN)
    res = _cli("-t", str(trace), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)[0]["sessions"]
    assert summary["sessions"] == 1 and summary["turns_mean"] == 4.0
    assert set(summary) >= {"duration_p50_s", "between_turns_mean_s", "kv_held_hbm_tokens"}
