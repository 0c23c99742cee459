"""ShareGPT-style chat logs: ShareGPT conversations, OpenAI messages, MT-Bench turns.

A JSON array or JSONL of records (shapes in :mod:`kvplan.trace.chat`). Every assistant
message is a request whose prompt is the whole conversation before it. There are no
timestamps: arrivals come from :mod:`kvplan.trace.arrivals` (seeded). Records without an
assistant message (ShareGPT has empty ones) yield no request and are counted in the notes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kvplan.errors import InputError
from kvplan.trace.arrivals import synthesize
from kvplan.trace.chat import record_to_conversation
from kvplan.trace.conversation import (
    Conversation,
    check_request_lengths,
    conversations_to_requests,
)
from kvplan.trace.inputs import check_file, json_records
from kvplan.trace.options import ReadOptions
from kvplan.trace.table import Columns, StagedWorkload, stage
from kvplan.trace.tokens import TextTokenizer
from kvplan.workload import Workload, WorkloadMeta

MTBENCH_ANSWER_TOKENS = 256
"""Output length assumed for MT-Bench answers, which the question file does not carry."""


def read_sharegpt(path: Path, opts: ReadOptions | None = None) -> Workload:
    """Read a ShareGPT / OpenAI-messages / MT-Bench file into the canonical table."""
    return stage_sharegpt(path, opts).workload()


def stage_sharegpt(path: Path, opts: ReadOptions | None = None) -> StagedWorkload:
    """:func:`read_sharegpt`, with the block hashes not yet laid out."""
    opts = opts or ReadOptions()
    path = check_file(path)
    tokenizer = TextTokenizer(opts.tokenizer)
    n_records = [0]
    req = conversations_to_requests(_conversations(path, n_records), tokenizer,
                                    opts.text_block_size, MTBENCH_ANSWER_TOKENS)
    if len(req.input_tokens) == 0:
        raise InputError(path, "no assistant turns found, expected conversations with at "
                         "least one answer")
    check_request_lengths(req, path, lambda c: f"record {c}")
    arrival, _ = synthesize(opts.arrivals, req.conversation, req.output_tokens,
                            np.zeros(len(req.conversation), dtype=bool))
    skipped = n_records[0] - len(np.unique(req.conversation))
    meta = WorkloadMeta(
        source_format="sharegpt", source_file=path.name, block_size=opts.text_block_size,
        tokenizer=tokenizer.name, arrival_process=opts.arrivals.describe(),
        notes=f"{skipped} record(s) without an assistant turn skipped" if skipped else "",
    )
    return stage(Columns(req.conversation, arrival, req.input_tokens, req.output_tokens,
                         req.hashes, req.hash_offsets), meta)


def _conversations(path: Path, counter: list[int]) -> Iterator[Conversation]:
    for place, line, rec in json_records(path):
        counter[0] += 1
        yield record_to_conversation(rec, path, place, line)
