"""Drive the inspector in headless Chromium: serve it with ``attrib app``, open pages, take screenshots.

Used by the end-to-end test (tests/test_app_browser.py) and to refresh the README screenshot:

    python apps/inspector_browser.py --out docs/inspector.png

which ingests the bundled traces/ into a temporary store, serves it and shoots the timeline of the demo trace.
Chromium is Debian's ``/usr/bin/chromium`` (``$ATTRIB_CHROMIUM`` overrides), driven by the ``playwright`` package.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("ATTRIB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent


def why_no_browser() -> str | None:
    """None when Chromium and Playwright are usable, else the reason (for a test skip)."""
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is not installed (make install tries `apt-get install chromium`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install 'attrib[dev]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"attrib app exited with {proc.returncode}: {out}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the app did not answer on {url} within {timeout:.0f} s")


@contextlib.contextmanager
def serve(store: Path, port: int | None = None, timeout: float = 45.0) -> Iterator[str]:
    """Run ``attrib app --store STORE --headless`` on 127.0.0.1; yields its URL, stops it (its process group) after."""
    port = port or free_port()
    attrib = shutil.which("attrib", path=str(Path(sys.executable).parent)) or "attrib"
    proc = subprocess.Popen([attrib, "app", "--store", str(store), "--port", str(port), "--headless"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, timeout)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI and the streamlit server it started, nothing else
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000, timeout_ms: int = 45_000) -> Iterator[Any]:
    """A Playwright page in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def open_timeline(page: Any, url: str, trace_id: str, method: str | None, expect_text: str) -> None:
    """Open a trace's timeline and wait until ``expect_text`` and the first chart are drawn."""
    q = f"{url}/?page=Timeline&trace={trace_id}" + (f"&method={method}" if method else "")
    page.goto(q)
    page.get_by_text(expect_text, exact=False).first.wait_for(state="visible")
    page.locator(".js-plotly-plot").last.wait_for(state="visible")
    page.wait_for_timeout(800)  # plotly finishes its transition


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "inspector.png"))
    ap.add_argument("--trace", default="whowhen-algorithm-demo_whowhen")
    ap.add_argument("--method", default=None, help="default: the library's default method")
    ap.add_argument("--height", type=int, default=1250)
    args = ap.parse_args(argv)
    reason = why_no_browser()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    from attrib.store import open_store
    from attrib.store.api import ingest

    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "demo.duckdb"
        with open_store(store) as s:
            ingest([REPO / "traces"], store=s)
        with serve(store) as url, browser_page(height=args.height) as page:
            open_timeline(page, url, args.trace, args.method, "Decisive step")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
