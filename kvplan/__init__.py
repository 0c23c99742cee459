"""kvplan: trace-driven capacity planner for the KV cache of LLM serving."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

__version__ = "0.1.0"


def _writable_folder(folder: Path) -> bool:
    """True if ``folder`` exists or can be made, and a file can be created in it (numba's
    own test for a cache folder)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except (OSError, RuntimeError):
        return False
    return True


def _numba_cache_fallback() -> None:
    """Give numba a writable cache folder when it would find none.

    kvplan's compiled kernels are cached (``@njit(cache=True)``) in ``__pycache__`` beside the
    source, else in the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``, ``numba``).
    With a read-only install and an unwritable HOME numba has neither and fails at import,
    so even ``kvplan --version`` would die: then ``NUMBA_CACHE_DIR`` is pointed at
    ``<temp>/kvplan-numba-<uid>`` (``NUMBA_CACHE_DIR`` set by the user always wins).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    try:
        home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
    except RuntimeError:  # no HOME and no password entry
        home_cache = None
    if _writable_folder(Path(__file__).parent / "__pycache__") or (
            home_cache is not None and _writable_folder(home_cache)):
        return
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    fallback = Path(tempfile.gettempdir()) / f"kvplan-numba-{uid}"
    os.environ["NUMBA_CACHE_DIR"] = str(fallback)
    if "numba" in sys.modules:  # imported before kvplan: its config was already read
        from numba.core import config
        config.CACHE_DIR = str(fallback)


_numba_cache_fallback()
