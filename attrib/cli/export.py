"""CLI topic 'export': ``attrib export --parquet DIR`` -> :meth:`attrib.store.Store.export_parquet`."""

from __future__ import annotations

from pathlib import Path

import typer

from attrib.cli._common import console, handle_errors


def register(app: typer.Typer) -> None:
    """Add ``attrib export``."""

    @app.command("export")
    def export_cmd(
        parquet: Path = typer.Option(None, "--parquet", help="Folder to write one <table>.parquet per store table."),
        store: Path = typer.Option(None, "--store", "-s", help="Store file (default: $ATTRIB_STORE, else ./attrib.duckdb)."),
    ) -> None:
        """Export the store (traces, steps, labels, activations, attributions, errors) for pandas, Spark, DuckDB...

        Example:  attrib export --parquet out/  then  pandas.read_parquet('out/steps.parquet')
        """
        if parquet is None:
            raise typer.BadParameter("nothing to export to: pass --parquet DIR", param_hint="--parquet")
        from attrib.store import open_store

        with handle_errors(), open_store(store, read_only=True) as st:
            files = st.export_parquet(parquet)
        for f in files:
            console.print(f"wrote {f}")
