"""The ``kvplan`` command: a wiring table from command names to their modules."""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import get_args, get_origin

import typer
from rich.markup import escape
from typer.core import TyperGroup

from kvplan import __version__
from kvplan.atomic import forget_written, written_files
from kvplan.cli import calibrate, models, plan, profiles, replay, trace, validate
from kvplan.errors import KvplanError

_UsageError = typer.BadParameter.__mro__[1]
"""click's UsageError (a bad flag value, an unknown option, a missing argument), wherever
this typer version keeps click."""


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so cleanup (temporary files, workers) runs."""


class _Group(TyperGroup):
    """Turns a KvplanError or a usage error (a bad flag value, an unknown option) anywhere
    below into one line on stderr and exit code 2; Ctrl-C (130) and SIGTERM (143) into one
    line saying which outputs were kept complete."""

    def invoke(self, ctx):  # type: ignore[override]
        forget_written()
        try:
            return super().invoke(ctx)
        except KvplanError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None
        except _UsageError as exc:
            _usage_error(exc, ctx)
        except KeyboardInterrupt:
            _say_stopped(130)
            raise typer.Exit(130) from None
        except Terminated:
            _say_stopped(143)
            raise typer.Exit(143) from None

    def parse_args(self, ctx, args):  # type: ignore[override]
        try:
            return super().parse_args(ctx, args)
        except _UsageError as exc:
            _usage_error(exc, ctx)

    def resolve_command(self, ctx, args):  # type: ignore[override]
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None:
            _plain_help(cmd, ctx)
        return name, cmd, rest

    def format_help(self, ctx, formatter):  # type: ignore[override]
        _plain_help(self, ctx)
        return super().format_help(ctx, formatter)


def _usage_error(exc, ctx) -> None:
    """One line for a usage error, pointing at the help of the command that raised it (a
    group called without a command has printed its help already: that stands)."""
    if not exc.format_message().strip():
        raise exc
    where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
    typer.echo(f"Error: {exc.format_message().rstrip('.')} (see '{where} --help')", err=True)
    raise typer.Exit(2) from None


def _plain_help(cmd, ctx) -> None:
    """Help text shown as written: square brackets kept (typer's rich help would read
    ``[prices]`` or ``'kvplan[ray]'`` as markup and drop them), the type column of a flag
    (``--json``, ``--help``) left empty (typer shows ``<bool>`` beside every flag, although a
    flag takes no value) and a repeated option's type named by its items (``<float>``, never
    Python's ``<list[float]>``)."""
    if getattr(cmd, "_kvplan_plain", False):
        return
    cmd._kvplan_plain = True
    cmd.help = escape(cmd.help) if cmd.help else cmd.help
    cmd.short_help = escape(cmd.short_help) if cmd.short_help else cmd.short_help
    help_option = cmd.get_help_option(ctx)
    for param in [*cmd.params, *([help_option] if help_option else [])]:
        if getattr(param, "help", None):
            param.help = escape(param.help)
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif param.metavar is None and get_origin(annotation := _annotation(param)) is list:
            shown = f"<{param._bare_type(get_args(annotation)[0]).lower()}>"
            param.display_type_rich = lambda ctx, shown=shown: shown
    for sub in getattr(cmd, "commands", {}).values():
        _plain_help(sub, ctx)


def _annotation(param) -> object:
    """The Python type typer shows for ``param`` (None where it keeps none)."""
    return getattr(getattr(param, "type_descriptor", None), "annotation", None)


_STOPPED = {130: "Interrupted", 143: "Terminated"}
_said_stopped = False


def _say_stopped(code: int) -> None:
    """The one line after Ctrl-C (130) or SIGTERM (143): what was kept."""
    global _said_stopped
    typer.echo(f"{_STOPPED[code]}; {_kept()}", err=True)
    _said_stopped = True


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
        return
    except KeyboardInterrupt:  # while typer builds the command, before any handler of its own
        code = 130
    except Terminated:
        code = 143
    except SystemExit as exc:
        if exc.code not in _STOPPED:
            raise
        code = int(exc.code)
    if not _said_stopped:  # stopped while the flags were parsed: typer exits 130 silently
        _say_stopped(code)
    atexit._run_exitfuncs()  # multiprocessing's own cleanup (its semaphores)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
