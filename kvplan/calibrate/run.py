"""Orchestration of one calibration run: families in order, raw samples, fits, profile last.

Output folder (``calibration/<profile-name>/`` or ``-o DIR``):

- ``samples.parquet`` — every timed call (columns in kvplan.calibrate.samples), run metadata;
- ``summary.parquet`` — median / spread / GB/s / TFLOP/s per point;
- ``config.json`` — the resolved run configuration;
- ``<profile-name>.toml`` — the calibrated profile, written last and atomically.

An interrupted or failed run (Ctrl-C, full disk, unwritable ``--ssd-path``) keeps what it had
measured as ``samples.partial.parquet`` and writes no profile.
"""

from __future__ import annotations

import datetime as _dt
import errno
import importlib.util
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from kvplan.atomic import write_parquet_atomic, write_text_atomic
from kvplan.calibrate.build import Fits, calibrated_profile, fit_summary
from kvplan.calibrate.samples import SampleLog, summarize
from kvplan.calibrate.session import Session, make_session
from kvplan.calibrate.sweeps import SWEEPS, Mode, Sweep
from kvplan.errors import KvplanError
from kvplan.hardware.profile import HardwareProfile, list_profiles, load_profile, write_profile
from kvplan.hardware.validate import parse_profile
from kvplan.model.kv import kv_bytes_per_token, kv_bytes_per_token_layer
from kvplan.model.spec import ModelSpec, load_model

FAMILIES = ("links", "hbm", "kvcopy", "overlap", "compute", "host", "ssd")
GPU_FAMILIES = ("links", "hbm", "kvcopy", "overlap")


@dataclass(frozen=True)
class CalibrateConfig:
    """Everything one calibration run needs."""

    name: str | None = None
    """Profile name (default: ``<base>-calibrated``)."""
    base: str | None = None
    """Datasheet profile to start from and compare with (default: matched to the GPU)."""
    model: str = "llama-3.1-8b"
    """Model whose layer, block sizes and KV bytes are measured."""
    mode: Mode = "quick"
    only: tuple[str, ...] = FAMILIES
    max_gpu_mem_frac: float = 0.8
    """Never hold more than this share of the GPU memory free at the start."""
    ssd_path: Path | None = None
    """Folder on the SSD tier's filesystem (default: the output folder)."""
    ssd_bytes: int = 1 << 30
    """Size of the SSD scratch file."""
    out_dir: Path | None = None
    seed: int = 0
    command: str = ""


@dataclass
class RunResult:
    """What a finished run produced."""

    profile: HardwareProfile
    base: HardwareProfile
    summary: pl.DataFrame
    fits: Fits
    notes: list[str]
    out_dir: Path
    profile_path: Path
    seconds_by_family: dict[str, float] = field(default_factory=dict)


def detect_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu`` (also when torch is not installed)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_config(cfg: CalibrateConfig) -> None:
    """Reject bad flags before anything is measured."""
    unknown = [f for f in cfg.only if f not in FAMILIES]
    if unknown:
        raise KvplanError(f"--only: unknown family '{unknown[0]}' (expected a comma-separated "
                          f"subset of {', '.join(FAMILIES)})")
    if not 0 < cfg.max_gpu_mem_frac <= 1:
        raise KvplanError(f"--max-gpu-mem-frac: expected a fraction in (0, 1], "
                          f"got {cfg.max_gpu_mem_frac}")
    if cfg.ssd_bytes < 1 << 20:
        raise KvplanError(f"--ssd-bytes: expected at least 1 MiB, got {cfg.ssd_bytes}")


def require_torch(families: tuple[str, ...]) -> None:
    """Fail in one line when a family that needs PyTorch is asked for and torch is missing
    (called after every flag is checked, so a wrong flag is reported first)."""
    needs_torch = [f for f in families if f in (*GPU_FAMILIES, "compute")]
    if needs_torch and importlib.util.find_spec("torch") is None:
        raise KvplanError(f"families {', '.join(needs_torch)} need PyTorch, which is not "
                          "installed: pip install 'kvplan[calibrate]', or measure the host "
                          "alone with --only host,ssd")


def gpu_name() -> str:
    """Name of GPU 0 as the driver reports it."""
    import torch

    return torch.cuda.get_device_name(0)


def match_base(device_name: str) -> str:
    """The bundled datasheet profile whose ``gpu.model`` shares most words with the GPU name."""
    words = set(device_name.lower().replace("-", " ").split()) - {"nvidia", "amd", "gpu"}
    scored = []
    for name in list_profiles():
        prof = load_profile(name)
        model = set(prof.gpu.model.lower().replace("-", " ").split())
        if prof.kind == "datasheet" and words & model:
            scored.append((len(words & model), name))
    if not scored:
        raise KvplanError(f"no bundled profile matches GPU '{device_name}': pass --base NAME "
                          f"(bundled: {', '.join(list_profiles())})")
    return max(scored)[1]


def resolve_base(cfg: CalibrateConfig, device: str) -> HardwareProfile:
    if cfg.base:
        return load_profile(cfg.base)
    return load_profile(match_base(gpu_name()) if device == "cuda" else "cpu-test")


def ceilings(base: HardwareProfile, device: str) -> list[str]:
    """Theoretical ceilings from the base profile, printed before measuring."""
    g, hl, h, s = base.gpu, base.host_link, base.host, base.ssd
    lines = [f"base profile {base.name}: {g.model}"]
    if device == "cuda":
        lines += [
            f"HBM {g.hbm_bw_gbps:,.0f} GB/s; bf16 {g.bf16_dense_tflops:,.0f} TFLOP/s dense, "
            f"fp8 {g.fp8_dense_tflops:,.0f}; ridge {g.bf16_dense_tflops * 1e3 / g.hbm_bw_gbps:,.0f}"
            " FLOP/byte (below it an op is bandwidth-bound)",
            f"host link {hl.kind} {hl.nominal_gbps:,.1f} GB/s nominal per direction "
            f"(datasheet achieved: H2D {hl.h2d_achieved_gbps}, D2H {hl.d2h_achieved_gbps})",
        ]
    lines += [f"DRAM {h.dram_bw_gbps:,.0f} GB/s; SSD {s.count} x {s.read_gbps} GB/s read, "
              f"{s.read_latency_us} us 4 KiB read latency"]
    return lines


def provenance(cfg: CalibrateConfig, device: str, out_dir: Path) -> dict[str, str]:
    """Who, where, when and with what this run measured."""
    prov = {
        "run": str(out_dir), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(), "command": cfg.command or " ".join(sys.argv),
        "mode": cfg.mode, "model": cfg.model, "families": ",".join(cfg.only), "device": device,
    }
    try:
        import torch
    except ImportError:
        return prov | {"torch": "not installed"}
    prov["torch"] = torch.__version__
    if device == "cuda":
        prov |= {"gpu": gpu_name(), "cuda": str(torch.version.cuda), "driver": _driver()}
    return prov


def _driver() -> str:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"


def family_steps(
    cfg: CalibrateConfig, sess: Session, sweep: Sweep, spec: ModelSpec, ssd_folder: Path
) -> dict[str, Callable[[], None]]:
    """The measuring function of each requested family this device can run."""
    from kvplan.calibrate import compute, hbm, host, kvcopy, links, overlap

    seeds = np.random.SeedSequence(cfg.seed).spawn(2)
    layer_blocks = {t: t * kv_bytes_per_token_layer(spec) for t in sweep.kv_block_tokens}
    model_blocks = {t: t * kv_bytes_per_token(spec) for t in sweep.kv_block_tokens}

    def compute_family() -> None:
        if sess.has_gpu:
            dtypes = ("bf16", "fp8")
            compute.measure_matmul(sess, sweep.matmul_sizes, dtypes)
            compute.measure_ops(sess, sweep, cfg.seed)
            compute.measure_layer(sess, sweep, spec, cfg.seed)
        else:
            compute.measure_matmul(sess, sweep.cpu_matmul_sizes, ("fp32",))

    steps = {
        "links": lambda: links.measure_links(sess, sweep),
        "hbm": lambda: hbm.measure_hbm(sess, sweep),
        "kvcopy": lambda: kvcopy.measure_kvcopy(
            sess, sweep, layer_blocks, np.random.default_rng(seeds[0])),
        "overlap": lambda: overlap.measure_overlap(sess, sweep, spec),
        "compute": compute_family,
        "host": lambda: host.measure_dram(sess, sweep),
        "ssd": lambda: host.measure_ssd(sess, sweep, ssd_folder, cfg.ssd_bytes, model_blocks,
                                        np.random.default_rng(seeds[1])),
    }
    return {f: steps[f] for f in cfg.only}


def run_calibration(
    cfg: CalibrateConfig,
    *,
    say: Callable[[str], None] = print,
    status: Callable[[str], None] = lambda _: None,
    family_done: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Measure, fit and write; ``say`` prints a line, ``status`` labels the current point."""
    check_config(cfg)
    spec = load_model(cfg.model)
    device = detect_device()
    base = resolve_base(cfg, device)
    name = cfg.name or f"{base.name}-calibrated"
    out_dir = cfg.out_dir or Path("calibration") / name
    ssd_folder = cfg.ssd_path or out_dir
    _prepare(out_dir, ssd_folder if "ssd" in cfg.only else None)
    require_torch(cfg.only)
    for line in ceilings(base, device):
        say(line)
    sweep = SWEEPS[cfg.mode]
    prov = provenance(cfg, device, out_dir)
    sess = _session(device, sweep, cfg, say)
    sess.status = status
    seconds = _measure_all(cfg, sess, sweep, spec, ssd_folder, out_dir, prov, family_done)
    return _finish(cfg, sess, base, spec, name, out_dir, prov, seconds)


def _session(device: str, sweep: Sweep, cfg: CalibrateConfig, say) -> Session:
    if device != "cuda":
        say("no CUDA GPU: GPU fields (host link, HBM, KV copies, overlap, layer timings) not "
            "measured; measuring host memory, SSD and CPU matmul only")
    return make_session(device, sweep.repeats, cfg.max_gpu_mem_frac)


def _prepare(out_dir: Path, ssd_folder: Path | None) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".kvplan-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KvplanError(f"output folder {out_dir}: not writable ({exc.strerror})") from None
    if ssd_folder is not None:
        from kvplan.calibrate.host import scratch_file

        with scratch_file(ssd_folder):
            pass


def _measure_all(cfg, sess, sweep, spec, ssd_folder, out_dir, prov, family_done) -> dict:
    seconds: dict[str, float] = {}
    steps = family_steps(cfg, sess, sweep, spec, ssd_folder)
    try:
        for fam, step in steps.items():
            t0 = time.perf_counter()
            if fam in GPU_FAMILIES and not sess.has_gpu:
                family_done(fam)
                continue
            step()
            seconds[fam] = time.perf_counter() - t0
            family_done(fam)
    except KeyboardInterrupt:
        _keep_partial(sess.log, out_dir, prov)
        raise KvplanError(f"interrupted: partial raw samples kept in "
                          f"{out_dir / 'samples.partial.parquet'}; no profile written") from None
    except (KvplanError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno != errno.ENOSPC:
            raise
        where = _keep_partial(sess.log, out_dir, prov)
        reason = "disk full" if isinstance(exc, OSError) else str(exc)
        raise KvplanError(f"{reason}; partial raw samples kept in {where}; no profile written"
                          ) from None
    return seconds


def _keep_partial(log: SampleLog, out_dir: Path, prov: dict[str, str]) -> Path:
    path = out_dir / "samples.partial.parquet"
    try:
        log.write(path, prov | {"partial": "true", "notes": json.dumps(log.notes)})
    except OSError:
        return Path("(nothing: the partial samples could not be written either)")
    return path


def _finish(cfg, sess, base, spec, name, out_dir, prov, seconds) -> RunResult:
    prov = prov | {"base": base.name, "profile": name}
    meta = prov | {"notes": json.dumps(sess.log.notes)}
    sess.log.write(out_dir / "samples.parquet", meta)
    write_text_atomic(out_dir / "config.json", json.dumps(asdict(cfg), indent=2, default=str))
    result = _build(sess.log.summary(), base, name, out_dir, prov, sess.log.notes)
    (out_dir / "samples.partial.parquet").unlink(missing_ok=True)
    return replace(result, seconds_by_family=seconds)


def _build(summary: pl.DataFrame, base: HardwareProfile, name: str, out_dir: Path,
           prov: dict[str, str], notes: list[str]) -> RunResult:
    """Fits and the calibrated profile from a run's summary; writes summary.parquet and the
    profile (validated first, written last)."""
    fits = fit_summary(summary)
    direct = not any(n.startswith("ssd: O_DIRECT not allowed") for n in notes)
    if not direct and not any(n.startswith("ssd: figures not put") for n in notes):
        notes.append("ssd: figures not put in the profile (buffered I/O measures the page cache)")
    profile = calibrated_profile(base, summary, fits, name, prov, direct)
    path = out_dir / f"{name}.toml"
    write_parquet_atomic(summary.to_arrow(), out_dir / "summary.parquet",
                         prov | {"notes": json.dumps(notes)})
    _validate(profile, path)
    write_profile(profile, path)
    return RunResult(profile, base, summary, fits, notes, out_dir, path)


def rebuild_calibration(samples: Path, *, name: str | None = None, base: str | None = None,
                        out_dir: Path | None = None) -> RunResult:
    """The calibrated profile again from a run's raw ``samples.parquet`` (no GPU needed): the
    same summary, fits and mapping as the run itself. The base profile is ``base``, else the
    one the run recorded (provenance ``base``), else matched to its GPU name."""
    meta = _samples_meta(samples)
    if meta.get("partial") == "true":
        raise KvplanError(f"{samples}: an interrupted run's partial samples; rebuild needs a "
                          "finished run's samples.parquet")
    raw = pl.read_parquet(samples)
    missing = [c for c in SampleLog().table().column_names if c not in raw.columns]
    if missing:
        raise KvplanError(f"{samples}: not kvplan calibration samples (no column "
                          f"'{missing[0]}')")
    base_name = base or meta.get("base") or (match_base(meta["gpu"]) if meta.get("gpu")
                                             else "cpu-test")
    base_profile = load_profile(base_name)
    name = name or meta.get("profile") or f"{base_profile.name}-calibrated"
    out = out_dir or samples.parent
    out.mkdir(parents=True, exist_ok=True)
    prov = {k: v for k, v in meta.items() if k not in ("notes", "partial")}
    prov |= {"base": base_profile.name, "rebuilt_from": str(samples),
             "rebuilt": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    notes = json.loads(meta.get("notes", "[]"))
    return _build(summarize(raw), base_profile, name, out, prov, notes)


def _samples_meta(samples: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    try:
        raw = pq.read_schema(samples).metadata or {}
    except (OSError, pa.ArrowInvalid) as exc:
        raise KvplanError(f"{samples}: cannot read as Parquet ({exc})") from None
    return {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW")}


def _validate(profile: HardwareProfile, path: Path) -> None:
    """Check the profile reads back before writing it (a measured figure may contradict the base)."""
    from kvplan.hardware.profile import profile_to_toml
    from kvplan.hardware.validate import tomllib

    try:
        parse_profile(tomllib.loads(profile_to_toml(profile)), path)
    except KvplanError as exc:
        raise KvplanError(f"measured figures give an invalid profile ({exc}); raw samples were "
                          "measured but no profile written") from None
