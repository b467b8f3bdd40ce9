"""CLI topic 'app': ``attrib app [--store PATH] [--port N]`` opens the Streamlit inspector (apps/inspector.py).

The command only builds the ``streamlit run`` command line and runs it; streamlit is not imported here, so
``attrib --help`` stays fast.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import typer

from attrib.errors import NotFoundError
from attrib.paths import REPO_ROOT

#: The inspector's entry script (shipped in the source tree beside the package).
APP_SCRIPT = REPO_ROOT / "apps" / "inspector.py"


def streamlit_command(store: Path | None = None, port: int = 8501, host: str = "127.0.0.1",
                      headless: bool = False, script: Path = APP_SCRIPT) -> list[str]:
    """The ``python -m streamlit run`` command line that serves the inspector on ``host:port`` for ``store``."""
    if importlib.util.find_spec("streamlit") is None:
        raise NotFoundError("streamlit is not installed: pip install 'attrib[app]' (or run `make install`)")
    if not script.exists():
        raise NotFoundError(f"{script}: the inspector app is not here (it ships in the source tree, under apps/)")
    if store is not None and not store.exists():
        raise NotFoundError(f"{store}: no store here (run `attrib ingest PATH --store {store}` first)")
    if store is not None:  # a folder or a file of another kind: say so here, not twice inside the app
        from attrib.store import check_store_file

        check_store_file(store)
    cmd = [sys.executable, "-m", "streamlit", "run", str(script),
           "--server.port", str(port), "--server.address", host,
           "--server.headless", "true" if headless else "false",
           "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    if store is not None:
        cmd += ["--", "--store", str(store.resolve())]
    return cmd


def register(app: typer.Typer) -> None:
    """Add this topic's commands to the app."""

    @app.command("app")
    def app_cmd(
        store: Path = typer.Option(None, "--store", help="DuckDB store to browse (default: $ATTRIB_STORE or "
                                   "./attrib.duckdb). Without one, upload a trace file in the app."),
        port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port to serve on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 to share on your network)."),
        headless: bool = typer.Option(False, "--headless", help="Do not open a browser window."),
        print_only: bool = typer.Option(False, "--print", help="Print the streamlit command instead of running it."),
    ) -> None:
        """Open the inspector: trace list, timeline with the decisive step, agent blame with CIs, the
        information-flow graph, head heatmaps, method comparison, evaluation results, export and upload.

        Example:  attrib ingest traces/ --store runs.duckdb && attrib app --store runs.duckdb
        """
        from attrib.cli._common import console, handle_errors

        with handle_errors():
            cmd = streamlit_command(store, port, host, headless)
        if print_only:
            console.print(" ".join(cmd), highlight=False, soft_wrap=True)
            return
        console.print(f"attrib inspector on http://{host}:{port}  (Ctrl-C to stop)")
        try:
            code = subprocess.call(cmd)
        except KeyboardInterrupt:
            code = 0
        raise typer.Exit(code)
