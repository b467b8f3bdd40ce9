"""attrib's own trace JSON (what ``Trace.to_json`` writes, one trace or a list): lossless round trips."""

from __future__ import annotations

from pathlib import Path

import msgspec

from attrib.errors import InputError
from attrib.readers._common import activation_path, check_encoding, decode_error
from attrib.trace import Trace, with_activation_paths

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
        base = path.parent  # relative activation paths resolve beside the trace file, as in the other readers
        return [with_activation_paths(t, lambda p: activation_path(p, base, path)) for t in traces]

