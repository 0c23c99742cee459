"""Dynamo agentic_mooncake dependencies: ``request_id``, ``wait_for`` and ``delay``.

Dynamo's agentic trace rows are Mooncake rows plus a request graph: a row dispatches when
every request named in its ``wait_for`` has completed, plus its ``delay`` (the non-tool wait,
ms) and ``tool_wait_ms`` (the tool's run time). Source, ai-dynamo/dynamo at commit
04daeb0eb425a1e7d9bc145c893bf9f46b7798e8, ``lib/data-gen/src/request_trace/agentic.rs``: the
lowering measures the gap from the latest dependency's end and splits it into
``tool_wait_ms`` and ``delay``, and its test
``agentic_lowering_builds_sequential_waits_and_tool_wait_components`` checks
``dependency_delay_ms() == delay + tool_wait_ms``; ``lib/mocker/src/loadgen/types.rs``
(``TraceFileFormat::AgenticMooncake``): "Each row dispatches after `wait_for` completions
plus its authored delay/tool wait".

kvplan keeps the graph as the workload's ``wait_for`` column (request ids; null where the row
has no ``wait_for`` key, so its session's previous turn applies) and ``delay_s``; the event
simulator's closed loop (:mod:`kvplan.sim.arrivals`) replays it. A row's dependencies must
arrive before it (an earlier ``timestamp``, or the same one on an earlier line): that is
what Dynamo's timestamps record, and it rules out cycles.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kvplan.errors import InputError
from kvplan.trace.inputs import echo
from kvplan.trace.table import Dependencies


class GraphRecords:
    """Collects each line's ``request_id``, ``wait_for`` and ``delay``, then resolves them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: list[str | None] = []
        self.waits: list[list[str] | None] = []
        self.delays: list[float] = []
        self.lines: list[int] = []

    def add(self, line: int, rec: dict) -> None:
        """Check and keep one record's graph fields."""
        rid, wait, delay = rec.get("request_id"), rec.get("wait_for"), rec.get("delay")
        if (rid is not None and not isinstance(rid, (str, int))) or isinstance(rid, bool):
            self._fail(line, "request_id", rid, "expected a string or an integer")
        if wait is not None and (not isinstance(wait, list) or not all(
                isinstance(w, (str, int)) and not isinstance(w, bool) for w in wait)):
            self._fail(line, "wait_for", wait, "expected a list of request ids")
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float))
                                  or not 0 <= delay < math.inf):
            self._fail(line, "delay", delay, "expected null or a number of milliseconds >= 0")
        self.keys.append(None if rid is None else str(rid))
        self.waits.append(None if wait is None else [str(w) for w in wait])
        self.delays.append(math.nan if delay is None else float(delay))
        self.lines.append(line)

    @property
    def present(self) -> bool:
        """Whether any record has a ``wait_for`` or a ``delay``."""
        return any(w is not None for w in self.waits) or any(d == d for d in self.delays)

    def resolve(self, timestamp_ms: np.ndarray) -> tuple[Dependencies, np.ndarray]:
        """(the rows each record waits for, delay in seconds with NaN for none)."""
        index: dict[str, int] = {}
        for i, key in enumerate(self.keys):
            if key is not None and index.setdefault(key, i) != i:
                self._fail(self.lines[i], "request_id", key, "duplicate request id")
        counts, rows = [], []
        for i, wait in enumerate(self.waits):
            for key in wait or ():
                j = index.get(key)
                if j is None:
                    self._fail(self.lines[i], "wait_for", key, "unknown request id")
                if (timestamp_ms[j], j) >= (timestamp_ms[i], i):
                    self._fail(self.lines[i], "wait_for", key,
                               "waits for a request that does not arrive before it")
                rows.append(j)
            counts.append(len(wait or ()))
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        given = np.array([w is not None for w in self.waits], dtype=bool)
        return (Dependencies(given, offsets, np.array(rows, dtype=np.int64)),
                np.array(self.delays) / 1000.0)

    def _fail(self, line: int, name: str, value: object, problem: str) -> None:
        raise InputError(self.path, f"{problem}, got {echo(value)}", line=line, field=name)
