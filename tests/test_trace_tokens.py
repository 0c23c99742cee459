"""The built-in token estimator: hand-counted pieces."""

import numpy as np
import pytest

from kvplan.trace.tokens import TextTokenizer, estimate_tokens


@pytest.mark.parametrize("text,count", [
    ("Hello world", 2),                 # "Hello", " world"
    (" tokenization", 2),               # " tokeni" (space + 6 letters), "zation"
    ("2024", 2),                        # digits in groups of 3
    ("()", 1),                          # punctuation, 2 bytes per piece
    ("```", 1),
    ("        x", 2),                   # 8 spaces, then "x"... the last space joins "x"
    ("\n\n", 1),
    ("你好", 2),                         # one per 3-byte character
    ("", 0),
])
def test_estimator_counts(text, count):
    _, counts = TextTokenizer().encode([text])
    assert counts.tolist() == [count]


def test_equal_text_gives_equal_ids_and_batches_are_independent():
    ids1, c1 = TextTokenizer().encode(["same words here", "x"])
    ids2, c2 = TextTokenizer().encode(["same words here"])
    assert ids1[: c1[0]].tolist() == ids2.tolist()


def test_estimate_tokens_on_raw_bytes():
    data = np.frombuffer(b"ab cd", dtype=np.uint8)
    ids, counts = estimate_tokens(data, np.array([0, 2, 5]))
    assert counts.tolist() == [1, 1]
