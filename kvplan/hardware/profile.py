"""HardwareProfile: one serving node (GPUs, host DRAM, host link, NVMe SSDs) from a TOML file.

Units live in field names: ``_gib`` (2^30 B), ``_gbps`` (GB/s = 10^9 B/s), ``_us``,
``_tflops`` (10^12 FLOP/s), ``_bytes``, ``_frac`` (0..1), ``_dwpd`` (drive writes per day).
Every field is explained in docs/hardware-profiles.md. Datasheet profiles cite a source per
number in ``[sources]``; calibrated ones carry measured curves and a ``[provenance]`` table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path

import numpy as np

from kvplan.atomic import write_text_atomic
from kvplan.bundled import bundled_dir
from kvplan.errors import KvplanError
from kvplan.hierarchy import LINK_LABELS

SCHEMA_VERSION = 1
KINDS = ("datasheet", "calibrated", "imported")
"""datasheet: vendor figures + fitted efficiencies; calibrated: measured by kvplan calibrate;
imported: per-operation tables of another tool (kvplan profiles import)."""
LINK_NAMES = LINK_LABELS
"""Link sections of a profile (kvplan.hierarchy.Link order)."""
CURVE_AXES = {
    "h2d": ("sizes_bytes", "bw_gbps"),
    "d2h": ("sizes_bytes", "bw_gbps"),
    "ssd_read": ("sizes_bytes", "bw_gbps"),
    "ssd_write": ("sizes_bytes", "bw_gbps"),
    "hbm": ("sizes_bytes", "bw_gbps"),
    "attn_decode": ("kv_bytes", "bw_gbps"),
}
"""Measured 1-D curves a calibrated or imported profile may carry: name -> (x field, y field)."""
GRID_AXES = {
    "gemm": ("tokens", "weight_elems", "util_frac"),
    "attn_prefill": ("seq_tokens", "heads", "tflops"),
    "allreduce": ("sizes_bytes", "gpus", "bw_gbps"),
}
"""Measured 2-D grids: name -> (x field, y field, value field); values are rows over y."""


@dataclass(frozen=True)
class Curve:
    """Measured points y(x), interpolated linearly in log(x); flags x outside the points."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, x):
        """Interpolated y at ``x`` (scalar or array); clamped to the end points outside."""
        value = np.interp(np.log(np.maximum(x, 1e-30)), np.log(self.x), self.y)
        return float(value) if np.ndim(x) == 0 else value

    def covers(self, x) -> bool | np.ndarray:
        """True where ``x`` lies inside the measured range (no extrapolation)."""
        inside = (np.asarray(x) >= self.x[0]) & (np.asarray(x) <= self.x[-1])
        return bool(inside) if np.ndim(x) == 0 else inside


@dataclass(frozen=True)
class Grid:
    """Measured points z(x, y) on a rectangular grid, bilinear in (log x, log y), clamped to
    the end points outside (and flagged by ``covers``). ``z[i][j]`` is the value at
    (``x[j]``, ``y[i]``): one row per y."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    z: tuple[tuple[float, ...], ...]

    def row(self, y: float) -> Curve:
        """The grid at a fixed ``y`` as a 1-D curve over x (rows interpolated in log y).

        Rows y = 16 and 64 with values 1 and 3 at some x give 2 at y = 32.
        """
        ly, lq = np.log(self.y), np.log(np.clip(y, self.y[0], self.y[-1]))
        z = np.asarray(self.z, dtype=np.float64)
        col = [float(np.interp(lq, ly, z[:, j])) for j in range(len(self.x))]
        return Curve(self.x, tuple(col))

    def __call__(self, x, y):
        """Interpolated z at (x, y) (scalars or arrays broadcast together)."""
        xs, ys = np.broadcast_arrays(np.asarray(x, dtype=np.float64),
                                     np.asarray(y, dtype=np.float64))
        lx, ly = np.log(self.x), np.log(self.y)
        qx = np.log(np.clip(xs, self.x[0], self.x[-1]))
        qy = np.log(np.clip(ys, self.y[0], self.y[-1]))
        z = np.asarray(self.z, dtype=np.float64)
        i = np.clip(np.searchsorted(ly, qy, side="right") - 1, 0, max(len(ly) - 2, 0))
        if len(ly) == 1:
            value = _interp_rows(z[np.zeros_like(i)], lx, qx)
        else:
            lo, hi = _interp_rows(z[i], lx, qx), _interp_rows(z[i + 1], lx, qx)
            w = (qy - ly[i]) / (ly[i + 1] - ly[i])
            value = lo + (hi - lo) * w
        return float(value) if value.ndim == 0 else value

    def covers(self, x, y) -> bool | np.ndarray:
        """True where (x, y) lies inside the measured rectangle."""
        xa, ya = np.asarray(x), np.asarray(y)
        inside = (xa >= self.x[0]) & (xa <= self.x[-1]) & (ya >= self.y[0]) & (ya <= self.y[-1])
        return bool(inside) if np.ndim(inside) == 0 else inside


def _interp_rows(rows: np.ndarray, lx: np.ndarray, qx: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation: rows[k] (values at lx) evaluated at qx[k]."""
    j = np.clip(np.searchsorted(lx, qx, side="right") - 1, 0, len(lx) - 2)
    take = np.take_along_axis
    a = take(rows, j[..., None], axis=-1)[..., 0]
    b = take(rows, (j + 1)[..., None], axis=-1)[..., 0]
    w = (qx - lx[j]) / (lx[j + 1] - lx[j])
    return a + (b - a) * w


@dataclass(frozen=True)
class LinkSpec:
    """One data path (h2d, d2h, ssd_read, ssd_write) with a size-dependent bandwidth.

    Without a measured curve: bw(n) = peak_gbps x n / (n + half_bw_bytes), the default shape of
    a fixed per-transfer setup cost (docs/hardware-profiles.md); with one: the curve.
    """

    name: str
    latency_us: float
    """Fixed cost of one transfer (DMA / command submission, SSD access latency)."""
    peak_gbps: float
    """Large-transfer achieved bandwidth in GB/s."""
    half_bw_bytes: float
    """Transfer size that reaches half of peak_gbps (default shape only)."""
    measured: Curve | None = None
    """Calibrated size -> GB/s points; replaces the default shape."""

    def bandwidth_gbps(self, nbytes):
        """Achieved GB/s for one transfer of ``nbytes`` (scalar or array).

        Default shape, PCIe 50 GB/s peak, half at 64 KiB: 64 KiB -> 25 GB/s, 1 MiB -> 47.1 GB/s.
        """
        if self.measured is not None:
            return self.measured(nbytes)
        if not isinstance(nbytes, np.ndarray):
            return self.peak_gbps * nbytes / (nbytes + self.half_bw_bytes)
        n = nbytes.astype(np.float64)
        return self.peak_gbps * n / (n + self.half_bw_bytes)

    def transfer_time_s(self, nbytes):
        """Seconds to move ``nbytes``: latency + n / bw(n); 0 for n = 0 (scalar or array).

        PCIe example above, latency 10 us, 1 MiB: 10e-6 + 1,048,576 / 47.1e9 = 32.3 us.
        """
        if not isinstance(nbytes, np.ndarray):
            if nbytes <= 0:
                return 0.0
            return float(self.latency_us * 1e-6 + nbytes / (self.bandwidth_gbps(nbytes) * 1e9))
        n = nbytes.astype(np.float64)
        bw = np.asarray(self.bandwidth_gbps(np.maximum(n, 1.0))) * 1e9
        return np.where(n > 0, self.latency_us * 1e-6 + n / bw, 0.0)

    def covers(self, nbytes) -> bool | np.ndarray:
        """False where a calibrated curve would be extrapolated; always True without one."""
        if self.measured is None:
            return True if np.ndim(nbytes) == 0 else np.ones(np.shape(nbytes), dtype=bool)
        return self.measured.covers(nbytes)


@dataclass(frozen=True)
class GpuSpec:
    """The accelerators of the node (numbers are per GPU unless named otherwise)."""

    model: str
    count: int
    hbm_gib: float
    """Device memory visible to the application, GiB."""
    hbm_bw_gbps: float
    """Peak HBM bandwidth, GB/s."""
    bf16_dense_tflops: float
    """Peak dense (no sparsity) bf16 tensor throughput, TFLOP/s."""
    fp8_dense_tflops: float
    """Peak dense fp8 tensor throughput, TFLOP/s (0 = no fp8 support)."""
    nvlink_gbps: float
    """GPU-to-GPU bandwidth per direction, GB/s (0 = none, PCIe peer only)."""
    compute_efficiency_frac: float
    """Share of peak TFLOP/s that large weight GEMMs achieve (datasheet form)."""
    hbm_efficiency_frac: float
    """Share of peak HBM bandwidth that weight streaming (small-batch GEMMs) achieves."""
    step_overhead_us: float
    """Framework cost of one iteration at batch 0 (scheduling, launches, sampling)."""


@dataclass(frozen=True)
class OpsSpec:
    """Per-operation constants of the datasheet forms (docs/cost-model.md, "Datasheet
    forms"); measured curves of a calibrated or imported profile replace the shapes they
    describe. Defaults: fitted to AIConfigurator's measured vLLM tables of the data-centre
    GPUs (bench/fit_datasheet.py); bundled profiles state theirs with a source."""

    gemm_launch_us: float = 4.0
    """Fixed time of one weight GEMM kernel (adds to max(compute, weight streaming))."""
    attn_prefill_frac: float = 0.7
    """Share of dense bf16 peak that prefill attention reaches on long sequences."""
    attn_prefill_half_tokens: float = 1024.0
    """Sequence length at which prefill attention reaches half of attn_prefill_frac."""
    attn_prefill_extra_us: float = 13.0
    """Per layer and step with prefill: RoPE, KV-cache write and launch around attention."""
    attn_decode_frac: float = 0.9
    """Share of peak HBM bandwidth that decode attention's KV reads reach."""
    attn_decode_launch_us: float = 12.0
    """Per layer: fixed time of one decode-attention kernel."""
    elementwise_frac: float = 0.8
    """Share of peak HBM bandwidth that norms, activations and residual adds reach."""
    elementwise_launch_us: float = 3.0
    """Fixed time of one elementwise kernel (three per layer)."""
    overhead_per_seq_us: float = 0.0
    """Framework cost per running sequence per iteration (on top of gpu.step_overhead_us)."""
    comm_frac: float = 0.7
    """Share of the GPU-to-GPU link bandwidth that all-reduce / all-to-all reach."""
    comm_latency_us: float = 10.0
    """Fixed time of one collective (all-reduce or all-to-all)."""


@dataclass(frozen=True)
class HostSpec:
    """Host CPU memory, the DRAM KV tier."""

    cpu: str
    dram_gib: float
    dram_bw_gbps: float
    """Peak DRAM bandwidth of the node, GB/s."""


@dataclass(frozen=True)
class HostLinkSpec:
    """The link between host DRAM and one GPU (PCIe or NVLink-C2C)."""

    kind: str
    """"pcie" or "nvlink-c2c"."""
    pcie_gen: int
    """PCIe generation (0 for NVLink-C2C)."""
    pcie_lanes: int
    """PCIe lanes per GPU (0 for NVLink-C2C)."""
    nominal_gbps: float
    """Raw per-direction link rate, GB/s."""
    h2d_achieved_gbps: float
    """Typical achieved pinned host-to-device copy bandwidth, GB/s."""
    d2h_achieved_gbps: float
    """Typical achieved pinned device-to-host copy bandwidth, GB/s."""
    bidir_achieved_gbps: float
    """Cap on H2D + D2H running at once, GB/s."""
    latency_us: float
    """Fixed cost of one copy (launch + DMA setup)."""
    half_bw_bytes: int
    """Copy size reaching half the achieved bandwidth (default curve shape)."""


@dataclass(frozen=True)
class SsdSpec:
    """NVMe drives of the node, the SSD KV tier (per-drive figures, summed over count)."""

    model: str
    count: int
    drive_capacity_gib: float
    read_gbps: float
    """Sequential read per drive, GB/s."""
    write_gbps: float
    """Sequential write per drive, GB/s."""
    read_latency_us: float
    """4 KiB random read latency at queue depth 1."""
    write_latency_us: float
    """4 KiB random write latency at queue depth 1."""
    endurance_dwpd: float
    """Rated drive writes per day over the warranty period."""
    half_bw_bytes: int
    """Per-drive request size reaching half the sequential bandwidth (default shape)."""

    @property
    def capacity_gib(self) -> float:
        """Total capacity over all drives, GiB."""
        return self.count * self.drive_capacity_gib


SECTIONS = {"gpu": GpuSpec, "host": HostSpec, "host_link": HostLinkSpec, "ssd": SsdSpec}
OPTIONAL_SECTIONS = {"ops": OpsSpec}
"""Sections with a default for every field (absent = defaults)."""


@dataclass(frozen=True)
class HardwareProfile:
    """A serving node; build from Python or load_profile, write with write_profile."""

    name: str
    kind: str
    """One of KINDS: "datasheet", "calibrated" or "imported"."""
    description: str
    gpu: GpuSpec
    host: HostSpec
    host_link: HostLinkSpec
    ssd: SsdSpec
    sources: dict[str, str] = field(default_factory=dict)
    """Field ("gpu.hbm_gib") -> where the number comes from."""
    curves: dict[str, Curve | Grid] = field(default_factory=dict)
    """Measured curves by name (CURVE_AXES: 1-D, GRID_AXES: 2-D)."""
    provenance: dict[str, str] = field(default_factory=dict)
    """Calibrated / imported profiles: the run or data behind them (run, date, ...)."""
    schema_version: int = SCHEMA_VERSION
    ops: OpsSpec = field(default_factory=OpsSpec)
    """Per-operation constants of the datasheet forms ([ops]; defaults when absent)."""

    @property
    def gpu_link_gbps(self) -> float:
        """GPU-to-GPU bandwidth per direction, GB/s: NVLink where the node has it, else the
        PCIe host link's achieved rate (peer traffic crosses PCIe)."""
        if self.gpu.nvlink_gbps > 0:
            return self.gpu.nvlink_gbps
        return min(self.host_link.h2d_achieved_gbps, self.host_link.d2h_achieved_gbps)

    @property
    def gpu_link_kind(self) -> str:
        """"nvlink" or "pcie" (what carries tensor- and expert-parallel traffic)."""
        return "nvlink" if self.gpu.nvlink_gbps > 0 else "pcie"

    def link(self, name: str) -> LinkSpec:
        """The LinkSpec of h2d, d2h, ssd_read or ssd_write (SSD: all drives striped)."""
        try:
            return self._links[name]
        except KeyError:
            raise KvplanError(f"unknown link '{name}' (expected one of {', '.join(LINK_NAMES)})"
                              ) from None

    @cached_property
    def _links(self) -> dict[str, LinkSpec]:
        hl, ssd, c = self.host_link, self.ssd, self.curves.get
        return {
            "h2d": LinkSpec("h2d", hl.latency_us, hl.h2d_achieved_gbps, hl.half_bw_bytes, c("h2d")),
            "d2h": LinkSpec("d2h", hl.latency_us, hl.d2h_achieved_gbps, hl.half_bw_bytes, c("d2h")),
            "ssd_read": LinkSpec("ssd_read", ssd.read_latency_us, ssd.count * ssd.read_gbps,
                                 ssd.count * ssd.half_bw_bytes, c("ssd_read")),
            "ssd_write": LinkSpec("ssd_write", ssd.write_latency_us, ssd.count * ssd.write_gbps,
                                  ssd.count * ssd.half_bw_bytes, c("ssd_write")),
        }


def list_profiles() -> list[str]:
    """Names of the bundled profiles (hwprofiles/*.toml), sorted."""
    return sorted(p.stem for p in bundled_dir("hwprofiles").glob("*.toml") if p.stem != "prices")


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """A bundled profile by name or a profile TOML by path, validated (InputError if not)."""
    from kvplan.hardware.validate import parse_profile_file

    path = Path(name_or_path)
    if not path.is_file():
        bundled = bundled_dir("hwprofiles") / f"{name_or_path}.toml"
        if not bundled.is_file() or str(name_or_path) == "prices":
            raise KvplanError(f"unknown hardware profile '{name_or_path}': not a file and not "
                              f"bundled (bundled: {', '.join(list_profiles())})")
        path = bundled
    return parse_profile_file(path)


def profile_to_toml(profile: HardwareProfile) -> str:
    """The profile as TOML text that load_profile reads back to an equal profile."""
    lines = [f"schema_version = {profile.schema_version}"]
    lines += [f"{k} = {_value(getattr(profile, k))}" for k in ("name", "kind", "description")]
    optional = [s for s, cls in OPTIONAL_SECTIONS.items() if getattr(profile, s) != cls()]
    for section in (*SECTIONS, *optional):
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_value(v)}" for k, v in asdict(getattr(profile, section)).items()]
    for name, curve in profile.curves.items():
        lines += ["", f"[curves.{name}]"]
        if isinstance(curve, Grid):
            x_key, y_key, z_key = GRID_AXES[name]
            lines += [f"{x_key} = {_value(curve.x)}", f"{y_key} = {_value(curve.y)}",
                      f"{z_key} = ["] + [f"  {_value(row)}," for row in curve.z] + ["]"]
        else:
            x_key, y_key = CURVE_AXES[name]
            lines += [f"{x_key} = {_value(curve.x)}", f"{y_key} = {_value(curve.y)}"]
    for table in ("provenance", "sources"):
        entries = getattr(profile, table)
        if entries:
            lines += ["", f"[{table}]"]
            lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in entries.items()]
    return "\n".join(lines) + "\n"


def _value(v: object) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def write_profile(profile: HardwareProfile, path: str | Path) -> None:
    """Write ``profile`` as TOML atomically (never a partly written file)."""
    write_text_atomic(path, profile_to_toml(profile))


def section_fields(section: str) -> dict[str, type]:
    """Field name -> Python type (int, float or str) of one profile section."""
    hints = {"int": int, "float": float, "str": str}
    cls = SECTIONS.get(section) or OPTIONAL_SECTIONS[section]
    return {f.name: hints[str(f.type)] for f in fields(cls)}
