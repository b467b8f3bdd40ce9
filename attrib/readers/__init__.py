"""Readers: one module per input format, registered here; :func:`read_path` detects and dispatches.

Adding a format is one file with a class that has ``name``, ``sniff(data, path)`` and
``read(data, path)``, plus one line in ``READERS``.
"""

from __future__ import annotations

from pathlib import Path

from attrib.errors import InputError
from attrib.readers.base import Reader
from attrib.readers.whowhen import WhoWhenReader
from attrib.trace import Trace

READERS: dict[str, Reader] = {r.name: r for r in (WhoWhenReader(),)}

#: Files larger than this are refused with a clear error instead of exhausting memory.
MAX_BYTES = 512 * 1024 * 1024


def detect(data: bytes, path: Path) -> Reader:
    """The reader whose ``sniff`` is most confident about ``data``."""
    best, score = None, 0.0
    for reader in READERS.values():
        s = reader.sniff(data, path)
        if s > score:
            best, score = reader, s
    if best is None:
        raise InputError(path, None, f"unknown format (expected one of: {', '.join(READERS)}); pass --format")
    return best


def read_path(path: str | Path, format: str | None = None, max_bytes: int = MAX_BYTES) -> list[Trace]:
    """Read every trace in one file. Raises :class:`InputError` naming the file and field."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(path, None, f"file is {size / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit")
    data = path.read_bytes()
    if not data.strip():
        raise InputError(path, None, "empty file")
    if format is not None:
        if format not in READERS:
            raise InputError(path, "--format", f"unknown format {format!r} (known: {', '.join(READERS)})")
        reader = READERS[format]
    else:
        reader = detect(data, path)
    return reader.read(data, path)


def load_trace(path: str | Path, format: str | None = None) -> Trace:
    """Read a file that holds exactly one trace."""
    traces = read_path(path, format)
    if len(traces) != 1:
        raise InputError(path, None, f"expected one trace, found {len(traces)}")
    return traces[0]


__all__ = ["READERS", "Reader", "detect", "load_trace", "read_path"]
