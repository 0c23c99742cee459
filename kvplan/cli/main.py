"""The ``kvplan`` command: a wiring table from command names to their modules."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from kvplan import __version__
from kvplan.cli import calibrate, models, plan, profiles, replay, trace, validate
from kvplan.errors import KvplanError


class _Group(TyperGroup):
    """Turns a KvplanError anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except KvplanError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None


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
    """Console-script entry point."""
    sys.exit(app())
