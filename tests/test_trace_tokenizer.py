"""The --tokenizer path with a real (tiny, built offline) Hugging Face tokenizer.json."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture
def word_tokenizer(tmp_path):
    """Whitespace words -> ids; truncation at 4 and padding on, as some shipped files have."""
    vocab = {"[UNK]": 0, **{f"w{i}": i + 1 for i in range(64)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.enable_truncation(max_length=4)
    tok.enable_padding(length=8)
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


def test_convert_counts_real_tokens_without_truncation_or_padding(tmp_path, word_tokenizer):
    words = " ".join(f"w{i}" for i in range(40))
    conv = [{"id": "a", "conversations": [{"from": "human", "value": words},
                                          {"from": "gpt", "value": "w1 w2 w3"}]}]
    src = tmp_path / "chat.json"
    src.write_text(json.dumps(conv))
    out = tmp_path / "chat.parquet"
    result = CliRunner().invoke(app, ["trace", "convert", str(src), "-o", str(out), "--tokenizer",
                                      str(word_tokenizer), "--block-size", "16"],
                                env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    prompt = table.column("input_tokens")[0].as_py()
    assert 40 <= prompt < 48  # the 40 words plus the chat template's few tokens: never 4 or 8
    assert table.column("output_tokens")[0].as_py() == 3
    assert len(table.column("block_hashes")[0].as_py()) == prompt // 16
