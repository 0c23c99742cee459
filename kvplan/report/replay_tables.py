"""The summary of `kvplan replay` for people: one row per metric, one column per variant.

Honest by construction: goodput and SLO attainment say n/a when no SLO was given; every
timed run gets a saturation verdict (kvplan.sim.verdict) with the figures behind it;
latencies carry their unit (ms below 10 s, s above); hit ratios are percentages::

    metric                 value
    load                   overloaded
    finished               3,993 of 3,993
    TTFT p50               418.1 s
    goodput                n/a (no SLO given)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvplan.report.numbers import duration_ms, number
from kvplan.sim.results import ReplayResult
from kvplan.sim.verdict import Verdict, run_figures, verdict

NO_SLO = "n/a (no SLO given)"


def _gib(v: Any) -> str:
    return number(v / 2**30) if isinstance(v, int) else number(v)


def _pct(v: Any) -> str:
    return f"{v:.1%}"


def _seconds(v: Any) -> str:
    return f"{number(v)} s"


def _per_s(unit: str) -> Callable[[Any], str]:
    return lambda v: f"{number(v)} {unit}"


ROWS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("stop", "stop_reason", str),
    ("bound", "bound", lambda v: "yes (offline oracle)" if v else "no"),
    ("simulated time", "sim_duration_s", _seconds),
    ("throughput", "throughput_req_s", _per_s("req/s")),
    ("output tokens", "throughput_tok_s", _per_s("tok/s")),
    ("goodput", "goodput_req_s", _per_s("req/s")), ("SLO attained", "slo_attained_frac", _pct),
    ("TTFT p50", "ttft_p50_ms", duration_ms), ("TTFT p99", "ttft_p99_ms", duration_ms),
    ("TPOT p50", "tpot_p50_ms", duration_ms), ("TPOT p99", "tpot_p99_ms", duration_ms),
    ("E2E p50", "e2e_p50_ms", duration_ms), ("load stall total", "load_stall_total_s", _seconds),
    ("hit ratio HBM (blocks)", "hit_ratio_hbm_blocks", _pct),
    ("hit ratio DRAM (blocks)", "hit_ratio_dram_blocks", _pct),
    ("hit ratio SSD (blocks)", "hit_ratio_ssd_blocks", _pct), ("preemptions", "preemptions", number),
    ("H2D GiB", "h2d_bytes", _gib), ("D2H GiB", "d2h_bytes", _gib),
    ("SSD read GiB", "ssd_read_bytes", _gib), ("SSD written GiB", "ssd_bytes_written", _gib),
    ("SSD drive writes/day", "ssd_drive_writes_per_day", number),
    ("peak HBM GiB", "hbm_peak_gib", number), ("peak DRAM GiB", "dram_peak_gib", number),
    ("peak SSD GiB", "ssd_peak_gib", number),
)
"""(label, run key, formatter) of each summary row; a row no variant has is left out."""
SLO_KEYS = ("goodput_req_s", "slo_attained_frac")


def has_slo(r: ReplayResult) -> bool:
    return r.config.slo_ttft_ms is not None or r.config.slo_tpot_ms is not None


def load_verdict(r: ReplayResult) -> Verdict | None:
    """The saturation verdict of a timed run (None for a timing-free cache-mode run)."""
    tm = r.run.timing
    if tm is None or "finish_s" not in r.requests.columns:
        return None
    req = r.requests
    return verdict(run_figures(req["arrival_s"].to_numpy(), req["finish_s"].to_numpy(),
                               tm.preemptions, tm.stop_reason))


def run_record(r: ReplayResult) -> dict[str, Any]:
    """The run summary as written (JSON, run.parquet): SLO figures null without an SLO, and
    the verdict (load_state, load_reason; null for cache mode)."""
    run = r.run.as_row()
    if not has_slo(r):
        run |= dict.fromkeys(SLO_KEYS)
    v = load_verdict(r)
    return run | {"load_state": v.state if v else None, "load_reason": v.reason if v else None}


def summary_rows(results: list[tuple[str, ReplayResult]]) -> list[dict[str, str]]:
    """One row per summary metric, one column per variant (cells already formatted)."""
    verdicts = [load_verdict(r) for _, r in results]
    runs = [(n, r.run.as_row(), has_slo(r)) for n, r in results]
    rows: list[dict[str, str]] = []
    if any(verdicts):
        rows.append({"metric": "load"} | {n: v.state if v else "n/a (no clock)"
                                          for (n, _), v in zip(results, verdicts, strict=True)})
    if any("finished" in run for _, run, _ in runs):
        rows.append({"metric": "finished"} | {n: f"{number(run['finished'])} of "
                                              f"{number(run['requests'])}"
                                              for n, run, _ in runs if "finished" in run})
    for label, key, fmt in ROWS:
        if not any(key in run for _, run, _ in runs):
            continue
        if key == "bound" and not any(run.get("bound") for _, run, _ in runs):
            continue
        rows.append({"metric": label} | {n: _cell(run, slo, key, fmt) for n, run, slo in runs})
    return rows


def _cell(run: dict[str, Any], slo: bool, key: str, fmt: Callable[[Any], str]) -> str:
    if key in SLO_KEYS and not slo:
        return NO_SLO
    v = run.get(key)
    if v is None:
        return "n/a"
    return fmt(v)


def verdict_lines(results: list[tuple[str, ReplayResult]], compared: bool) -> list[str]:
    """Per variant: its load verdict ('load: overloaded: 4.59 req/s offered, ...') and, for a
    bound, which oracle makes it one."""
    out = []
    for name, r in results:
        label = f" ({name})" if compared else ""
        v = load_verdict(r)
        if v is not None:
            out.append(f"load{label}: {v.words()}")
        if r.run.bound:
            out.append(f"bound{label}: {r.run.bound}: an upper bound that no online policy "
                       "reaches, not a configuration to run")
    return out
