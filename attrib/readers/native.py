"""attrib's own trace JSON (what ``Trace.to_json`` writes, one trace or a list): lossless round trips."""

from __future__ import annotations

from pathlib import Path

import msgspec

from attrib.errors import InputError
from attrib.readers._common import activation_path, check_encoding, decode_error
from attrib.trace import ActivationRef, Trace, with_activation_paths

_ONE = msgspec.json.Decoder(Trace)
_MANY = msgspec.json.Decoder(list[Trace])


class _Ref(msgspec.Struct):
    format: str | None = None


class _Step(msgspec.Struct):
    activation: _Ref | None = None


class _Steps(msgspec.Struct):
    steps: list[_Step] = []


_FMT_ONE = msgspec.json.Decoder(_Steps)
_FMT_MANY = msgspec.json.Decoder(list[_Steps])


def _infer_formats(traces: list[Trace], data: bytes, many: bool) -> list[Trace]:
    """``ActivationRef.format`` defaults to safetensors; where the JSON left ``format`` out, take it from the file's
    suffix instead (``step_0.npz`` -> npz), as the chat and OTLP readers do."""
    from attrib.activations import format_from_suffix

    def implied(ref: ActivationRef | None) -> str | None:
        if ref is None or ref.format != "safetensors":
            return None
        f = format_from_suffix(ref.path)
        return f if f not in (None, "safetensors") else None

    if not any(implied(s.activation) for t in traces for s in t.steps):
        return traces  # the common case: no second look at the bytes
    raw = _FMT_MANY.decode(data) if many else [_FMT_ONE.decode(data)]
    out = []
    for t, r in zip(traces, raw, strict=True):
        steps = []
        for s, rs in zip(t.steps, r.steps, strict=True):
            f = implied(s.activation)
            if f is not None and s.activation is not None and rs.activation is not None and rs.activation.format is None:
                s = msgspec.structs.replace(s, activation=msgspec.structs.replace(s.activation, format=f))
            steps.append(s)
        out.append(msgspec.structs.replace(t, steps=tuple(steps)))
    return out


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
        traces = _infer_formats(traces, data, dec is _MANY)
        base = path.parent  # relative activation paths resolve beside the trace file, as in the other readers
        return [with_activation_paths(t, lambda p: activation_path(p, base)) for t in traces]

