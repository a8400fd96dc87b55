"""The Typer applications the command modules register on."""

from __future__ import annotations

from typing import Annotated

import typer

from annotate import __version__

app = typer.Typer(
    name="annotate",
    help="Run an object detector over camera, video or image frames and draw what it finds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
models_app = typer.Typer(
    help="Known models: list, download, locate, register.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        print(f"annotate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Run an object detector over camera, video or image frames and draw what it finds."""
