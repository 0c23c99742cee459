"""Atomic output: nothing is left behind on failure, and files get the usual permissions."""

from __future__ import annotations

import os

import pytest

from kvplan.atomic import atomic_path, write_text_atomic


def test_failure_leaves_no_file(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_written_file_follows_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "out.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
