"""User-facing errors: one line naming the file, the place and what was expected.

Every stage raises :class:`KvplanError` (or a subclass) for a user mistake; the CLI turns it
into a single line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class KvplanError(Exception):
    """A user mistake or an impossible request, explained in one line."""


class InputError(KvplanError):
    """Bad input data: names the file, the line or field, and what was expected."""

    def __init__(
        self,
        path: str | Path | None,
        problem: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = str(path) if path is not None else "<input>"
        if line is not None:
            where += f":{line}"
        if field is not None:
            where += f": field '{field[:80]}'"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.field, self.problem = path, line, field, problem
