"""The ``sclle`` command line: one Typer app, each subcommand a thin shell over the Python API.

Subcommands live in their own modules (``cli/enhance.py``, ``cli/evaluate.py`` ...); each module
exposes ``register(app)``. Errors of type :class:`sclle.errors.SclleError` print one line and exit 2.
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

_SUBCOMMAND_MODULES = ("enhance", "export", "models", "evaluate", "segment", "train")

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
