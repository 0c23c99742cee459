"""`kvplan calibrate` end to end on the CPU with a tiny budget, and its error paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kvplan.calibrate.samples import RAW_SCHEMA
from kvplan.cli.main import app
from kvplan.cost.model import CostModel
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model

ENV = {"COLUMNS": "120"}
runner = CliRunner()

pytestmark = pytest.mark.skipif(
    __import__("kvplan.calibrate.run", fromlist=["detect_device"]).detect_device() == "cuda",
    reason="the CPU-path tests expect a machine without a GPU",
)


def _run(*args: str):
    return runner.invoke(app, ["calibrate", *args], env=ENV)


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("cal")
    res = _run("--quick", "--ssd-bytes", "4MiB", "-o", str(out / "run"), "--name", "cpu-box")
    return res, out / "run"


def test_cpu_pipeline_writes_a_loadable_profile(cpu_run):
    res, run = cpu_run
    assert res.exit_code == 0, res.output
    assert res.output.count("no CUDA GPU") == 1
    assert "Measured vs datasheet" in res.output
    profile = load_profile(str(run / "cpu-box.toml"))
    assert profile.kind == "calibrated"
    assert "host_link" in profile.provenance["not_measured"]
    assert profile.provenance["device"] == "cpu"
    CostModel.build(load_model("llama-3.1-8b"), profile).step_time_s(512, 0, 0, 0)


def test_cpu_pipeline_raw_samples(cpu_run):
    _, run = cpu_run
    table = pq.read_table(run / "samples.parquet")
    assert table.schema.remove_metadata() == RAW_SCHEMA
    families = set(table.column("family").to_pylist())
    assert families == {"compute", "host", "ssd"}
    assert not (run / "samples.partial.parquet").exists()
    assert (run / "summary.parquet").exists() and (run / "comparison.parquet").exists()
    assert not list(run.glob(".kvplan-calibrate-*"))   # SSD scratch file removed


def test_json_and_only(tmp_path):
    res = _run("--quick", "--only", "host", "--json", "-o", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["profile"].endswith("cpu-test-calibrated.toml")
    assert [r["figure"] for r in data["comparison"]] == ["DRAM memcpy (read + write)"]


def test_check_reports_error_per_family(cpu_run, tmp_path):
    _, run = cpu_run
    res = _run("--check", str(run / "cpu-box.toml"), "--only", "host,ssd", "--ssd-bytes", "4MiB",
               "-o", str(tmp_path), "--json")
    assert res.exit_code == 0, res.output
    fams = {r["family"] for r in json.loads(res.stdout)["families"]}
    assert fams == {"host", "ssd"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--only", "links,warp"], "unknown family 'warp'"),
        (["--max-gpu-mem-frac", "1.5"], "--max-gpu-mem-frac"),
        (["--ssd-bytes", "lots"], "--ssd-bytes"),
        (["--ssd-path", "/no/such/dir"], "--ssd-path /no/such/dir: not a directory"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    out = tmp_path / "r"
    res = _run("--quick", "-o", str(out), *args)
    assert res.exit_code == 2
    assert message in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not list(out.glob("*.toml"))


def test_unwritable_ssd_path(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / "x"
        probe.touch()
        pytest.skip("running as a user who can write anywhere")
    except PermissionError:
        pass
    res = _run("--quick", "-o", str(tmp_path / "r"), "--ssd-path", str(locked))
    assert res.exit_code == 2 and "not writable" in res.output


def test_interrupt_keeps_only_marked_partial_samples(tmp_path, monkeypatch):
    from kvplan.calibrate import host

    def boom(sess, sweep, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(host, "measure_ssd", boom)
    out = tmp_path / "r"
    res = _run("--quick", "--only", "host,ssd", "--ssd-bytes", "4MiB", "-o", str(out))
    assert res.exit_code == 2
    assert "interrupted" in res.output and "no profile written" in res.output
    partial = pq.read_table(out / "samples.partial.parquet")
    assert partial.schema.metadata[b"partial"] == b"true"
    assert set(partial.column("family").to_pylist()) == {"host"}
    assert not list(out.glob("*.toml")) and not (out / "samples.parquet").exists()


def test_disk_full_keeps_partial_samples(tmp_path, monkeypatch):
    import errno

    from kvplan.calibrate import host

    def full(sess, sweep, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(host, "measure_ssd", full)
    out = tmp_path / "r"
    res = _run("--quick", "--only", "host,ssd", "--ssd-bytes", "4MiB", "-o", str(out))
    assert res.exit_code == 2 and "disk full" in res.output
    assert (out / "samples.partial.parquet").exists() and not list(out.glob("*.toml"))


def test_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from kvplan.cli.main import app; "
            "r = CliRunner().invoke(app, ['calibrate', '--help']); "
            "assert r.exit_code == 0; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_torch_the_torch_families_say_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    res = _run("--quick", "--ssd-bytes", "4MiB", "-o", str(tmp_path / "run"))
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "need PyTorch" in line and "--only host,ssd" in line
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_rebuild_from_raw_samples_without_measuring(cpu_run, tmp_path):
    _, run = cpu_run
    res = _run("--rebuild", str(run / "samples.parquet"), "-o", str(tmp_path / "again"))
    assert res.exit_code == 0, res.output
    assert "rebuilt from" in res.output
    first, again = load_profile(str(run / "cpu-box.toml")), load_profile(
        str(tmp_path / "again" / "cpu-box.toml"))
    assert (again.gpu, again.host, again.ssd, again.curves) == \
        (first.gpu, first.host, first.ssd, first.curves)
    assert again.provenance["rebuilt_from"].endswith("samples.parquet")


def test_rebuild_rejects_a_file_that_is_not_samples(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_text("not parquet")
    res = _run("--rebuild", str(bad))
    assert res.exit_code == 2
    assert "cannot read as Parquet" in res.output
