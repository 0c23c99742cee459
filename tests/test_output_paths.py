"""Clean failures (issue 13): output paths checked before the work, no debris, quiet Ctrl-C.

Tests run as root, for whom permission bits mean nothing: an unwritable place is a path under
a regular file, or a file system error injected where the probe file is created.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import kvplan
from kvplan import atomic
from kvplan.atomic import atomic_path, check_output_dir, check_output_file
from kvplan.bundled import bundled_file
from kvplan.cli.main import app
from kvplan.errors import KvplanError
from kvplan.workload import read_workload

ENV = {"COLUMNS": "120"}
ROOT = Path(__file__).resolve().parent.parent
CHAT = bundled_file("traces", "tiny_chat.sharegpt.json")
MOONCAKE = bundled_file("traces", "tiny_chat.mooncake.jsonl")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def one_line_error(r, *expected):
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    return f


@pytest.fixture
def unwritable(tmp_path, monkeypatch):
    """A folder where creating a file fails as on a read-only mount (EROFS)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return folder


# ---- output files: convert and synth ------------------------------------------------------

@pytest.mark.parametrize("command", [["trace", "convert", CHAT], ["trace", "synth", "chat"]])
def test_output_file_problems_are_one_line_before_any_work(tmp_path, a_file, unwritable,
                                                           command):
    cases = [
        (tmp_path, f"'{tmp_path}' is a folder, expected a file name"),
        (tmp_path / "chat.csv", "expected a file name ending in .parquet, got"),
        (tmp_path / "chat", "expected a file name ending in .parquet"),
        (a_file / "w.parquet", f"'{a_file}' is a file, not a folder"),
        (a_file / "sub" / "w.parquet", f"'{a_file}' is a file, not a folder"),
        (unwritable / "w.parquet", "Read-only file system"),
        (unwritable / "new" / "w.parquet", "Read-only file system"),
    ]
    for out, expected in cases:
        one_line_error(run(*command, "-o", out), "--out", expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "ro"]
    assert not any(unwritable.iterdir())


def test_no_permission_is_named(tmp_path, monkeypatch):
    def mkstemp(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(KvplanError, match=r"--out: cannot write .*\(Permission denied\)"):
        check_output_file(tmp_path / "w.parquet")
    with pytest.raises(KvplanError, match=r"--out: cannot write .*\(Permission denied\)"):
        check_output_dir(tmp_path / "results")


def test_a_parquet_suffix_in_any_case_and_an_existing_file_are_fine(tmp_path):
    out = tmp_path / "W.PARQUET"
    out.write_text("old")
    r = run("trace", "convert", MOONCAKE, "-o", out)
    assert r.exit_code == 0, r.output
    assert read_workload(out).num_requests == 3


# ---- output folders: trace info, replay, plan, calibrate ----------------------------------

@pytest.mark.parametrize("command", [
    ["trace", "info"], ["replay", "--mode", "cache", "--trace", MOONCAKE],
    ["plan", "--trace", MOONCAKE, "--verify-top", "0"], ["calibrate", "--only", "host"],
])
def test_output_folder_problems_are_one_line_before_any_work(tmp_path, a_file, unwritable,
                                                             command):
    cases = [(a_file, f"'{a_file}' is a file, expected a folder"),
             (a_file / "results", f"'{a_file}' is a file, not a folder"),
             (unwritable / "results", "Read-only file system")]
    for out, expected in cases:
        t = time.perf_counter()
        one_line_error(run(*command, "-o", out), "--out", expected)
        assert time.perf_counter() - t < 5  # refused before the work, not after it
    assert not any(unwritable.iterdir())


def test_calibrate_ssd_path_is_checked_too(a_file):
    one_line_error(run("calibrate", "--only", "ssd", "--ssd-path", a_file), "--ssd-path")


def test_plan_says_a_trace_is_missing_before_starting_workers(tmp_path):
    t = time.perf_counter()
    one_line_error(run("plan", "--trace", tmp_path / "nope.jsonl"), "no such file")
    assert time.perf_counter() - t < 3


# ---- atomic writes: debris --------------------------------------------------------------

def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "w.parquet") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_temp_files_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    dead = tmp_path / ".w.parquet.999999999.abc.tmp"  # above any pid_max
    alive = tmp_path / f".w.parquet.{os.getpid()}.xyz.tmp"
    other = tmp_path / ".other.parquet.999999999.abc.tmp"
    for f in (dead, alive, other):
        f.write_text("debris")
    atomic.write_text_atomic(tmp_path / "w.parquet", "done")
    assert not dead.exists() and alive.exists() and other.exists()


def test_a_disk_error_while_writing_is_one_line(tmp_path):
    with pytest.raises(KvplanError, match="cannot write .*No space left"), \
            atomic_path(tmp_path / "w.parquet"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_after_the_output_is_complete_says_so(tmp_path, monkeypatch):
    from kvplan.cli import trace

    out = tmp_path / "w.parquet"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trace.console, "print", interrupted)
    r = run("trace", "convert", MOONCAKE, "-o", out)
    assert r.exit_code == 130
    assert r.output.strip() == f"Interrupted; kept 1 complete file(s): {out}; no partial file " \
        "left."
    assert read_workload(out).num_requests == 3


SLOW_WRITE = """
import sys, time
import pyarrow.parquet as pq

def slow(self, *args, **kwargs):
    print("writing", flush=True)
    time.sleep(60)

pq.ParquetWriter.write_table = slow
from kvplan.cli.main import main
sys.argv = ["kvplan", "trace", "convert", sys.argv[1], "-o", sys.argv[2]]
main()
"""


def _start_slow_write(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, str(MOONCAKE), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "writing"
    assert len(list(out.parent.glob(".*.tmp"))) == 1
    return proc


def test_sigterm_while_writing_removes_the_temp_file(tmp_path):
    out = tmp_path / "w.parquet"
    proc = _start_slow_write(out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err.strip() == "Terminated; no output was written."
    assert list(tmp_path.iterdir()) == []


def test_sigkill_debris_is_named_and_removed_by_the_next_run(tmp_path):
    out = tmp_path / "w.parquet"
    proc = _start_slow_write(out)
    proc.kill()
    proc.wait(timeout=30)
    (debris,) = tmp_path.glob(".*.tmp")
    assert debris.name.startswith(f".w.parquet.{proc.pid}.")
    assert run("trace", "convert", MOONCAKE, "-o", out).exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["w.parquet"]


# ---- Ctrl-C in plan ---------------------------------------------------------------------

def test_ctrl_c_in_plan_stops_the_workers_quietly(tmp_path):
    out = tmp_path / "plan_out"
    proc = subprocess.Popen([sys.executable, "-c", "from kvplan.cli.main import main; main()",
                             "plan", "--jobs", "2", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONPATH": str(ROOT)}, start_new_session=True,
                            preexec_fn=_sigint_default)
    deadline = time.perf_counter() + 60
    while len(_running_in_group(proc.pid)) < 3 and time.perf_counter() < deadline:
        time.sleep(0.05)  # the plan, the resource tracker and the workers spawning
    time.sleep(1.0)  # past the spawning (a Ctrl-C in it is lost: LocalPool); the screen runs
    sent = time.perf_counter()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
    _, err = proc.communicate(timeout=30)
    took = time.perf_counter() - sent
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "Interrupted; no output was written."
    assert took < 3, took  # about 0.1 s (2 busy cores); generous for a loaded machine
    deadline = time.perf_counter() + 3  # multiprocessing's resource tracker exits last
    while _running_in_group(proc.pid) and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert _running_in_group(proc.pid) == []  # no worker left behind (zombies aside)
    assert not out.exists() or not any(out.iterdir())


def _sigint_default() -> None:
    """Ctrl-C handled as at a terminal, also when this test runs with SIGINT ignored (a
    shell's background job without job control ignores it, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _running_in_group(pgid: int) -> list[int]:
    """Processes of a process group that still run (not zombies), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


# ---- numba's cache --------------------------------------------------------------------

def test_kvplan_starts_with_a_read_only_install_and_an_unwritable_home(tmp_path):
    install = tmp_path / "site"
    shutil.copytree(ROOT / "kvplan", install / "kvplan",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder in [install / "kvplan", *(install / "kvplan").rglob("*")]:
        if folder.is_dir():
            (folder / "__pycache__").write_text("not a folder")  # numba cannot cache here
    home_file = tmp_path / "home"
    home_file.write_text("not a folder")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env |= {"HOME": str(home_file / "user"), "PYTHONPATH": str(install),
            "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", "import sys; from kvplan.cli.main import main; "
                        "sys.argv = ['kvplan', '--version']; main()"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"kvplan {kvplan.__version__}"


def test_numba_cache_fallback_only_when_nothing_is_writable(monkeypatch, tmp_path):
    from numba.core import config

    # Set through monkeypatch, so both are restored for the later tests and the worker
    # processes they spawn (a fallback left behind makes every later worker recompile).
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.setattr(config, "CACHE_DIR", config.CACHE_DIR)
    monkeypatch.setattr(kvplan, "_writable_folder", lambda folder: False)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    kvplan._numba_cache_fallback()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / f"kvplan-numba-{os.getuid()}")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/mine")
    kvplan._numba_cache_fallback()
    assert os.environ["NUMBA_CACHE_DIR"] == "/mine"
