"""Conversations (role, text messages) -> one request per assistant message, with block hashes.

A conversation is laid out as one token stream, each message wrapped in its tokenizer's chat
framing (:mod:`kvplan.trace.framing`; the estimator's is two header and two trailer tokens,
``<start> role ... <end> \\n``, like ChatML)::

    | <s> sys  ...system...  </s> \\n | <s> user ...question... </s> \\n | <s> asst | answer ... |
    |<------------------------- prompt of request 0 -------------------------->|<- output ->|

Each assistant message is a request: its prompt is the stream up to and including its own
header (the generation prompt), its output the message's tokens. The chain hash runs once
over the whole stream, so a later turn's blocks extend an earlier turn's blocks exactly, and
conversations that open with the same system prompt share its blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvplan.trace.framing import ROLES, ChatFraming
from kvplan.trace.hashing import block_positions, chain_units
from kvplan.trace.inputs import check_lengths
from kvplan.trace.tokens import TextTokenizer

__all__ = ["ROLES", "Conversation", "Requests", "conversations_to_requests"]

_PLACEHOLDER_TAG = np.uint64(1 << 63)
_BATCH_CHARS = 1 << 24


@dataclass(frozen=True)
class Conversation:
    """One session: role codes (indices into :data:`ROLES`) and texts.

    A text of None is an assistant answer whose content is unknown (MT-Bench questions carry
    no answers): it counts ``unknown_answer_tokens`` tokens that no other request shares.
    """

    roles: tuple[int, ...]
    texts: tuple[str | None, ...]


@dataclass(frozen=True)
class Requests:
    """One row per assistant message, grouped by conversation, in message order."""

    conversation: np.ndarray
    message: np.ndarray
    after_tool: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hashes: np.ndarray
    hash_offsets: np.ndarray


def conversations_to_requests(convs: Iterable[Conversation], tokenizer: TextTokenizer,
                              block_size: int, unknown_answer_tokens: int = 256) -> Requests:
    """Tokenize, chain-hash and cut conversations into requests, in batches of ~16 MB text."""
    parts = []
    first_conv = 0
    for batch in _batches(convs):
        parts.append(_batch_requests(batch, first_conv, tokenizer, block_size,
                                     unknown_answer_tokens))
        first_conv += len(batch)
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Requests(empty, empty, empty.astype(bool), empty, empty,
                        empty.astype(np.uint64), np.zeros(1, dtype=np.int64))
    counts = np.concatenate([np.diff(p.hash_offsets) for p in parts])
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Requests(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                      ("conversation", "message", "after_tool", "input_tokens",
                       "output_tokens", "hashes")), hash_offsets=offsets)


def check_request_lengths(req: Requests, path: Path, record: Callable[[int], str]) -> None:
    """Every prompt and answer within the per-request token limit, else an InputError naming
    the record (``record(conversation index)``) and the message."""
    def place(i: int) -> tuple[None, str]:
        return None, f"{record(int(req.conversation[i]))}, message {req.message[i]}: "

    check_lengths(path, req.input_tokens, "prompt tokens", place)
    check_lengths(path, req.output_tokens, "output tokens", place)


def _batches(convs: Iterable[Conversation]) -> Iterator[list[Conversation]]:
    batch: list[Conversation] = []
    chars = 0
    for c in convs:
        batch.append(c)
        chars += sum(len(t) for t in c.texts if t)
        if chars >= _BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _batch_requests(batch: list[Conversation], first_conv: int, tokenizer: TextTokenizer,
                    block_size: int, unknown_answer_tokens: int) -> Requests:
    roles = np.fromiter((r for c in batch for r in c.roles), dtype=np.int64)
    texts = [t for c in batch for t in c.texts]
    n_msgs = np.fromiter((len(c.roles) for c in batch), dtype=np.int64, count=len(batch))
    unknown = np.fromiter((t is None for t in texts), dtype=bool, count=len(texts))
    ids, counts = _encode(tokenizer, [t or "" for t in texts])
    counts = np.where(unknown, unknown_answer_tokens, counts)
    conv_first = np.r_[0, np.cumsum(n_msgs)]
    conv_of_msg = np.repeat(np.arange(len(batch)), n_msgs)
    msg_key = ((conv_of_msg + first_conv) << 16) + np.arange(len(roles)) - conv_first[conv_of_msg]
    content = _content_ids(ids, counts, unknown, msg_key)
    del ids  # token arrays take 8 B per token: hold one at a time
    framing = tokenizer.framing
    stream, msg_start, seg_start = _stream(content, counts, roles, conv_first, framing)
    del content
    conv_bounds = np.r_[seg_start, len(stream)][conv_first]
    chain = chain_units(stream, conv_bounds, out=stream)  # the stream is not needed after
    asst = np.flatnonzero(roles == ROLES.index("assistant"))
    start = conv_bounds[conv_of_msg[asst]]
    prompt = msg_start[asst] + framing.lengths("header")[roles[asst]] - start
    n_blocks = prompt // block_size
    offsets = np.zeros(len(asst) + 1, dtype=np.int64)
    np.cumsum(n_blocks, out=offsets[1:])
    prev_role = roles[np.maximum(asst - 1, 0)]
    return Requests(
        conversation=conv_of_msg[asst] + first_conv,
        message=asst - conv_first[conv_of_msg[asst]],
        after_tool=(prev_role == ROLES.index("tool")) & (asst > conv_first[conv_of_msg[asst]]),
        input_tokens=prompt,
        output_tokens=np.maximum(counts[asst], 1),
        hashes=chain[block_positions(start, n_blocks, block_size)],
        hash_offsets=offsets,
    )


def _encode(tokenizer: TextTokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``tokenizer.encode`` over runs of about _BATCH_CHARS characters of text, so its working
    memory (8 bytes per input byte for the estimator) stays bounded by the run, not the batch:
    one 200 MB conversation is one batch."""
    ids, counts = [], []
    start = chars = 0
    for i, t in enumerate(texts):
        chars += len(t)
        if chars >= _BATCH_CHARS or i == len(texts) - 1:
            run_ids, run_counts = tokenizer.encode(texts[start:i + 1])
            ids.append(run_ids)
            counts.append(run_counts)
            start, chars = i + 1, 0
    if not ids:
        return tokenizer.encode([])
    return np.concatenate(ids), np.concatenate(counts)


def _content_ids(ids: np.ndarray, counts: np.ndarray, unknown: np.ndarray, msg_key: np.ndarray
                 ) -> np.ndarray:
    """Token ids of every message's content; unknown answers get ids no other message has.

    An unknown answer's k-th id is ``TAG | msg_key << 16 | k`` with ``msg_key`` unique per
    (conversation, message), so the hash chain breaks at the first block that holds it.
    """
    starts = (np.cumsum(counts) - counts).astype(np.int64)
    content = np.empty(int(counts.sum()), dtype=np.uint64)
    content[block_positions(starts[~unknown], counts[~unknown], 1)] = ids
    pos = block_positions(starts[unknown], counts[unknown], 1)
    k = pos - np.repeat(starts[unknown], counts[unknown])
    key = np.repeat(msg_key[unknown], counts[unknown]).astype(np.uint64)
    content[pos] = _PLACEHOLDER_TAG | (key << np.uint64(16)) | k.astype(np.uint64)
    return content


def _stream(content: np.ndarray, counts: np.ndarray, roles: np.ndarray, conv_first: np.ndarray,
            framing: ChatFraming) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Content wrapped in the chat framing: (stream, start of each message's header, start of
    each message's segment, which for a conversation's first message includes the begin).

    Each conversation opens with ``framing.begin``; message m is ``header[role] content
    trailer[role]``. Example (estimator, begin empty): a user message of 3 tokens then an
    assistant message of 1 -> starts [0, 7], stream length 12.
    """
    head, tail = framing.lengths("header")[roles], framing.lengths("trailer")[roles]
    begin = np.zeros(len(roles), dtype=np.int64)
    firsts = np.unique(conv_first[:-1][np.diff(conv_first) > 0])
    begin[firsts] = len(framing.begin)
    lengths = begin + head + counts + tail
    seg_start = (np.cumsum(lengths) - lengths).astype(np.int64)
    msg_start = seg_start + begin
    stream = np.empty(int(lengths.sum()), dtype=np.uint64)
    stream[block_positions(seg_start[firsts], begin[firsts], 1)] = np.tile(
        np.array(framing.begin, dtype=np.uint64), len(firsts))
    stream[block_positions(msg_start, head, 1)] = framing.ids("header", roles)
    stream[block_positions(msg_start + head, counts, 1)] = content
    stream[block_positions(msg_start + head + counts, tail, 1)] = framing.ids("trailer", roles)
    return stream, msg_start, seg_start
