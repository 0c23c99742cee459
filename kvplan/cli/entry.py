"""The console script ``kvplan``: loads the command's modules, then runs it.

Loading them (typer, polars, numba's compiled kernels) takes a second or more; Ctrl-C in that
time ends with the same one line as anywhere else (kvplan.cli.main.main), not a traceback
from whichever import it interrupted. Nothing is written before the modules are loaded.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        from kvplan.cli.main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted; no output was written.\n")
        sys.stderr.flush()
        os._exit(130)
    run()
