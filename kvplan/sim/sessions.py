"""Per-session results of an event replay (``sessions.parquet``; docs/metrics.md).

A session's turns are its requests in request-id (trace) order. "Between turns" is the time
from a turn's finish to the next turn's arrival: the gap in closed loop, and negative in
open loop when the next turn arrived before the previous one finished. "KV held between
turns" is what a later turn finds of its prompt prefix in each tier when it is admitted: the
session's earlier KV that survived the gap (and any prefix shared with other sessions).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from kvplan.hierarchy import TIER_LABELS


def session_table(requests: pl.DataFrame) -> pl.DataFrame:
    """One row per session from an event replay's per-request table."""
    later = pl.col("turn") > 0
    df = requests.sort("session_id", "request_id").with_columns(
        pl.int_range(pl.len()).over("session_id").alias("turn"),
        (pl.col("arrival_s") - pl.col("finish_s").shift(1).over("session_id"))
        .alias("between_s"))
    held = [pl.col(f"hit_{t}_tokens").filter(later & pl.col("finished")).mean()
            .alias(f"kv_held_{t}_tokens") for t in TIER_LABELS]
    return df.group_by("session_id", maintain_order=True).agg(
        pl.len().alias("turns"),
        pl.col("finished").sum().alias("finished_turns"),
        pl.col("arrival_s").first().alias("first_arrival_s"),
        pl.col("finish_s").max().alias("last_finish_s"),
        pl.when(pl.col("finished").all())
        .then(pl.col("finish_s").max() - pl.col("arrival_s").first()).alias("duration_s"),
        pl.col("between_s").mean().alias("between_turns_mean_s"),
        pl.col("between_s").max().alias("between_turns_max_s"),
        *held,
    )


def has_sessions(requests: pl.DataFrame) -> bool:
    """Whether any session has more than one request."""
    return requests.height > requests["session_id"].n_unique()


def session_summary(sessions: pl.DataFrame) -> list[dict[str, Any]]:
    """The session table in a few figures: key (for --json), metric (label), value."""
    dur = sessions["duration_s"].drop_nulls()

    def q(s: pl.Series, p: float) -> float | None:
        return float(s.quantile(p, "linear")) if len(s) else None

    rows = [("sessions", "sessions", sessions.height),
            ("turns_mean", "turns per session, mean", sessions["turns"].mean()),
            ("duration_p50_s", "session duration p50 s", q(dur, 0.5)),
            ("duration_p99_s", "session duration p99 s", q(dur, 0.99)),
            ("between_turns_mean_s", "between turns, mean s",
             sessions["between_turns_mean_s"].mean()),
            *((f"kv_held_{t}_tokens", f"KV held between turns {t.upper()} (tokens/turn)",
               sessions[f"kv_held_{t}_tokens"].mean()) for t in TIER_LABELS)]
    return [{"key": k, "metric": m, "value": v} for k, m, v in rows]
