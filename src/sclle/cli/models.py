"""``sclle models``: the enhancers the registry knows, their licence, size and where their weights are."""

from __future__ import annotations

import json

import typer


def _rows() -> list[dict]:
    from sclle.errors import WeightsError
    from sclle.models.registry import list_models, resolve_weights

    rows = []
    for e in list_models():
        try:
            where = str(resolve_weights(e.name, download=False))
        except WeightsError:
            where = None
        rows.append(
            {
                "name": e.name,
                "arch": e.arch,
                "default": e.default,
                "params": e.meta.get("params"),
                "licence": e.licence,
                "research_only": e.research_only,
                "available": where,
                "url": e.url,
                "sha256": e.sha256,
                "training_data": e.meta.get("training_data"),
                "source": e.meta.get("source", ""),
            }
        )
    return rows


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_cmd(
        as_json: bool = typer.Option(False, "--json", help="Machine-readable list (all fields)."),
    ) -> None:
        """List registered enhancers (R = research use only: the authors' licence allows no more)."""
        rows = _rows()
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("model", "arch", "params", "licence", "weights", box=None, pad_edge=False)
        for r in rows:
            mark = (" *" if r["default"] else "") + (" R" if r["research_only"] else "")
            params = f"{r['params']:,}" if isinstance(r["params"], int) else ""
            where = (
                "bundled"
                if r["available"] and r["url"] is None
                else ("local" if r["available"] else "download")
            )
            table.add_row(r["name"] + mark, r["arch"], params, (r["licence"] or "")[:24], where)
        console = Console(width=min(Console().width, 100))
        console.print(table)
        console.print(
            "* default   R research use only (the authors' weights; see --json for licence, URL, sha256)"
        )
