"""The validation plot: TTFT and e2e CDFs real vs simulated, and queue depth over time.

matplotlib is imported lazily (kvplan.report.plots).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kvplan.report.plots import _png


def validation_png(requests: pl.DataFrame, sim_ts: pl.DataFrame, gauges: pl.DataFrame | None,
                   title: str) -> bytes:
    """Three panels: TTFT CDF, e2e CDF (real vs simulated, seconds) and requests waiting per
    second (the engine's gauge when the run has one, else the waiting-for-first-token count
    derived from the measured stamps; the replay's waiting queue)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=100)
    for ax, metric, label in ((axes[0], "ttft", "TTFT (s)"), (axes[1], "e2e", "e2e latency (s)")):
        for side, style in (("real", "-"), ("sim", "--")):
            v = np.sort(requests[f"{side}_{metric}_ms"].drop_nulls().to_numpy()) / 1e3
            ax.plot(v, np.arange(1, len(v) + 1) / max(len(v), 1), style,
                    label="real" if side == "real" else "kvplan")
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of requests")
        ax.legend(loc="lower right")
    ax = axes[2]
    real_t, real_w, real_label = _real_queue(requests, gauges)
    ax.plot(real_t, real_w, "-", label=real_label)
    if sim_ts.height:
        ax.plot(sim_ts["t_s"], sim_ts["waiting"], "--", label="kvplan: waiting queue")
    ax.set_xlabel("time since the first arrival (s)")
    ax.set_ylabel("requests waiting")
    ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _png(plt, fig)


def _real_queue(requests: pl.DataFrame, gauges: pl.DataFrame | None
                ) -> tuple[np.ndarray, np.ndarray, str]:
    if gauges is not None and gauges["waiting"].null_count() < gauges.height:
        return gauges["t_s"].to_numpy(), gauges["waiting"].to_numpy(), "real: engine gauge"
    arrival = requests["arrival_s"].to_numpy()
    first = arrival + requests["real_ttft_ms"].to_numpy() / 1e3
    t = np.arange(0.0, float(first.max()) + 1.0)
    waiting = (np.searchsorted(np.sort(arrival), t, side="right")
               - np.searchsorted(np.sort(first), t, side="right"))
    return t, waiting, "real: awaiting first token (from stamps)"
