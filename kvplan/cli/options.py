"""Option aliases shared by several commands (one definition, one help text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvplan.errors import KvplanError

TraceOpt = Annotated[
    Path | None,
    typer.Option("--trace", "-t", help="Workload: any supported trace file or canonical Parquet "
                 "(default: the bundled Mooncake sample)."),
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model preset name or config.json path.")]
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Hardware profile name or TOML path.")]
OutDirOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write Parquet results into this folder.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of tables.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random choice.")]
TpOpt = Annotated[int | None, typer.Option(
    "--tp", help="GPUs per replica (tensor parallel); default: the fewest that hold the weights.")]
DpOpt = Annotated[int, typer.Option("--dp", help="Replicas (data parallel), requests routed by "
                                    "prefix affinity.")]
EpOpt = Annotated[int, typer.Option("--ep", help="Expert-parallel group of an MoE model: 1 "
                                    "(experts sliced over tp) or a multiple of tp dividing "
                                    "tp x dp.")]
ImbalanceOpt = Annotated[float, typer.Option(
    "--expert-imbalance", help="EP: tokens of the busiest GPU's experts / the mean (>= 1).")]
RayOpt = Annotated[bool, typer.Option(
    "--ray", help="Run the parallel work as Ray tasks: on a local Ray cluster unless "
    "--ray-address names one (needs the ray extra: pip install 'kvplan[ray]').")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="Ray cluster to run on (ray://head:10001 or head:6379); implies "
    "--ray.")]
ArrivalsOpt = Annotated[str | None, typer.Option(
    "--arrivals", help="closed: a session's next turn arrives when the previous one finishes "
    "plus its recorded (or sampled) gap, Dynamo graphs as graphs; open: every request at its "
    "trace time (default closed).")]
HBM_KV_BLOCKS_HELP = "HBM for KV in blocks of the workload's block size (instead of --hbm-kv-gib)."
HBM_KV_TOKENS_HELP = ("HBM for KV in tokens, rounded down to whole blocks (instead of "
                      "--hbm-kv-gib).")


def check_arrivals(arrivals: str) -> str:
    """--arrivals: closed or open."""
    if arrivals not in ("closed", "open"):
        raise KvplanError(f"--arrivals: expected closed or open, got '{arrivals}'")
    return arrivals


def check_hbm_alternatives(gib: object, blocks: object, tokens: object) -> None:
    """--hbm-kv-gib, --hbm-kv-blocks and --hbm-kv-tokens: at most one."""
    given = [f for f, v in (("--hbm-kv-gib", gib), ("--hbm-kv-blocks", blocks),
                            ("--hbm-kv-tokens", tokens)) if v not in (None, [])]
    if len(given) > 1:
        raise KvplanError(f"{' and '.join(given)} are alternatives: give one")
