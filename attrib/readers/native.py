"""attrib's own trace JSON (what ``Trace.to_json`` writes, one trace or a list): lossless round trips."""

from __future__ import annotations

from pathlib import Path

import msgspec

from attrib.errors import InputError
from attrib.readers._common import activation_path, check_encoding, decode_error
from attrib.trace import Trace

_ONE = msgspec.json.Decoder(Trace)
_MANY = msgspec.json.Decoder(list[Trace])


class NativeReader:
    name = "attrib"

    def sniff(self, data: bytes, path: Path) -> float:
        head = data[:4096]
        return 0.98 if b'"source_format"' in head and b'"steps"' in data else 0.0

    def read(self, data: bytes, path: Path) -> list[Trace]:
        data = check_encoding(data, path)
        dec = _MANY if data.lstrip()[:1] == b"[" else _ONE
        try:
            out = dec.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise decode_error(e, data, path) from None
        traces = out if isinstance(out, list) else [out]
        if not traces:
            raise InputError(path, None, "empty: no traces in the list")
        return [_with_activation_paths(t, path.parent) for t in traces]


def _with_activation_paths(trace: Trace, base: Path) -> Trace:
    """Relative activation paths resolved beside the trace file, as the other readers do."""
    if not any(s.activation is not None for s in trace.steps):
        return trace
    steps = tuple(
        s if s.activation is None else msgspec.structs.replace(
            s, activation=msgspec.structs.replace(s.activation, path=activation_path(s.activation.path, base)))
        for s in trace.steps
    )
    return msgspec.structs.replace(trace, steps=steps)
