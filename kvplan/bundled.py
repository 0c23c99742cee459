"""Where the bundled data folders live: the checkout's top level, or inside the wheel.

From a checkout (``pip install -e .``) the folders ``traces/``, ``hwprofiles/`` and
``calibration/`` sit beside the package; a wheel carries them as ``kvplan/_bundled/<name>``.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """Path of a bundled data folder (``traces``, ``hwprofiles`` or ``calibration``)."""
    for candidate in (_PKG / "_bundled" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled folder '{name}' not found beside {_PKG}")


def bundled_file(folder: str, name: str) -> Path:
    """Path of one bundled data file, e.g. ``bundled_file('traces', 'mooncake_sample.jsonl')``."""
    return bundled_dir(folder) / name
