"""CLI topic 'app': ``attrib app [--store PATH] [--port N]`` opens the Streamlit inspector (apps/inspector.py).

The command only builds the ``streamlit run`` command line and runs it; streamlit is not imported here, so
``attrib --help`` stays fast. The port is checked before anything is printed (a taken port is a bad ``--port``:
exit 2), and SIGTERM/SIGINT/SIGHUP sent to ``attrib`` are passed on to the server, which is waited for, so
stopping ``attrib app`` stops the inspector.
"""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import typer

from attrib.errors import NotFoundError, UsageError
from attrib.paths import REPO_ROOT

#: The inspector's entry script: apps/ in a checkout, else the copy a wheel carries as attrib/_apps (see setup.py).
_SOURCE_APP = REPO_ROOT / "apps" / "inspector.py"
APP_SCRIPT = _SOURCE_APP if _SOURCE_APP.is_file() else Path(__file__).resolve().parents[1] / "_apps" / "inspector.py"


def streamlit_command(store: Path | None = None, port: int = 8501, host: str = "127.0.0.1",
                      headless: bool = False, script: Path = APP_SCRIPT) -> list[str]:
    """The ``python -m streamlit run`` command line that serves the inspector on ``host:port`` for ``store``."""
    from attrib.cli._common import needs

    needs("streamlit")  # handle_errors names the extra to install (exit 1)
    if not script.exists():
        raise NotFoundError(f"{script}: the inspector app is not here (it ships in the source tree, under apps/)")
    if store is not None and not store.exists():
        raise NotFoundError(f"{store}: no store here (run `attrib ingest PATH --store {store}` first)")
    if store is not None:  # a folder or a file of another kind: say so here, not twice inside the app
        from attrib.store import check_store_file

        check_store_file(store)
    # no --server.headless false: Streamlit opens a browser where there is a display and serves headless where
    # there is none (a server, ssh); and no first-run email prompt, which blocked the server until Enter was pressed
    # and, with no terminal on stdin, ended it (exit 255)
    cmd = [sys.executable, "-m", "streamlit", "run", str(script),
           "--server.port", str(port), "--server.address", host, "--server.showEmailPrompt", "false",
           *(("--server.headless", "true") if headless else ()),
           "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    if store is not None:
        cmd += ["--", "--store", str(store.resolve())]
    return cmd


def check_port(host: str, port: int) -> None:
    """Raise a usage error (``--port``/``--host``, exit 2) unless ``host:port`` can be bound now.

    Binds every address ``host`` resolves to, with SO_REUSEADDR as the server itself sets it, so a port left in
    TIME_WAIT passes and one another program listens on does not.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(None, "host", f"{host!r} is not an address this machine can serve on ({e.strerror})") from None
    bound, failed = 0, []
    for family, kind, proto, _, addr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                if sys.platform != "win32":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:  # test the v6 address alone, as the server binds it
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(addr)
                bound += 1
        except OSError as e:
            failed.append(e)
    if any(e.errno == errno.EADDRINUSE for e in failed):
        raise UsageError(None, "port", f"port {port} on {host} is already in use (another `attrib app` or "
                         "server?): stop it or pick another with --port N")
    if bound:  # e.g. localhost on a machine without IPv6: the server serves on the address that works
        return
    first = failed[0] if failed else OSError("no address")
    if first.errno == errno.EACCES:
        raise UsageError(None, "port", f"port {port} on {host} needs more privileges than this user has: "
                         "pick one above 1023 with --port N")
    if first.errno == errno.EADDRNOTAVAIL:
        raise UsageError(None, "host", f"{host!r} is not an address of this machine")
    raise UsageError(None, "port", f"cannot serve on {host}:{port} ({first.strerror or first})")


#: Signals passed on to the server: what a terminal, a service manager or ``kill`` sends to stop ``attrib app``.
FORWARDED = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, n))


def run_forwarding(cmd: list[str], grace_s: float = 10.0) -> int:
    """Run ``cmd``, pass SIGTERM/SIGINT/SIGHUP on to it and wait for it; its exit code (128 + N for signal N).

    A child still running ``grace_s`` seconds after the first passed-on signal is killed, so ``attrib app`` never
    leaves a server behind once asked to stop.
    """
    proc = subprocess.Popen(cmd)
    asked: list[float] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not asked:
            asked.append(time.monotonic())
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if asked and time.monotonic() - asked[0] > grace_s:
                    proc.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # an error in this loop itself: never leave the server behind
            proc.kill()
            proc.wait()
    return 128 - code if code < 0 else code


def register(app: typer.Typer) -> None:
    """Add this topic's commands to the app."""

    @app.command("app")
    def app_cmd(
        store: Path = typer.Option(None, "--store", help="Store file to browse (default: $ATTRIB_STORE, else "
                                   "./attrib.duckdb); with no store there, upload trace files in the app."),
        port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port to serve on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 to share on your network)."),
        headless: bool = typer.Option(False, "--headless", help="Do not open a browser window (without it, one "
                                      "opens where there is a display)."),
        print_only: bool = typer.Option(False, "--print", help="Print the streamlit command instead of running it."),
    ) -> None:
        """Open the inspector: trace list, timeline with the decisive step, agent blame with CIs, the
        information-flow graph, head heatmaps, method comparison, evaluation results, export and upload.

        Example:  attrib ingest traces/ --store runs.duckdb && attrib app --store runs.duckdb
        """
        from attrib.cli._common import console, handle_errors

        with handle_errors():
            cmd = streamlit_command(store, port, host, headless)
            if not print_only:
                check_port(host, port)
        if print_only:
            console.print(" ".join(cmd), highlight=False, soft_wrap=True)
            return
        console.print(f"attrib inspector on http://{host}:{port}  (Ctrl-C to stop)")
        code = run_forwarding(cmd)
        # stopped by Ctrl-C / SIGTERM (the server then exits 0 or by that signal): a normal stop
        if code in (0, *(128 + int(s) for s in FORWARDED)):
            raise typer.Exit(0)
        from attrib.cli._common import print_error

        print_error(f"the Streamlit server stopped with exit code {code} (its own lines above say why)")
        raise typer.Exit(1)
