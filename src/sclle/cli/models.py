"""``sclle models``: list the enhancers the registry knows and where their weights are."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_cmd() -> None:
        """List registered enhancer weights."""
        from rich.console import Console
        from rich.table import Table

        from sclle.errors import WeightsError
        from sclle.models.registry import list_models, resolve_weights

        table = Table("name", "default", "available", "params", "source")
        for e in list_models():
            try:
                where = str(resolve_weights(e.name, download=False))
            except WeightsError:
                where = "no (download on first use)" if e.url else "no"
            table.add_row(
                e.name,
                "yes" if e.default else "",
                where,
                str(e.meta.get("params", "")),
                e.meta.get("source", "")[:60],
            )
        Console().print(table)
