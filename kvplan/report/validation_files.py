"""Files of ``kvplan validate -o DIR`` (columns in docs/validate.md), each written atomically
after everything was computed, so a failure never leaves a partial set of results behind."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from kvplan import __version__
from kvplan.atomic import atomic_path, write_parquet_atomic
from kvplan.report.plots import have_matplotlib
from kvplan.report.validation_plot import validation_png
from kvplan.validate.fit import FitResult
from kvplan.validate.metrics import Comparison
from kvplan.validate.runner import Validation


def metrics_frame(v: Validation, fit: FitResult | None) -> pl.DataFrame:
    """validation.parquet: one row per (part, metric): the whole run on the given profile,
    and with --fit the fitted profile on the fit and held-out parts."""
    parts: list[tuple[str, str, Comparison]] = [("all", v.settings.profile, v.comparison)]
    if fit is not None:
        parts += [("fit", fit.profile.name, fit.in_sample),
                  ("held-out", fit.profile.name, fit.held_out)]
    rows = [{"part": part, "profile": profile, "metric": r.metric, "real": r.real,
             "sim": r.sim, "error_frac": r.error_frac}
            for part, profile, c in parts for r in c.metrics]
    schema = {"part": pl.String, "profile": pl.String, "metric": pl.String,
              "real": pl.Float64, "sim": pl.Float64, "error_frac": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def write_validation(out: Path, v: Validation, fit: FitResult | None, title: str
                     ) -> list[str]:
    """Write validation.parquet, requests.parquet (+ requests_fitted.parquet with --fit) and
    validation.png (when matplotlib is installed); returns the file names written."""
    meta = {"kvplan.version": __version__,
            "kvplan.validate_settings": json.dumps(v.settings.as_dict(), sort_keys=True,
                                                   default=str),
            "kvplan.run": json.dumps({"path": str(v.run.path), "format": v.run.source_format,
                                      "engine": v.run.engine, "clocks": v.run.clocks,
                                      "failed": v.run.failed, "notes": list(v.run.notes)},
                                     sort_keys=True)}
    frames = {"validation.parquet": metrics_frame(v, fit), "requests.parquet": v.requests}
    if fit is not None:
        n = fit.fit_requests
        frames["requests_fitted.parquet"] = fit.validation.requests.with_columns(
            pl.when(pl.col("request_id") < n).then(pl.lit("fit")).otherwise(pl.lit("held-out"))
            .alias("part"))
    png = (validation_png(v.requests, v.sim_timeseries, v.run.gauges, title)
           if have_matplotlib() else None)
    for name, frame in frames.items():
        write_parquet_atomic(frame.to_arrow(), out / name, meta)
    if png is not None:
        with atomic_path(out / "validation.png") as tmp:
            tmp.write_bytes(png)
    return [*frames, *(["validation.png"] if png is not None else [])]
