"""File output: checked before the work starts, written atomically, debris cleaned up.

- :func:`check_output_file` / :func:`check_output_dir`: a one-line KvplanError, before any
  work, when an output path cannot be written (a folder where a file is expected or the other
  way round, a parent that is a file, a folder without write permission or on a read-only
  file system, a file name without the ``.parquet`` suffix where Parquet is written).
- :func:`atomic_path`: write to a hidden temporary file beside the target, then rename, so a
  crash or an error half-way never leaves a partly written result. The temporary file is
  named ``.<target name>.<pid>.<random>.tmp``; it is removed on any exception (SIGTERM is
  turned into one by the CLI), and one left by a killed process (SIGKILL) is removed by the
  next write to the same target once its process is gone.
- :func:`written_files`: the targets completed so far in this process, so an interrupted
  command can say what it kept.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kvplan.errors import KvplanError

_written: list[Path] = []
"""Targets renamed into place by this process since :func:`forget_written` (CLI reports)."""


def check_output_file(target: str | Path, flag: str = "--out", suffix: str | None = ".parquet"
                      ) -> Path:
    """``target`` if a file (named ``*<suffix>`` unless None) can be written there, else a
    one-line KvplanError."""
    target = Path(target)
    if target.is_dir():
        raise KvplanError(f"{flag}: '{target}' is a folder, expected a file name")
    if suffix is not None and target.suffix.lower() != suffix:
        raise KvplanError(f"{flag}: expected a file name ending in {suffix}, got '{target}' "
                          f"(kvplan writes {suffix.lstrip('.').capitalize()} only)")
    _check_can_create_in(target.parent, target, flag)
    return target


def check_output_dir(target: str | Path, flag: str = "--out") -> Path:
    """``target`` if files can be written into it (created if missing), else a KvplanError."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise KvplanError(f"{flag}: '{target}' is a file, expected a folder")
    _check_can_create_in(target, target, flag)
    return target


def _check_can_create_in(folder: Path, target: Path, flag: str) -> None:
    """The nearest existing folder at or above ``folder`` accepts a new file (a probe file is
    created and removed: permission bits alone say nothing for root or read-only mounts)."""
    existing = folder.absolute()
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise KvplanError(f"{flag}: cannot write '{target}': '{existing}' is a file, not a "
                          "folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".kvplan-probe.", dir=existing)
    except OSError as exc:
        raise KvplanError(f"{flag}: cannot write '{target}': no new file can be created in "
                          f"'{existing}' ({exc.strerror or type(exc).__name__})") from None
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    Any OSError while writing (disk full, permission) becomes a one-line KvplanError.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=target.parent)
    except OSError as exc:
        raise KvplanError(f"cannot write '{target}' ({exc.strerror or exc})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        tmp_path.chmod(0o666 & ~umask)
        yield tmp_path
        os.replace(tmp_path, target)
        _written.append(target)
    except OSError as exc:
        raise KvplanError(f"cannot write '{target}' ({exc.strerror or exc})") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temps(target: Path) -> None:
    """Remove ``.<target name>.<pid>.*.tmp`` files whose writing process no longer runs."""
    prefix = f".{target.name}."
    for entry in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or an absurd number): leave its file alone
    return True


def written_files() -> list[Path]:
    """Targets completed by :func:`atomic_path` since the last :func:`forget_written`."""
    return list(_written)


def forget_written() -> None:
    """Start a new record of written files (the CLI does this per command)."""
    _written.clear()


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_parquet_atomic(
    table: pa.Table, target: str | Path, metadata: dict[str, str] | None = None,
    row_group_rows: int | None = None,
) -> None:
    """Write an Arrow table to Parquet atomically, merging ``metadata`` into the schema's;
    ``row_group_rows``: rows per row group (None: Arrow's default, 1 Mi rows)."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_rows)
