"""Write each engine's settings as files an operator uses as they are (docs/engines.md).

One folder per engine under ``engines/``::

    engines/vllm+lmcache/launch.sh      bash: reads engine.env and the config files beside it
    engines/vllm+lmcache/engine.env     KEY=value lines, shell-quoted (set -a; . engine.env)
    engines/vllm+lmcache/lmcache.yaml   written with a YAML dumper
    engines/vllm+lmcache/checks.txt     the engine's rules, checked, and notes

Every value from the input is quoted by :mod:`kvplan.engines.base` (``shlex.quote``) or the
YAML dumper; each file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from kvplan.atomic import write_text_atomic
from kvplan.engines import EngineSettings

ENV_FILE = "engine.env"
SCRIPT = "launch.sh"


def checks_text(s: EngineSettings) -> str:
    """The rules and notes of one engine, one per line."""
    lines = [f"{s.label}: {'every rule holds' if s.ok else 'a rule is VIOLATED'}"]
    lines += [f"[{'ok' if c.ok else 'VIOLATED'}] {c.rule}: {c.detail}" for c in s.checks]
    lines += [f"note: {n}" for n in s.notes]
    return "\n".join(lines) + "\n"


def write_engine_files(settings: list[EngineSettings], out: Path) -> list[Path]:
    """Write every engine's folder under ``out``; returns the paths written."""
    written = []
    for s in settings:
        folder = out / s.engine
        files = {SCRIPT: s.script(ENV_FILE), ENV_FILE: s.env_file(), "checks.txt": checks_text(s)}
        files |= {f.name: f.text for f in s.files}
        for name, text in files.items():
            write_text_atomic(folder / name, text)
            written.append(folder / name)
        script = folder / SCRIPT
        script.chmod(script.stat().st_mode | (0o111 & ~_umask()))
    return written


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
