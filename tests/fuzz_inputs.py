"""Mutation fuzzing of every input file kvplan reads: cases, and the property they must meet.

Shared by the default-suite fuzz test (tests/test_fuzz_readers.py, hypothesis drives the
choices, so a failure shrinks) and the long run (bench/bench_fuzz.py, a seeded
``random.Random`` drives them). A case is a small valid seed document of one input kind,
mutated: values in its tree replaced by awkward ones (huge, negative, NaN, wrong type, deeply
nested), keys dropped or added, then the serialized bytes damaged (BOM, truncation, invalid
UTF-8, CRLF). :func:`check_case` runs the real entry point and returns a problem description
when the property fails: any input either reads into a valid result or raises kvplan's own
error, on one line, naming the file.
"""

from __future__ import annotations

import copy
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kvplan.errors import KvplanError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


class Chooser:
    """Where every random choice of a case comes from (random.Random or hypothesis data)."""

    def __init__(self, integer: Callable[[int, int], int]) -> None:
        self.integer = integer

    @classmethod
    def from_random(cls, rng: random.Random) -> Chooser:
        return cls(rng.randint)

    @classmethod
    def from_hypothesis(cls, data: Any) -> Chooser:
        from hypothesis import strategies as st
        return cls(lambda lo, hi: data.draw(st.integers(lo, hi)))

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.integer(0, len(seq) - 1)]

    def chance(self, percent: int) -> bool:
        return self.integer(0, 99) < percent


@dataclass(frozen=True)
class Raw:
    """A value serialized as this literal text (deep nesting json.dumps cannot produce)."""

    text: str


DEEP_JSON = Raw("[" * 100_000 + "]" * 100_000)
LONG_INT = Raw("7" * 5000)
DEEP_TOML = Raw("[" * 50_000 + "]" * 50_000)
AWKWARD: list[Any] = [
    0, -1, 1, 7, 511, 512, 2**24, 2**24 + 1, 2**31 - 1, 2**31, 2**32 + 1, 2**53 + 1, 2**63 - 1,
    2**63, 2**64, 2**64 + 5, -(2**63), 10**12, 10**30, 0.5, -0.0, 1e-300, 1e300, 1.5e308,
    math.nan, math.inf, -math.inf, "", "e", "12", "-5", "NaN", "1e999", "\u00e9\u4e2d\U0001f600",
    "\x00", "x" * 3000, [], {}, [1, 2], [1.5], ["a"], [[1]], {"a": 1}, {"text": 3}, None, True,
    False, DEEP_JSON, LONG_INT,
]
"""Values a mutation may put anywhere in a JSON document."""
TOML_AWKWARD = [v for v in AWKWARD if v is not None and not isinstance(v, Raw)
                and not (isinstance(v, int) and not isinstance(v, bool)
                         and not -(2**63) <= v < 2**63)] + [DEEP_TOML, LONG_INT]
"""TOML cannot write null, and its integers are 64-bit signed."""
CSV_AWKWARD = [
    "", "0", "-1", "-0", "1.5", "1e3", "nan", "inf", "-inf", "NaN", "2147483647", "2147483648",
    "4294967297", "9223372036854775807", "99999999999999999999", "1000000000000", "16777217",
    "x" * 300, "2023-11-16 18:17:03", "9999-12-31 23:59:59", "2262-04-12 00:00:00",
    "0001-01-01 00:00:00", "1677-09-21 00:12:43", '"a,b"', '"multi\nline"', "\u4e2d",
    "2023-13-45 99:99:99",
]


# ---- seed documents -------------------------------------------------------------------------

def _jsonl_lines(name: str, n: int) -> list[dict]:
    text = (ROOT / "traces" / name).read_text().splitlines()
    return [json.loads(x) for x in text[:n]]


def _short(rec: Any, limit: int = 300) -> Any:
    """Long strings of a seed record cut to ``limit`` characters (keeps cases fast)."""
    if isinstance(rec, str):
        return rec[:limit]
    if isinstance(rec, list):
        return [_short(x, limit) for x in rec[:6]]
    if isinstance(rec, dict):
        return {k: _short(v, limit) for k, v in rec.items()}
    return rec


def _seeds() -> dict[str, Any]:
    traj = json.loads((ROOT / "traces" /
                       "sweagent_demo_marshmallow-code__marshmallow-1867.traj.json").read_text())
    sharegpt = json.loads((ROOT / "traces" / "tiny_chat.sharegpt.json").read_text())
    return {
        "mooncake": _jsonl_lines("tiny_chat.mooncake.jsonl", 3),
        "dynamo": _jsonl_lines("dynamo_agentic_mooncake_sample.jsonl", 3),
        "sharegpt": _short(sharegpt[:2]),
        "openai": _short(_jsonl_lines("tiny_chat.openai.jsonl", 2)),
        "mtbench": _short(_jsonl_lines("fastchat_mt_bench_question.jsonl", 2)),
        "toolcalls": _short(_jsonl_lines("openai_tool_calls_sample.jsonl", 1)),
        "traj": _short({"environment": traj["environment"], "history": traj["history"][:5],
                        "info": {"model_stats": traj["info"]["model_stats"]}}),
        "token_ids": [{"prompt_token_ids": list(range(40)), "expected_output_len": 5},
                      {"input_tok_ids": [1, 2, 3, 4, 5, 6, 7, 0] * 4, "output_tok_ids": [1, 2],
                       "session_id": "s"},
                      {"prompt": {"prompt_token_ids": [1, 2, 3] * 9}, "output_tokens": 1}],
        "azure": [["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
                  ["2023-11-16 18:17:03.9799600", "4808", "10"],
                  ["2023-11-16 18:17:04.0319600", "3180", "8"],
                  ["2023-11-16 18:17:05.5", "35", "200"]],
        "burstgpt": [["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens",
                      "Log Type"],
                     ["0.037", "ChatGPT", "143", "35", "178", "Conversation log"],
                     ["1.5", "GPT-4", "461", "200", "661", "API log"],
                     ["3.25", "ChatGPT", "40", "0", "40", "Conversation log"]],
        "profile": tomllib.loads((ROOT / "hwprofiles" / "h100-sxm.toml").read_text()),
        "profile_measured": tomllib.loads((ROOT / "hwprofiles" / "h100-sxm-aic-vllm.toml")
                                          .read_text()),
        "prices": tomllib.loads((ROOT / "hwprofiles" / "prices.toml").read_text()),
        "model": json.loads((ROOT / "kvplan" / "model" / "presets" / "gemma-2-27b.json")
                            .read_text()),
        "model_mla": json.loads((ROOT / "kvplan" / "model" / "presets" / "deepseek-v2.json")
                                .read_text()),
        "model_moe": json.loads((ROOT / "kvplan" / "model" / "presets" / "gpt-oss-20b.json")
                                .read_text()),
    }


SEEDS = _seeds()
TRACE_FORMATS = {"mooncake": "mooncake", "dynamo": "agent", "sharegpt": "sharegpt",
                 "openai": "sharegpt", "mtbench": "sharegpt", "toolcalls": "agent",
                 "traj": "agent", "token_ids": "token-ids", "azure": "azure",
                 "burstgpt": "burstgpt"}
KINDS = (*TRACE_FORMATS, "parquet", "profile", "profile_measured", "prices", "model",
         "model_mla", "model_moe")
EXTRA_KEYS = ["timestamp", "input_length", "output_length", "hash_ids", "session_id",
              "tool_wait_ms", "messages", "conversations", "turns", "question_id", "content",
              "role", "tool_calls", "tools", "text", "history", "info", "model_stats",
              "tokens_sent", "text_config", "num_key_value_heads", "sliding_window",
              "sliding_window_pattern", "layer_types", "model_type", "quantization_config",
              "head_dim", "num_hidden_layers", "curves", "gpu", "prices", "sources", "h2d",
              "sizes_bytes", "bw_gbps", "from", "value", "use_sliding_window", "torch_dtype",
              "prompt_token_ids", "input_tok_ids", "expected_output_len", "arrival_time_ns",
              "output_tok_ids", "prompt_len"]


# ---- tree mutations -------------------------------------------------------------------------

def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node in a JSON-like tree (the root is the empty path)."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def mutate_tree(doc: Any, ch: Chooser, values: list[Any]) -> Any:
    """``doc`` with one to three random edits of its tree."""
    doc = copy.deepcopy(doc)
    for _ in range(ch.integer(1, 3)):
        paths = _paths(doc)
        path = ch.choice(paths)
        op = ch.integer(0, 5)
        if not path or op == 0:
            if path:
                parent = _get(doc, path[:-1])
                parent[path[-1]] = copy.deepcopy(ch.choice(values))
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == 1 and isinstance(parent, dict):
            del parent[key]
        elif op == 1:
            parent.pop(key)
        elif op == 2 and isinstance(parent, dict):
            parent[ch.choice(EXTRA_KEYS)] = copy.deepcopy(ch.choice(values))
        elif op == 2:
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == 3:
            parent[key] = [] if isinstance(parent[key], list) else {}
        elif op == 4 and isinstance(parent[key], (int, float)) and not isinstance(parent[key],
                                                                                    bool):
            parent[key] = ch.choice([-parent[key], parent[key] * 1000, parent[key] + 0.5,
                                     str(parent[key])])
        else:
            parent[key] = copy.deepcopy(ch.choice(values))
    return doc


def _json_text(doc: Any) -> str:
    raws: list[str] = []

    def default(o: Any) -> str:
        if isinstance(o, Raw):
            raws.append(o.text)
            return f"@@RAW{len(raws) - 1}@@"
        raise TypeError(type(o).__name__)

    text = json.dumps(doc, default=default, ensure_ascii=False)
    for i, r in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', r)
    return text


def mutate_bytes(data: bytes, ch: Chooser) -> bytes:
    """Byte-level damage, some of the time."""
    op = ch.integer(0, 12)
    n = len(data)
    if op == 0:
        return b"\xef\xbb\xbf" + data
    if op == 1 and n:
        return data[: ch.integer(0, n - 1)]
    if op == 2 and n:
        i = ch.integer(0, n - 1)
        return data[:i] + ch.choice([b"\xff", b"\xc3", b"\x00", b"\n", b"{", b"]", b","]) + \
            data[i + 1:]
    if op == 3:
        return data.replace(b"\n", b"\r\n")
    if op == 4:
        return b"\n\n" + data + b"\n\n"
    return data


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == math.inf else "-inf" if v == -math.inf
                                     else repr(v))
    if isinstance(v, (int, str)):
        return json.dumps(v, ensure_ascii=False) if isinstance(v, str) else str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v).__name__)


def toml_text(doc: dict, prefix: str = "") -> str:
    """A small TOML writer: scalars and arrays inline, nested tables as [a.b] sections."""
    lines, tables = [], []
    for k, v in doc.items():
        if isinstance(v, dict) and v:
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    text = "\n".join(lines) + "\n"
    for k, v in tables:
        name = f"{prefix}{_toml_key(k)}"
        text += f"\n[{name}]\n" + toml_text(v, name + ".")
    return text


# ---- cases ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    kind: str
    data: bytes
    fmt: str
    """Format passed to the reader: auto, or the kind's own."""


def make_case(kind: str, ch: Chooser) -> Case:
    """One mutated input of ``kind``."""
    fmt = "auto"
    if kind in TRACE_FORMATS:
        fmt = ch.choice(["auto", TRACE_FORMATS[kind]])
        data = _trace_bytes(kind, ch)
    elif kind == "parquet":
        data = parquet_bytes(ch)
    elif kind in ("profile", "profile_measured", "prices"):
        doc = SEEDS[kind]
        if ch.chance(85):
            doc = mutate_tree(doc, ch, TOML_AWKWARD)
        data = toml_text(doc).encode()
    else:
        doc = SEEDS[kind]
        if ch.chance(85):
            doc = mutate_tree(doc, ch, AWKWARD)
        data = _json_text(doc).encode()
    if kind != "parquet" and ch.chance(30):
        data = mutate_bytes(data, ch)
    return Case(kind, data, fmt)


def _trace_bytes(kind: str, ch: Chooser) -> bytes:
    seed = SEEDS[kind]
    if kind in ("azure", "burstgpt"):
        rows = copy.deepcopy(seed)
        for _ in range(ch.integer(1, 3)):
            r = ch.integer(0, len(rows) - 1)
            c = ch.integer(0, len(rows[r]) - 1)
            op = ch.integer(0, 5)
            if op == 0 and len(rows[r]) > 1:
                rows[r].pop(c)
            elif op == 1:
                rows.append(list(rows[-1]))
            else:
                rows[r][c] = ch.choice(CSV_AWKWARD)
        return ("\n".join(",".join(r) for r in rows) + "\n").encode()
    if ch.chance(85):
        seed = mutate_tree(seed, ch, AWKWARD)
    if kind == "traj" or not isinstance(seed, list):
        return _json_text(seed).encode()
    if kind == "sharegpt" or ch.chance(20):
        return _json_text(seed).encode()
    return "\n".join(_json_text(r) for r in seed).encode() + b"\n"


def _workload_table() -> tuple[pa.Table, dict]:
    from kvplan.trace import read_trace
    w = read_trace(ROOT / "traces" / "tiny_chat.mooncake.jsonl")
    from dataclasses import asdict
    return w.table, asdict(w.meta)


_BASE_TABLE: list[tuple[pa.Table, dict]] = []
_COLUMN_VALUES = [0, -1, 1, 2**31 - 1, 2**31, 2**40, -(2**62), math.nan, math.inf, -math.inf,
                  -0.5, 1e300, None, "x", "12"]


def parquet_bytes(ch: Chooser) -> bytes:
    """A canonical workload Parquet with its columns, schema or metadata mutated."""
    if not _BASE_TABLE:
        _BASE_TABLE.append(_workload_table())
    table, meta = _BASE_TABLE[0]
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    for _ in range(ch.integer(0, 2)):
        name = ch.choice(list(cols))
        op = ch.integer(0, 5)
        if op == 0:
            del cols[name]
        elif op == 1:
            cols[name] = cols[name][::-1]
        elif op == 2:
            cols = {k: v[:0] for k, v in cols.items()}
        elif op == 3 and name == "block_hashes":
            cols[name] = [h[:-1] if isinstance(h, list) else h for h in cols[name]]
        else:
            i = ch.integer(0, len(cols[name]) - 1) if cols[name] else 0
            if cols[name]:
                cols[name][i] = ch.choice(_COLUMN_VALUES + ([[1.5], [-1], [None], None]
                                                             if name == "block_hashes" else []))
    meta_text: bytes
    if ch.chance(60):
        meta_text = json.dumps(meta).encode()
    else:
        m = mutate_tree(meta, ch, AWKWARD)
        meta_text = ch.choice([_json_text(m).encode(), b"not json", b"\xff\xfe", b"[1, 2]",
                               b'"text"', _json_text(m).encode()])
    arrays = {}
    for k, v in cols.items():
        try:
            arrays[k] = pa.array(v, type=table.schema.field(k).type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            arrays[k] = pa.array([str(x) for x in v])
    out = pa.table(arrays) if arrays else pa.table({"x": [1]})
    out = out.replace_schema_metadata({b"kvplan.workload": meta_text})
    sink = pa.BufferOutputStream()
    pq.write_table(out, sink)
    data = sink.getvalue().to_pybytes()
    if ch.chance(10):
        i = ch.integer(0, len(data) - 1)
        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    elif ch.chance(5):
        data = data[: ch.integer(4, len(data))]
    return data


# ---- the property ---------------------------------------------------------------------------

SUFFIX = {"traj": ".traj.json", "parquet": ".parquet", "profile": ".toml",
          "profile_measured": ".toml", "prices": ".toml", "model_moe": ".json",
          "model": ".json", "model_mla": ".json", "azure": ".csv", "burstgpt": ".csv"}


def write_case(case: Case, folder: Path, index: int = 0) -> Path:
    path = folder / f"case{index}_{case.kind}{SUFFIX.get(case.kind, '.jsonl')}"
    path.write_bytes(case.data)
    return path


def read_case(case: Case, path: Path) -> object:
    """Run the entry point that reads this kind of file; returns what it built."""
    if case.kind.startswith("profile"):
        from kvplan.hardware.profile import load_profile
        profile = load_profile(str(path))
        for name in ("h2d", "d2h", "ssd_read", "ssd_write"):
            link = profile.link(name)
            if link.peak_gbps > 0 or link.measured is not None:  # 0: no such link
                assert link.transfer_time_s(1 << 20) > 0
        return profile
    if case.kind == "prices":
        from kvplan.hardware.prices import load_prices
        return load_prices(path)
    if case.kind.startswith("model"):
        from kvplan.model.kv import kv_bytes_per_token
        from kvplan.model.spec import load_model
        spec = load_model(str(path))
        assert kv_bytes_per_token(spec) > 0, spec
        return spec
    from kvplan.trace import read_trace
    from kvplan.workload.validate import validate_workload
    w = read_trace(path, case.fmt)
    validate_workload(w.table, w.meta, path)
    _independent_checks(w)
    return w


def _independent_checks(w: Any) -> None:
    """What a valid workload means, checked without kvplan's own validator."""
    t = w.table
    n = t.num_rows
    assert n > 0
    arr = t.column("arrival_s").to_numpy()
    assert np.isfinite(arr).all() and (arr >= 0).all() and (np.diff(arr) >= 0).all()
    for name in ("input_tokens", "output_tokens"):
        x = t.column(name).to_numpy()
        assert (x >= 0).all() and (x <= 2**24).all(), name
    counts = np.diff(np.asarray(t.column("block_hashes").combine_chunks().offsets))
    assert np.array_equal(counts, t.column("input_tokens").to_numpy() // w.block_size)
    assert 1 <= w.block_size <= 2**24
    wait = t.column("tool_wait_s").to_numpy(zero_copy_only=False)
    ok = np.isnan(wait) | ((wait >= 0) & np.isfinite(wait))
    assert ok.all()
    assert len(set(t.column("request_id").to_pylist())) == n


def check_case(case: Case, path: Path) -> str | None:
    """None when the property holds for this case; else what went wrong."""
    return classify_case(case, path)[1]


def classify_case(case: Case, path: Path) -> tuple[str, str | None]:
    """("read" | "refused" | "unexpected", what went wrong or None)."""
    try:
        read_case(case, path)
    except KvplanError as exc:
        msg = str(exc)
        if "\n" in msg:
            return "unexpected", f"error spans lines: {msg[:300]!r}"
        if len(msg) > 600:
            return "unexpected", f"error longer than 600 characters: {msg[:300]!r}"
        if path.name not in msg:
            return "unexpected", f"error does not name the file: {msg!r}"
        return "refused", None
    except (AssertionError, Exception) as exc:  # noqa: B902 - the fuzzer's job is to catch any
        return "unexpected", f"{type(exc).__name__}: {str(exc)[:300]}"
    return "read", None
