"""A store held open read-write by another process (DuckDB's lock), as `attrib ingest` holds it: for the tests of
what readers say meanwhile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hold_write_lock(store: Path) -> subprocess.Popen[str]:
    """Another process holding ``store`` open read-write, until it is killed (the caller kills it)."""
    code = ("import sys, time\nfrom attrib.store import open_store\ns = open_store(sys.argv[1])\n"
            "print('locked', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc
