"""One entry point for real engine runs: recognise the format by content, call its reader.

Recognised (never by file name): a folder holding ``requests.jsonl`` (run folder); a JSON(L)
file whose first record has engine stamps ``queued_ts`` / ``first_token_ts`` (a run folder's
``requests.jsonl``), ``start_times`` or vLLM's ``date`` (vLLM ``bench serve``), or ``ttfts`` /
``backend`` without start times (SGLang ``bench_serving``); a CSV whose header names the
generic columns.
"""

from __future__ import annotations

from pathlib import Path

from kvplan.bundled import bundled_dir
from kvplan.errors import InputError
from kvplan.trace.detect import first_record
from kvplan.trace.inputs import check_file
from kvplan.validate.generic_csv import COLUMNS, is_generic_csv, read_generic_csv
from kvplan.validate.run import EngineRun
from kvplan.validate.run_folder import is_run_folder, read_run_folder
from kvplan.validate.sglang_bench import read_sglang_bench
from kvplan.validate.vllm_bench import read_vllm_bench

RUN_FORMATS = ("run-folder", "vllm-bench", "sglang-bench", "csv")
BUNDLED_RUN = "engine_runs/vllm-0.19_rtx4090_llama-3.1-8b"
"""The bundled real run (traces/engine_runs/README.md): vLLM 0.19.0, Llama-3.1-8B, RTX 4090."""


def default_run_path() -> Path:
    return bundled_dir("traces") / BUNDLED_RUN


def detect_run_format(path: Path) -> str:
    """Name of the reader for ``path`` (one of :data:`RUN_FORMATS`), or an InputError."""
    if path.is_dir():
        if is_run_folder(path):
            return "run-folder"
        raise InputError(path, "folder without requests.jsonl: expected a run folder "
                         "(meta.json + requests.jsonl)")
    path = check_file(path)
    with open(path, "rb") as f:
        head = f.read(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if is_generic_csv(head.split("\n", 1)[0]):
        return "csv"
    record = first_record(path) if head.startswith(("{", "[")) else None
    if isinstance(record, dict):
        if "queued_ts" in record or "first_token_ts" in record:
            return "run-folder"
        if "start_times" in record or "date" in record:
            return "vllm-bench"
        if "ttfts" in record or "backend" in record:
            return "sglang-bench"
    raise InputError(path, "unknown run format: expected a run folder (meta.json + "
                     "requests.jsonl), vLLM bench serve JSON, SGLang bench_serving JSONL or a "
                     f"CSV with columns {','.join(COLUMNS)}")


def read_run(path: Path | None = None, *, seed: int = 0) -> EngineRun:
    """Read any supported engine run (None = the bundled one); ``seed`` draws arrivals where
    the log keeps none (SGLang)."""
    path = Path(path) if path is not None else default_run_path()
    if not path.exists():
        raise InputError(path, "no such file or folder")
    fmt = detect_run_format(path)
    if fmt == "run-folder":
        return read_run_folder(path)
    if fmt == "vllm-bench":
        return read_vllm_bench(path)
    if fmt == "sglang-bench":
        return read_sglang_bench(path, seed)
    return read_generic_csv(path)
