"""Chat framing: the tokens a chat template puts around each message, per model family.

A conversation becomes one token stream: an optional begin-of-text, then each message as
``header(role) + content + trailer(role)``; an LLM call's prompt ends with the assistant
header (the generation prompt). The families, with the source each template is read from:

    family     header(role)                                trailer(role)          begin
    estimator  <s> ROLE                                    </s> \\n                -
    openai     <|start|> role <|message|>                  <|end|>                -
    llama3     <|start_header_id|> role <|end_header_id|>  <|eot_id|>             <|begin_of_text|>
               \\n\\n   (tool -> "ipython")
    chatml     <|im_start|> role \\n                        <|im_end|> \\n          -
    deepseek   user <｜User｜>, assistant <｜Assistant｜>,  assistant <｜end▁of▁sentence｜>,
               tool <｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>, system (none)
               tool <｜tool▁output▁end｜><｜tool▁outputs▁end｜>  <｜begin▁of▁sentence｜>

Worked example, Qwen2.5 (chatml), system "Be brief." (3 tokens) then user "Hi" (1 token)::

    <|im_start|> system \\n Be brief . <|im_end|> \\n   3 + 3 + 2 = 8
    <|im_start|> user \\n Hi <|im_end|> \\n             3 + 1 + 2 = 6
    <|im_start|> assistant \\n                         3      (generation prompt)
    prompt of the first LLM call                        17 tokens

OpenAI's markup is not published; the ``openai`` family reproduces the counts of OpenAI's
cookbook (3 tokens per message plus the role, 3 to prime the reply) with marker ids just above
the vocabulary. docs/workload.md cites each template and how it was checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ROLES = ("system", "user", "assistant", "tool")

MARKER = re.compile(r"<\|[^|<>\s]+\|>|<｜[^｜\s]+｜>")
"""A template marker: ``<|name|>`` or DeepSeek's full-width ``<｜name｜>``."""


@dataclass(frozen=True)
class Template:
    """A family's chat template as text; ``{role}`` is replaced by the role's name."""

    header: str | dict[str, str]
    trailer: str | dict[str, str]
    begin: str = ""
    role_names: tuple[tuple[str, str], ...] = ()
    """Roles the template spells differently, e.g. Llama-3 writes tool results as ipython."""

    def text(self, part: str, role: str) -> str:
        value = getattr(self, part)
        text = value[role] if isinstance(value, dict) else value
        return text.replace("{role}", dict(self.role_names).get(role, role))


TEMPLATES = {
    "openai": Template(header="<|start|>{role}<|message|>", trailer="<|end|>"),
    "llama3": Template(header="<|start_header_id|>{role}<|end_header_id|>\n\n",
                       trailer="<|eot_id|>", begin="<|begin_of_text|>",
                       role_names=(("tool", "ipython"),)),
    "chatml": Template(header="<|im_start|>{role}\n", trailer="<|im_end|>\n"),
    "deepseek": Template(
        header={"system": "", "user": "<｜User｜>", "assistant": "<｜Assistant｜>",
                "tool": "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>"},
        trailer={"system": "", "user": "", "assistant": "<｜end▁of▁sentence｜>",
                 "tool": "<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
        begin="<｜begin▁of▁sentence｜>"),
}


@dataclass(frozen=True)
class ChatFraming:
    """Token ids of the begin-of-text and of each role's header and trailer (ROLES order)."""

    begin: tuple[int, ...]
    header: tuple[tuple[int, ...], ...]
    trailer: tuple[tuple[int, ...], ...]

    def lengths(self, part: str) -> np.ndarray:
        """Token count of each role's ``header`` or ``trailer``, indexed by role code."""
        return np.array([len(x) for x in getattr(self, part)], dtype=np.int64)

    def ids(self, part: str, roles: np.ndarray) -> np.ndarray:
        """The ``header`` or ``trailer`` ids of each message in turn, flat (uint64)."""
        table = getattr(self, part)
        flat = np.array([i for x in table for i in x], dtype=np.uint64)
        starts = np.r_[0, np.cumsum(self.lengths(part))[:-1]]
        n = self.lengths(part)[roles]
        first = np.repeat(starts[roles] - np.r_[0, np.cumsum(n)[:-1]], n)
        return flat[first + np.arange(int(n.sum()))]


ESTIMATOR_FRAMING = ChatFraming(
    begin=(),
    header=tuple((0x3C733E, role) for role in (0x5359_5354, 0x5553_4552, 0x4153_5354,
                                               0x544F_4F4C)),  # <s> SYST|USER|ASST|TOOL
    trailer=((0x3C2F733E, 0x0A),) * len(ROLES),  # </s> \n
)
"""The built-in estimator's ChatML-like framing: 2 header + 2 trailer tokens per message."""


def build_framing(template: Template, encode: Callable[[str], Sequence[int]],
                  marker_id: Callable[[str], int]) -> ChatFraming:
    """Token ids of a template: text between markers through ``encode``, each marker through
    ``marker_id`` (which raises if the vocabulary lacks it)."""

    def ids(text: str) -> tuple[int, ...]:
        out: list[int] = []
        pos = 0
        for m in MARKER.finditer(text):
            out += encode(text[pos:m.start()]) if m.start() > pos else []
            out.append(marker_id(m.group()))
            pos = m.end()
        return tuple(out + (list(encode(text[pos:])) if pos < len(text) else []))

    return ChatFraming(begin=ids(template.begin),
                       header=tuple(ids(template.text("header", r)) for r in ROLES),
                       trailer=tuple(ids(template.text("trailer", r)) for r in ROLES))
