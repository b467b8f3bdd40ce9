"""A store held open by another process (DuckDB's lock), as `attrib ingest` holds it: for the tests of what readers
and writers say meanwhile."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def hold_write_lock(store: Path, read_only: bool = False) -> subprocess.Popen[str]:
    """Another process holding ``store`` open read-write (``read_only``: open only to read, which locks it against
    writers all the same), until it is killed (the caller kills it; :func:`store_held` does)."""
    code = (f"import sys, time\nfrom attrib.store import open_store\ns = open_store(sys.argv[1], read_only={read_only})\n"
            "print('locked', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@contextlib.contextmanager
def store_held(store: Path, read_only: bool = False) -> Iterator[subprocess.Popen[str]]:
    """``store`` held by another process (:func:`hold_write_lock`) while the block runs, that process ended after."""
    proc = hold_write_lock(store, read_only)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
