"""The ``sclle`` command line: one Typer app, each subcommand a thin shell over the Python API.

Subcommands live in their own modules (``cli/enhance.py``, ``cli/evaluate.py`` ...); each module
exposes ``register(app)``. Errors of type :class:`sclle.errors.SclleError` print one line and exit 2,
as do usage errors (an option out of its range); ``sclle --version`` and ``python -m sclle`` work.
"""

from __future__ import annotations

import importlib
import sys

import typer

from sclle.errors import SclleError

app = typer.Typer(
    name="sclle",
    help="Low-light image enhancement (SCL-LLE): enhance, evaluate, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from sclle import __version__

        typer.echo(f"sclle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Low-light image enhancement (SCL-LLE): enhance, evaluate, train."""


_SUBCOMMAND_MODULES = ("enhance", "export", "models", "evaluate", "benchmark", "segment", "train")

for _name in _SUBCOMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"sclle.cli.{_name}")
    except ModuleNotFoundError as exc:  # a subcommand module not written yet
        if exc.name != f"sclle.cli.{_name}":
            raise
        continue
    _mod.register(app)


def main() -> None:
    try:
        app()
    except SclleError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
