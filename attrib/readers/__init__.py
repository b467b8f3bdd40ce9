"""Readers: one module per input format, registered here; :func:`read_path` detects and dispatches.

Adding a format is one file with a class that has ``name``, ``sniff(data, path)`` and
``read(data, path)``, plus one line in ``READERS``.
"""

from __future__ import annotations

from pathlib import Path

from attrib.errors import InputError
from attrib.readers._common import check_encoding
from attrib.readers.base import Reader
from attrib.readers.chat import ChatReader
from attrib.readers.native import NativeReader
from attrib.readers.otlp import OTLPReader
from attrib.readers.whowhen import WhoWhenReader
from attrib.trace import Trace

READERS: dict[str, Reader] = {r.name: r for r in (WhoWhenReader(), OTLPReader(), ChatReader(), NativeReader())}

#: Files larger than this are refused with a clear error instead of exhausting memory.
MAX_BYTES = 512 * 1024 * 1024


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


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
        raise InputError(path, None, f"file is {_size(size)}, over the {_size(max_bytes)} limit "
                         "(split it, or raise the limit with --max-bytes)")
    data = path.read_bytes()
    if not data.strip():
        raise InputError(path, None, "empty file")
    data = check_encoding(data, path)
    if format is not None:
        if format not in READERS:
            raise InputError(path, "--format", f"unknown format {format!r} (known: {', '.join(READERS)})")
        reader = READERS[format]
    else:
        reader = detect(data, path)
    traces = reader.read(data, path)
    for t in traces:
        validate(t, path)
    return traces


def validate(trace: Trace, path: str | Path | None = None) -> Trace:
    """Check the invariants every reader must keep: steps numbered 0..n-1, parents point to earlier steps."""
    if not trace.steps:
        raise InputError(path, "steps", f"trace {trace.id}: empty, a trace needs at least one step")
    for i, s in enumerate(trace.steps):
        if s.index != i:
            raise InputError(path, f"steps[{i}].index", f"trace {trace.id}: expected {i}, got {s.index}")
        for p in s.parents:
            if not 0 <= p < i:
                raise InputError(path, f"steps[{i}].parents", f"trace {trace.id}: step {i} references parent "
                                 f"step {p}, which is not an earlier step (missing parent)")
    if trace.label is not None and not 0 <= trace.label.mistake_step < len(trace.steps):
        raise InputError(path, "label.mistake_step", f"trace {trace.id}: {trace.label.mistake_step} is outside "
                         f"the steps (0..{len(trace.steps) - 1})")
    return trace


def load_trace(path: str | Path, format: str | None = None) -> Trace:
    """Read a file that holds exactly one trace."""
    traces = read_path(path, format)
    if len(traces) != 1:
        raise InputError(path, None, f"expected one trace, found {len(traces)}")
    return traces[0]


__all__ = ["READERS", "Reader", "detect", "load_trace", "read_path", "validate"]
