"""The ``kvplan`` command: a wiring table from command names to their modules."""

from __future__ import annotations

import atexit
import os
import signal
import sys

import typer
from typer.core import TyperGroup

from kvplan import __version__
from kvplan.atomic import forget_written, written_files
from kvplan.cli import calibrate, models, plan, profiles, replay, trace, validate
from kvplan.errors import KvplanError


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so cleanup (temporary files, workers) runs."""


class _Group(TyperGroup):
    """Turns a KvplanError anywhere below into one line on stderr and exit code 2; Ctrl-C
    (130) and SIGTERM (143) into one line saying which outputs were kept complete."""

    def invoke(self, ctx):  # type: ignore[override]
        forget_written()
        try:
            return super().invoke(ctx)
        except KvplanError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo(f"Interrupted; {_kept()}", err=True)
            raise typer.Exit(130) from None
        except Terminated:
            typer.echo(f"Terminated; {_kept()}", err=True)
            raise typer.Exit(143) from None


def _kept() -> str:
    """What an interrupted command leaves: its complete files (never a partial one)."""
    files = written_files()
    if not files:
        return "no output was written."
    names = ", ".join(str(f) for f in files[:6]) + (", ..." if len(files) > 6 else "")
    return f"kept {len(files)} complete file(s): {names}; no partial file left."


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


app = typer.Typer(
    cls=_Group,
    name="kvplan",
    help="Trace-driven capacity planner for the KV cache of LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(trace.app, name="trace")
app.add_typer(models.app, name="models")
app.add_typer(profiles.app, name="profiles")
app.command("calibrate")(calibrate.calibrate)
app.command("replay")(replay.replay)
app.command("plan")(plan.plan)
app.command("validate")(validate.validate)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kvplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Trace-driven capacity planner for the KV cache of LLM serving."""


def main() -> None:
    """Console-script entry point.

    After Ctrl-C or SIGTERM the cleanup has run (temporary files removed, workers stopped,
    the one-line message printed): the exit handlers run and the process leaves at once,
    instead of spending another 0.4-1 s tearing down numba, polars and the module graph.
    """
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()
    except SystemExit as exc:
        if exc.code in (130, 143):
            atexit._run_exitfuncs()  # multiprocessing's own cleanup (its semaphores)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code)
        raise
