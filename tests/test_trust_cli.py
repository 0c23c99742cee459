"""Issue #13 end to end through typer's runner at a fixed width: one test per defect found
by a careless first hour, each asserting the exit code, the one-line message and that no
output file is left.

Flags out of range or contradicting each other (named as typed), offline bounds never
recommended, the recommended plan candidate consistent in every table with the reason each
other one lost, a saturation verdict on every candidate, help text as written, and every
printed table also written with ``--out``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import typer.main
from event_helpers import head
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.plan.spec import PlanSpec
from kvplan.trace import load_workload
from kvplan.workload import write_workload

ROOT = Path(__file__).resolve().parents[1]
ENV = {"COLUMNS": "120"}
SMALL_SPACE = ["--replicas", "1", "--hbm-kv-gib", "30", "--dram-gib", "0", "--dram-gib", "64",
               "--ssd-gib", "0", "--eviction", "lru", "--eviction", "belady"]
"""A plan grid of 8 candidates (2 DRAM sizes x 2 policies x inclusive / exclusive)."""


def run(*args, env=ENV):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def one_line_error(res, message: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: ") and message in res.output, res.output
    assert res.output.strip().count("\n") == 0 and "Traceback" not in res.output


def nothing_written(out) -> None:
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "small.parquet"
    write_workload(head(load_workload(), 150), path)
    return path


# ---- plan: every numeric flag range-checked, contradictions refused -------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--dram-gib", "-10"], "--dram-gib: expected a number >= 0, got -10"),
    (["--ssd-gib", "-100"], "--ssd-gib: expected a number >= 0, got -100"),
    (["--hbm-kv-gib", "-5"], "--hbm-kv-gib: expected a number > 0, got -5"),
    (["--dram-gib", "64", "--dram-gib", "nan"], "--dram-gib: expected a number >= 0, got nan"),
    (["--percentile", "150"], "--percentile: expected a number in (0, 100], got 150"),
    (["--percentile", "0"], "--percentile: expected a number in (0, 100], got 0"),
    (["--jobs", "0"], "--jobs: expected a whole number >= 1, got 0"),
    (["--engine", "foo"], "--engine: expected one of vllm, vllm+lmcache, sglang-hicache, "
     "dynamo-kvbm, none, got 'foo'"),
    (["--engine", "none", "--engine", "vllm"], "--engine none is the free search over every "
     "policy: give it alone"),
    (["--ttft-ms", "-1"], "--ttft-ms: expected a number > 0, got -1"),
    (["--load-scale", "0"], "--load-scale: expected a number > 0, got 0"),
    (["--replicas", "0"], "--replicas: expected a whole number >= 1, got 0"),
    (["--verify-top", "-1"], "--verify-top: expected a whole number >= 0, got -1"),
    (["--sample-rate", "2"], "--sample-rate: expected a number in (0, 1], got 2"),
    (["--verify-wall-s", "inf"], "--verify-wall-s: expected a number > 0, got inf"),
    (["--objective", "cheap"], "--objective: expected one of usd_per_h, "),
    (["--eviction", "mru"], "--eviction: unknown eviction policy 'mru'"),
    (["--eviction", "belady"], "--eviction belady: an offline bound"),
    (["--verify-top", "0", "--verify-window", "60"], "--verify-window has no effect with "
                                                     "--verify-top 0"),
    (["--ep", "2", "--tp", "4"], "--ep 2 searches tp = 2 only"),
    (["--disk-dir", "relative/dir"], "--disk-dir: expected an absolute directory path"),
    (["--tp", "3"], "--tp 3 does not divide the 32 attention heads"),
    (["--hbm-kv-gib", "60", "--dram-gib", "32", "--ssd-gib", "100"],
     "--ssd-gib 100 needs a DRAM tier larger than the HBM KV pool (--dram-gib 32 <= "
     "--hbm-kv-gib 60)"),
    (["--ep", "2"], "--ep 2: llama-3.1-8b has no experts"),
])
def test_plan_flags_out_of_range_or_contradicting_are_one_line(tmp_path, args, message):
    out = tmp_path / "out"
    res = run("plan", "-o", out, *args)
    one_line_error(res, message)
    assert "dram_gib" not in res.output and "slo." not in res.output  # flags, not fields
    nothing_written(out)


def test_a_spec_file_of_offline_bounds_only_is_refused_before_any_work(tmp_path):
    spec = tmp_path / "plan.toml"
    spec.write_text('[space]\nevictions = ["belady"]\n')
    out = tmp_path / "out"
    one_line_error(run("plan", "--spec", spec, "-o", out),
                   "field 'space.evictions': only offline bounds")
    nothing_written(out)


def test_plan_says_a_trace_is_missing_before_any_output(tmp_path):
    out = tmp_path / "out"
    one_line_error(run("plan", "-t", tmp_path / "nope.parquet", "-o", out), "no such file")
    nothing_written(out)


# ---- replay: the same rules ------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--slo-ttft-ms", "-5"], "--slo-ttft-ms: expected a number > 0, got -5"),
    (["--engine", "foo"], "--engine: expected one of vllm, vllm+lmcache, sglang-hicache, "
     "dynamo-kvbm, none, got 'foo'"),
    (["--dram-gib", "-10"], "--dram-gib: expected a number >= 0, got -10"),
    (["--staging-frac", "2"], "--staging-frac: expected a number in [0, 1], got 2"),
    (["--lookahead", "0"], "--lookahead: expected a whole number >= 1, got 0"),
    (["--compare", "dram-gib=8,-5"], "--compare dram-gib"),
    (["--mode", "cache", "--prefetch", "lookahead", "--dram-gib", "8"], "--prefetch"),
    (["--mode", "cache", "--session-ttl-s", "30"], "--session-ttl-s"),
    (["--write", "write-back"], "--write write-back"),
    (["--exclusive"], "--exclusive"),
    (["--compare", "eviction=lru,arc", "--eviction", "fifo"], "--eviction"),
    (["--compare", "prefetch=none,lookahead"], "--compare prefetch"),
    (["--compare", "mode=event,nope"], "--compare mode: in variant mode=nope, --mode: "
     "expected one of event, cache, got 'nope'"),
    (["--compare", "prefetch=nope", "--dram-gib", "8"], "--compare prefetch: in variant "
     "prefetch=nope, --prefetch: unknown prefetch policy 'nope'"),
    (["--compare", "eviction=lru,nope"], "--compare eviction: in variant eviction=nope, "
     "--eviction: unknown eviction policy 'nope'"),
    (["--compare", "engine=vllm,nope"], "--compare engine: in variant engine=nope, --engine: "
     "expected one of"),
    (["--compare", "arrivals=open,nope"], "--compare arrivals: in variant arrivals=nope, "
     "--arrivals: expected closed or open, got 'nope'"),
])
def test_replay_flags_out_of_range_or_contradicting_are_one_line(small_trace, tmp_path, args,
                                                                  message):
    out = tmp_path / "out"
    res = run("replay", "-t", small_trace, "-o", out, *args)
    one_line_error(res, message)
    for field in ("staging_budget_frac", "lookahead_iters", "dram_gib", "slo_ttft_ms"):
        assert field not in res.output
    nothing_written(out)


def test_replay_without_an_slo_says_n_a_and_gives_a_load_verdict(small_trace, tmp_path):
    out = tmp_path / "out"
    res = run("replay", "-t", small_trace, "-o", out)
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in res.output.splitlines() if line.count("│") >= 3}
    assert rows["goodput"] == rows["SLO attained"] == "n/a (no SLO given)"
    assert rows["load"] in ("ok", "strained", "overloaded")
    assert "e+" not in res.output  # never scientific notation
    run_row = pl.read_parquet(out / "run.parquet").row(0, named=True)
    assert run_row["goodput_req_s"] is None and run_row["slo_attained_frac"] is None
    assert run_row["load_state"] == rows["load"] and run_row["load_reason"]


# ---- plan: honest tables ---------------------------------------------------------------

@pytest.fixture(scope="module")
def small_plan(small_trace, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "plan_out"
    res = run("plan", "-t", small_trace, *SMALL_SPACE, "--verify-top", "2", "--jobs", "1",
              "-o", out, env={})  # piped: no terminal, no COLUMNS
    assert res.exit_code == 0, res.output
    return res.output, out


def test_offline_bound_is_shown_but_never_recommended(small_plan):
    output, out = small_plan
    cands = pl.read_parquet(out / "candidates.parquet")
    best = cands.filter(pl.col("recommended"))
    assert best.height == 1 and best["eviction"][0] == "lru"
    assert cands["recommended"][0], "the recommendation is the first row"
    bounds = cands.filter(pl.col("eviction") == "belady")
    assert bounds.height > 0 and bounds["bound"].all()
    assert all(o.startswith("offline bound") for o in bounds["outcome"])
    assert "eviction belady" not in output.split("Top candidates")[0].split("\n")[1]
    summary = json.loads((out / "plan.json").read_text())
    assert summary["best"]["eviction"] == "lru" and not summary["best"]["bound"]
    assert summary["best"]["load_state"] in ("ok", "strained", "overloaded")


def test_every_candidate_has_a_reason_and_a_load_verdict(small_plan):
    _, out = small_plan
    cands = pl.read_parquet(out / "candidates.parquet")
    assert cands["outcome"].null_count() == 0 and cands["load_state"].null_count() == 0
    assert set(cands["load_state"]) <= {"ok", "strained", "overloaded"}
    others = cands.filter(~pl.col("recommended"))["outcome"].to_list()
    assert all(o and o not in ("recommended",) for o in others)
    verified = pl.read_parquet(out / "verified.parquet")
    assert verified.height > 0
    ran = verified.filter(pl.col("sim_stop_reason").is_in(["done", "max_sim_s", "max_wall_s"]))
    assert ran["sim_load_state"].null_count() == 0
    assert verified["outcome"].null_count() == 0


def test_the_recommendation_is_the_same_row_in_every_table(small_plan):
    output, out = small_plan
    best = pl.read_parquet(out / "candidates.parquet").filter(pl.col("recommended")).row(
        0, named=True)
    first_rows = [line.split() for line in output.splitlines()
                  if line.strip().startswith(str(best["candidate_id"]) + " ")]
    assert first_rows, output
    assert any("recommended" in line or "best" in line for line in
               output.splitlines() if line.strip().startswith(str(best["candidate_id"]) + " "))
    top = output.split("Top candidates")[1].split("\n")
    rows = [line for line in top if line.strip()[:1].isdigit()]
    assert rows[0].split()[0] == str(best["candidate_id"])
    html = (out / "report.html").read_text()
    assert "recommended" in html


def test_piped_plan_output_keeps_headers_and_commands_whole(small_plan):
    output, out = small_plan
    assert "narrow terminal" not in output and "outcome" in output
    lines = output.splitlines()
    for engine in json.loads((out / "plan.json").read_text())["engines"]:
        assert engine["command"] in lines  # one whole line each, pasteable


# ---- help as written -------------------------------------------------------------------

def _commands(cmd, path=()):
    yield list(path)
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_shows_no_python_types_no_bool_and_keeps_brackets():
    root = typer.main.get_command(app)
    for path in _commands(root):
        res = run(*path, "--help")
        assert res.exit_code == 0, (path, res.output)
        for bad in ("list[", "<bool>", "<Path>", "at at "):
            assert bad not in res.output, (path, bad)
    assert "[prices] table" in run("profiles", "validate", "--help").output
    assert "kvplan[ray]" in run("plan", "--help", env={"COLUMNS": "300"}).output


def test_plan_help_defaults_are_the_spec_defaults():
    d = PlanSpec()
    text = " ".join(run("plan", "--help", env={"COLUMNS": "300"}).output.split())
    assert f"(default {d.slo.percentile:g})" in text
    assert f"(default {d.slo.ttft_ms:,g})" in text
    assert (f"plus up to {d.verify_near_misses} cheaper near-misses (default "
            f"{d.verify_top};") in text
    assert f"(default {d.jobs})" in text


# ---- every printed table can be written with --out --------------------------------------

@pytest.mark.parametrize(("args", "name", "key"), [
    (["models", "list"], "models.parquet", "model"),
    (["profiles", "list"], "profiles.parquet", "profile"),
    (["profiles", "prices"], "prices.parquet", "price"),
])
def test_list_tables_write_parquet_equal_to_json(tmp_path, args, name, key):
    out = tmp_path / "out"
    res = run(*args, "--out", out)
    assert res.exit_code == 0, res.output
    table = pl.read_parquet(out / name)
    rows = json.loads(run(*args, "--json").output)
    assert table.height == len(rows) > 0
    assert table[key].to_list() == [r[key] for r in rows]


@pytest.mark.parametrize("args", [["models", "list"], ["profiles", "list"],
                                  ["profiles", "prices"]])
def test_list_tables_refuse_a_file_as_out_folder(tmp_path, args):
    a_file = tmp_path / "x.parquet"
    a_file.write_text("")
    one_line_error(run(*args, "--out", a_file), "is a file, expected a folder")


def test_ctrl_c_while_the_flags_are_parsed_still_says_what_was_kept(tmp_path):
    """typer turns a KeyboardInterrupt outside the command (a slow start under load) into a
    silent exit 130: the one line is said all the same."""
    code = ("import sys\nimport kvplan.cli.main as m\n"
            "def parse(self, ctx, args):\n    raise KeyboardInterrupt\n"
            "m._Group.parse_args = parse\nsys.argv = ['kvplan', 'plan']\nm.main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 130
    assert r.stderr.strip() == "Interrupted; no output was written." and r.stdout == ""


def test_ctrl_c_while_the_modules_load_is_one_line(tmp_path):
    """Ctrl-C before the command's modules are loaded (the console script's first second):
    the same one line and exit 130 as later, not a traceback from the interrupted import."""
    code = ("import builtins, sys\nreal = builtins.__import__\n"
            "def slow(name, *a, **k):\n"
            "    if name == 'kvplan.cli.main':\n        raise KeyboardInterrupt\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = slow\nsys.argv = ['kvplan', 'plan']\n"
            "from kvplan.cli.entry import main\nmain()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 130
    assert r.stderr == "Interrupted; no output was written.\n" and r.stdout == ""
