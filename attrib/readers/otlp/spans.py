"""OTLP files -> span records: the shapes OpenTelemetry traces come in, each read into :class:`SpanRecord` rows.

OTLP JSON (``resourceSpans``, decoded straight into msgspec Structs: no intermediate dicts, which keeps the reader
within a small factor of raw ``orjson.loads``; see bench/ingest), OTLP JSON Lines (the collector's file exporter),
flat span lists (Phoenix, TRAIL's nested ``child_spans`` and Patronus ``logs[].body``), span JSON Lines and the SDK's
``ConsoleSpanExporter`` output (span objects one after another). What the spans mean is :mod:`.steps`' job.

Read here, as every shape states them: ids (OTLP JSON's hex is case-insensitive, so 16/32-digit hex ids are
lowercased; protobuf's own JSON mapping writes them as base64, decoded to hex; an all-zero parent id means none),
the status (ERROR: the error text is its message, else the ``exception`` event's, else ``error.type``; OK; an
``exception`` event on a span not in ERROR, a recovered error, kept as a note), ``flags`` (bits 8-9: the parent is
remote) and GenAI message events (``gen_ai.content.prompt`` / ``.completion`` of semconv <= 1.27,
``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice``), which stand in for
``gen_ai.input.messages`` / ``gen_ai.output.messages`` on a span that has no input / output attributes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from pathlib import Path
from typing import Any

import msgspec
import orjson

from attrib.errors import InputError
from attrib.readers._common import (
    MAX_NANOS,
    as_int,
    as_text,
    check_encoding,
    checked_time,
    decode_error,
    file_stem,
    iter_jsonl,
    json_kind,
    json_of,
    json_text,
    jsonl_unit,
    loads,
    looks_jsonl,
)

# --------------------------------------------------------------------------- OTLP JSON shape

# proto3's JSON mapping reads null as the field's default, so every optional field also takes null (None)


class _ArrayValue(msgspec.Struct):
    values: list[_AnyValue] | None = None


class _KvList(msgspec.Struct):
    values: list[_KeyValue] | None = None


class _AnyValue(msgspec.Struct):
    stringValue: str | None = None
    boolValue: bool | None = None
    intValue: int | str | None = None
    doubleValue: float | str | None = None
    arrayValue: _ArrayValue | None = None
    kvlistValue: _KvList | None = None
    bytesValue: str | None = None


class _KeyValue(msgspec.Struct):
    key: str | None = None
    value: _AnyValue | None = None


class _Status(msgspec.Struct):
    code: int | str | None = None
    message: str | None = None


class _Event(msgspec.Struct):
    name: str | None = None
    attributes: list[_KeyValue] | None = None


class _Link(msgspec.Struct):
    """A span link: read for its types only (a link is no step, nor a parent)."""

    traceId: str | None = None
    spanId: str | None = None
    traceState: str | None = None
    attributes: list[_KeyValue] | None = None
    flags: int | None = None


class _Span(msgspec.Struct):
    traceId: str | None = None
    spanId: str | None = None
    parentSpanId: str | None = None
    name: str | None = None
    startTimeUnixNano: int | str | None = None
    endTimeUnixNano: int | str | None = None
    attributes: list[_KeyValue] | None = None
    status: _Status | None = None
    events: list[_Event] | None = None
    links: list[_Link] | None = None
    kind: int | str | None = None
    flags: int | None = None


class _ScopeInfo(msgspec.Struct):
    name: str | None = None


class _Scope(msgspec.Struct):
    scope: _ScopeInfo | None = None
    instrumentationLibrary: _ScopeInfo | None = None  # pre-1.0 OTLP name
    spans: list[_Span] | None = None


class _Resource(msgspec.Struct):
    attributes: list[_KeyValue] | None = None


class _ResourceSpans(msgspec.Struct):
    resource: _Resource | None = None
    scopeSpans: list[_Scope] | None = None
    instrumentationLibrarySpans: list[_Scope] | None = None  # pre-1.0 OTLP name


class _Export(msgspec.Struct):
    resourceSpans: list[_ResourceSpans] | None


_DECODER = msgspec.json.Decoder(_Export)


class _BadValue(Exception):
    """An AnyValue that is not what its field says (``intValue: "abc"``); ``field``: where, below the value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def under(self, prefix: str) -> _BadValue:
        return _BadValue(f"{prefix}.{self.field}", self.message)


def _value(v: _AnyValue | None) -> Any:
    """An OTLP AnyValue as a Python value (ints from their proto3 string form, doubles also from ``"NaN"``,
    ``"Infinity"``). A string that is no such number is a :class:`_BadValue`, never dropped."""
    if v is None:
        return None
    s = v.stringValue
    if s is not None:
        return s
    if v.intValue is not None:
        i = v.intValue
        if isinstance(i, int):
            return i
        n = as_int(i)
        if n is None:
            raise _BadValue("intValue", f"expected an integer (a number, or its digits as a string), got {i!r:.40}")
        return n
    if v.boolValue is not None:
        return v.boolValue
    if v.doubleValue is not None:
        d = v.doubleValue
        return d if isinstance(d, float) else _float(d)
    if v.arrayValue is not None:
        return [_item(x, j) for j, x in enumerate(v.arrayValue.values or ())]
    if v.kvlistValue is not None:
        return _attrs(v.kvlistValue.values, "kvlistValue.values")
    return v.bytesValue


def _item(x: _AnyValue, j: int) -> Any:
    try:
        return _value(x)
    except _BadValue as e:
        raise e.under(f"arrayValue.values[{j}]") from None


def _float(s: str) -> float:
    try:
        return float(s)  # proto3 JSON also writes "NaN", "Infinity", "-Infinity"
    except ValueError:
        raise _BadValue("doubleValue", f"expected a number, got {s!r:.40}") from None


def _attrs(kvs: list[_KeyValue] | None, field: str = "attributes") -> dict[str, Any]:
    """Key/value pairs as a dict. A value that is not what its field says: a :class:`_BadValue` at
    ``field[i].value...``."""
    out: dict[str, Any] = {}
    try:
        for kv in kvs or ():
            v = kv.value
            s = v.stringValue if v is not None else None
            out[kv.key or ""] = s if s is not None else _value(v)
    except _BadValue as e:
        i = next(i for i, x in enumerate(kvs or ()) if x is kv)
        raise e.under(f"{field}[{i}].value") from None
    return out


class SpanRecord:
    """One span, format-independent: what the step builder needs (``id_key`` / ``parent_key``: the keys the file
    names them with, for errors). ``error``: the ERROR status's text, None unless the status is ERROR; ``ok``: the
    status is OK; ``note``: a recovered error (an ``exception`` event on a span not in ERROR); ``remote``: the
    span's parent is in another process (OTLP ``flags`` bits 8-9); ``scope``: the instrumentation scope's name;
    ``source``: the file the span was read from (errors name it when one trace is read from several files);
    ``trace_key``: the key the span's trace id was read from (empty when the span names none and the file's is
    taken)."""

    __slots__ = ("trace_id", "span_id", "parent_id", "name", "start", "end", "attrs", "error", "service", "where",
                 "id_key", "parent_key", "ok", "note", "remote", "scope", "source", "trace_key")

    def __init__(self, trace_id: str, span_id: str, parent_id: str, name: str, start: int, end: int,
                 attrs: dict[str, Any], error: str | None, service: str, where: str,
                 id_key: str = "spanId", parent_key: str = "parentSpanId", ok: bool = False,
                 note: str | None = None, remote: bool = False, scope: str = "", source: Path | None = None,
                 trace_key: str = "") -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.start = start
        self.end = end
        self.attrs = attrs
        self.error = error
        self.service = service
        self.where = where
        self.id_key = id_key
        self.parent_key = parent_key
        self.ok = ok
        self.note = note
        self.remote = remote
        self.scope = scope
        self.source = source
        self.trace_key = trace_key


_HEX_ID = re.compile(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}")


def norm_id(s: str) -> str:
    """A span or trace id as one spelling: OTLP JSON's 8- and 16-byte ids are case-insensitive hex, so a
    16/32-digit hex id is lowercased, and the SDK's ``ConsoleSpanExporter`` prefix dropped (``0x5b8aa5a2…``: the
    trace viewer, and an exported verdict's link, know the id without it); other ids, which flat span lists make up,
    are kept as they are."""
    if s[:2] in ("0x", "0X") and (len(s) == 18 or len(s) == 34) and _HEX_ID.fullmatch(s[2:]):
        return s[2:].lower()
    if len(s) == 16 or len(s) == 32:
        low = s.lower()
        if low != s and _HEX_ID.fullmatch(s):
            return low
    return s


def norm_parent(s: str) -> str:
    """A parent id as :func:`norm_id` spells it; an all-zero one (some exporters' "no parent") as none."""
    s = norm_id(s)
    return "" if s[:1] == "0" and (len(s) == 16 or len(s) == 32) and not s.strip("0") else s


def _otlp_id(s: str | None) -> str:
    """An OTLP id: hex, or base64 as protobuf's own JSON mapping (``MessageToJson``) writes the id bytes
    (24 characters ending ``==`` for a 16-byte trace id, 12 ending ``=`` for an 8-byte span id), as lowercase hex."""
    if not s:
        return ""
    n = len(s)
    if n == 16 or n == 32:  # hex, as the OTLP/JSON spec writes them (norm_id, inlined: three ids a span)
        low = s.lower()
        return s if low == s or not _HEX_ID.fullmatch(s) else low
    if (n == 24 and s.endswith("==")) or (n == 12 and s.endswith("=") and s[-2] != "="):
        try:
            return base64.b64decode(s, validate=True).hex()
        except (binascii.Error, ValueError):
            return s
    return s


#: ``flags`` bits 8 and 9 (``SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`` | ``..._IS_REMOTE_MASK``): the parent is remote
_REMOTE = 0x300

#: ``status.code``: the enum's number, or its name (proto3 JSON takes either; the short names too, any case) -> number
_CODES: dict[int | str, int] = {0: 0, 1: 1, 2: 2, "STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
                                "UNSET": 0, "OK": 1, "ERROR": 2}


def _status_code(code: int | str | None, path: Path, where: str) -> int:
    """A span's status code as 0 (unset), 1 (OK) or 2 (ERROR); any other is an :class:`InputError` at ``where``:
    a misspelt ERROR read as unset would turn a failed run into one of unknown outcome, silently."""
    if code is None:
        return 0
    c = _CODES.get(code if not isinstance(code, str) else code.upper())
    if c is None or isinstance(code, bool):
        raise InputError(path, where, f"{code!r:.40} is not a status code: expected 0 (STATUS_CODE_UNSET), "
                         "1 (STATUS_CODE_OK) or 2 (STATUS_CODE_ERROR)")
    return c


def _nanos(x: int | str | None, path: Path, where: str) -> int:
    """A ``*TimeUnixNano`` field: an integer (or its digits, as proto3 JSON writes 64-bit ones) in 0..year 3000;
    0 (or absent) means unset."""
    if x is None:
        return 0
    v = x if isinstance(x, int) else as_int(x) if x else 0
    if v is None:
        raise InputError(path, where, f"expected an integer of nanoseconds, got {x!r:.40}")
    if not 0 <= v <= MAX_NANOS:
        what = "negative" if v < 0 else "after the year 3000 (nanoseconds since 1970 expected)"
        raise InputError(path, where, f"{str(v)[:40]} is not a time: {what}")
    return v


def _records_otlp(export: _Export, path: Path, prefix: str = "") -> list[SpanRecord]:
    recs: list[SpanRecord] = []
    for r, rs in enumerate(export.resourceSpans or ()):
        service = ""
        if rs.resource is not None:
            try:
                service = str(_attrs(rs.resource.attributes).get("service.name") or "")
            except _BadValue as e:
                raise InputError(path, f"{prefix}resourceSpans[{r}].resource.{e.field}", e.message) from None
        for s, scope in enumerate(rs.scopeSpans or rs.instrumentationLibrarySpans or ()):
            info = scope.scope or scope.instrumentationLibrary
            scope_name = (info.name or "") if info is not None else ""
            for i, sp in enumerate(scope.spans or ()):
                where = f"{prefix}resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                trace_id = _otlp_id(sp.traceId)
                if not trace_id:
                    raise InputError(path, f"{where}.traceId", "missing: every span names its trace's id")
                st = sp.status
                code = _status_code(st.code, path, f"{where}.status.code") if st is not None else 0
                try:
                    attrs = _attrs(sp.attributes)
                    events = [(e.name or "", _attrs(e.attributes, f"events[{j}].attributes"))
                              for j, e in enumerate(sp.events)] if sp.events else ()
                    for j, link in enumerate(sp.links or ()):
                        _attrs(link.attributes, f"links[{j}].attributes")
                except _BadValue as e:
                    raise InputError(path, f"{where}.{e.field}", e.message) from None
                failed = code == 2
                error = None
                if failed:
                    error = (st.message if st is not None else None) or _status_text(events, attrs)
                note = None if failed or not events else _exception(a for n, a in events if n == "exception")
                if events:
                    _event_messages(events, attrs)
                parent = _otlp_id(sp.parentSpanId)
                if parent[:1] == "0" and not parent.strip("0"):  # all zeros: no parent
                    parent = ""
                # an end before the start is kept as written: only the start orders steps, and refusing it would lose
                # the whole run over a field attribution never reads
                recs.append(SpanRecord(trace_id, _otlp_id(sp.spanId), parent,
                                       sp.name or "",
                                       _nanos(sp.startTimeUnixNano, path, where + ".startTimeUnixNano"),
                                       _nanos(sp.endTimeUnixNano, path, where + ".endTimeUnixNano"),
                                       attrs, error, service, where, "spanId", "parentSpanId", code == 1, note,
                                       (sp.flags or 0) & _REMOTE == _REMOTE, scope_name, path, "traceId"))
    return recs


def _status_text(events: Any, attrs: dict[str, Any], log: dict[str, Any] | None = None) -> str:
    """What an ERROR status with no description says: its ``exception`` event (else what a function log says was
    raised), else the span's ``error.type`` (the GenAI conventions' error class), else just "error"."""
    return (_exception(a for n, a in events if n == "exception") or _exception([log or {}])
            or as_text(attrs.get("error.type") or "") or "error")


def _exception(events: Any) -> str | None:
    """What an ``exception`` span event says (``exception.type: exception.message``): where an error status
    carries no description (the OpenTelemetry SDK's ``record_exception`` + ``set_status(ERROR)``), the only text."""
    for a in events:
        msg, typ = a.get("exception.message"), a.get("exception.type")
        if msg or typ:
            typ = str(typ).rsplit(".", 1)[-1] if typ else ""
            return f"{typ}: {msg}" if typ and msg else str(msg or typ)
    return None


# --------------------------------------------------------------------------- GenAI message events

#: Span attributes that are a span's input / output: where one is set, message events add nothing
_IN_ATTRS = ("input.value", "gen_ai.input.messages", "gen_ai.prompt", "gen_ai.prompt.0.content", "gen_ai.prompt.0.role",
             "llm.input_messages.0.message.role", "traceloop.entity.input")
_OUT_ATTRS = ("output.value", "gen_ai.output.messages", "gen_ai.completion", "gen_ai.completion.0.content",
              "gen_ai.completion.0.role", "llm.output_messages.0.message.role",
              "llm.output_messages.0.message.content", "traceloop.entity.output")

#: Message events of the GenAI conventions (1.28-1.36, before messages moved to attributes) -> the role they carry
_MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                   "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _event_messages(events: Any, attrs: dict[str, Any]) -> None:
    """A span's GenAI message events as ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (lists of
    ``{role, parts}``) in ``attrs``, each only where the span sets no input / output attribute of its own.
    ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` (semconv <= 1.27) carry ``gen_ai.prompt`` /
    ``gen_ai.completion`` (JSON messages, or plain text); ``gen_ai.{system,user,assistant,tool}.message`` carry
    ``content`` (the event body's fields as attributes); ``gen_ai.choice`` carries ``message`` ({content,
    tool_calls}, a map or JSON text) or ``message.content``. In place."""
    ins: list[dict[str, Any]] = []
    outs: list[dict[str, Any]] = []
    for name, a in events:
        if name == "gen_ai.content.prompt":
            ins += _messages(a.get("gen_ai.prompt"), "user")
        elif name == "gen_ai.content.completion":
            outs += _messages(a.get("gen_ai.completion"), "assistant")
        elif name in _MESSAGE_EVENTS:
            m = _message({**(json_of(a.get("body"), dict) or {}), **a}, _MESSAGE_EVENTS[name])
            if m is not None:
                ins.append(m)
        elif name == "gen_ai.choice":
            msg = json_of(a.get("message"), dict) or {k[8:]: v for k, v in a.items() if k.startswith("message.")} or a
            m = _message(msg, "assistant")
            if m is not None:
                outs.append(m)
    if ins and not any(k in attrs for k in _IN_ATTRS):
        attrs["gen_ai.input.messages"] = ins
    if outs and not any(k in attrs for k in _OUT_ATTRS):
        attrs["gen_ai.output.messages"] = outs


def _messages(v: Any, role: str) -> list[dict[str, Any]]:
    """``gen_ai.prompt`` / ``gen_ai.completion`` of a legacy content event: a JSON list of messages, else text."""
    if isinstance(v, str) and v[:1] in ("[", "{"):
        with contextlib.suppress(orjson.JSONDecodeError):
            v = orjson.loads(v)
    items = v if isinstance(v, list) else [v]
    out = [_message(x if isinstance(x, dict) else {"content": x}, role) for x in items if x is not None]
    return [m for m in out if m is not None]


def _message(m: dict[str, Any], role: str) -> dict[str, Any] | None:
    """One message (``{role, content, tool_calls}``, OpenAI style) as a GenAI ``{role, parts}`` message."""
    parts: list[dict[str, Any]] = []
    c = m.get("content")
    if isinstance(c, list):  # content parts
        c = "\n".join(str(p.get("text") or p.get("content") or "") if isinstance(p, dict) else str(p) for p in c)
    if c is not None and c != "":
        parts.append({"type": "text", "content": c if isinstance(c, str) else json_text(c)})
    calls = m.get("tool_calls")
    if isinstance(calls, str) and calls[:1] == "[":
        try:
            calls = orjson.loads(calls)
        except orjson.JSONDecodeError:
            calls = None
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        fn = call["function"] if isinstance(call.get("function"), dict) else call
        args = fn.get("arguments")
        parts.append({"type": "tool_call", "id": call.get("id"), "name": fn.get("name"),
                      "arguments": args if isinstance(args, str) or args is None else json_text(args)})
    if not parts:
        return None
    r = m.get("role")
    return {"role": r if isinstance(r, str) and r else role, "parts": parts}


# --------------------------------------------------------------------------- flat span lists


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}.{i}", out)
    else:
        out[prefix] = obj


def _flat_time(span: dict[str, Any], path: Path, where: str, *keys: str) -> int:
    """The first of ``keys`` the span has that reads as a time (:func:`checked_time`), in nanoseconds; 0 for none.
    One before 1970 or after the year 3000 is an :class:`InputError` at ``where.key``."""
    for k in keys:
        t = checked_time(span.get(k), path, f"{where}.{k}")
        if t is not None:
            return int(t * 1e9)
    return 0


def _first(sp: dict[str, Any], ctx: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first of ``keys`` a span sets (not null, not ""), and its value; ``context.K`` looks in ``ctx``."""
    for k in keys:
        v = ctx.get(k[8:]) if k.startswith("context.") else sp.get(k)
        if v is not None and v != "":
            return k, v
    return keys[0], None


def _flat_service(sp: dict[str, Any]) -> str:
    """``service_name`` (TRAIL, Phoenix), else ``service.name`` of ``resource_attributes`` or of the OpenTelemetry
    SDK's ``resource.attributes`` (``span.to_json()``)."""
    if sp.get("service_name"):
        return str(sp["service_name"])
    for res in (sp.get("resource_attributes"), (sp.get("resource") or {}).get("attributes")
                if isinstance(sp.get("resource"), dict) else None):
        if isinstance(res, dict) and res.get("service.name"):
            return str(res["service.name"])
    return ""


def _records_flat(spans: list[Any], path: Path, default_trace: str) -> list[SpanRecord]:
    """Phoenix / TRAIL style: span dicts with snake_case ids and an attributes dict, maybe nested children."""
    recs: list[SpanRecord] = []
    stack: list[tuple[Any, str, str]] = [(sp, f"spans[{i}]", "") for i, sp in reversed(list(enumerate(spans)))]
    while stack:
        sp, where, inherited_parent = stack.pop()
        if not isinstance(sp, dict):
            raise InputError(path, where, f"expected a span object, got {type(sp).__name__}")
        ctx = sp.get("context")
        ctx = ctx if isinstance(ctx, dict) else {}
        id_key, span_id = _first(sp, ctx, ("span_id", "spanId", "context.span_id", "id"))
        if span_id is None:
            raise InputError(path, f"{where}.span_id", "missing: every span needs an id")
        if isinstance(span_id, bool) or not isinstance(span_id, str | int) or span_id == 0:
            raise InputError(path, f"{where}.{id_key}",
                             f"{span_id!r} is not a valid span id (expected a string or a non-zero integer)")
        trace_key, trace_id = next(((k, v) for k, v in (("trace_id", sp.get("trace_id")), ("traceId", sp.get("traceId")),
                                                        ("context.trace_id", ctx.get("trace_id"))) if v),
                                   ("", default_trace))
        parent_key, parent = _first(sp, ctx, ("parent_span_id", "parent_id", "parentSpanId"))
        if isinstance(parent, str):
            parent = norm_parent(parent)
        if not parent:  # absent, null, "", 0 or all zeros: a root, unless nested under child_spans
            parent_key, parent = "child_spans", inherited_parent
        raw_attrs = sp.get("span_attributes", sp.get("attributes")) or {}
        attrs: dict[str, Any] = {}
        if isinstance(raw_attrs, dict):
            _flatten(raw_attrs, "", attrs)
        elif isinstance(raw_attrs, list):  # OTLP-style key/value list
            for kv in raw_attrs:
                if isinstance(kv, dict) and isinstance(kv.get("key"), str):
                    val = kv.get("value")
                    if isinstance(val, dict) and len(val) == 1:
                        val = next(iter(val.values()))
                    attrs[kv["key"]] = val
        call = _function_log(sp.get("logs"))
        if call is not None:
            for k, v in call.items():
                attrs.setdefault(k, v)
        kind = sp.get("span_kind")
        if isinstance(kind, str) and "openinference.span.kind" not in attrs and kind.upper() in _OI_KINDS:
            attrs["openinference.span.kind"] = kind.upper()
        st = sp.get("status")
        st = st if isinstance(st, dict) else {}
        status = sp.get("status_code", st.get("status_code", st.get("code")))
        raw_events = sp.get("events")
        events = [(str(e.get("name") or ""), e["attributes"]) for e in raw_events
                  if isinstance(e, dict) and isinstance(e.get("attributes"), dict)] if isinstance(raw_events, list) else []
        error = None
        if (isinstance(status, str) and "ERROR" in status.upper()) or status == 2:
            # TRAIL/Phoenix: status_message; the SDK's span.to_json(): status.description; else the exception event,
            # else what the Patronus function log says was raised, else error.type
            error = (sp.get("status_message") or st.get("description") or st.get("message")
                     or _status_text(events, attrs, call))
        note = None if error else _exception(a for n, a in events if n == "exception")
        if events:
            _event_messages(events, attrs)
        ok = (isinstance(status, str) and status.upper() in ("OK", "STATUS_CODE_OK")) or status == 1
        start = _flat_time(sp, path, where, "start_time", "startTime", "timestamp")
        end = _flat_time(sp, path, where, "end_time", "endTime")
        span_id = norm_id(str(span_id))
        recs.append(SpanRecord(norm_id(str(trace_id)), span_id, str(parent or ""),
                               str(sp.get("span_name") or sp.get("name") or ""), start, end or start, attrs,
                               str(error) if error else None, _flat_service(sp), where, id_key, parent_key, ok=ok,
                               note=note, source=path, trace_key=trace_key))
        children = sp.get("child_spans")
        if isinstance(children, list):
            for j in range(len(children) - 1, -1, -1):
                stack.append((children[j], f"{where}.child_spans[{j}]", span_id))
    return recs


def _function_log(logs: Any) -> dict[str, Any] | None:
    """What Patronus's ``@traced()`` logged for a span (TRAIL's ``logs``): one record per call whose ``body`` is
    ``{"function.name", "function.arguments": {param: value}, "function.output", "exception.type",
    "exception.message"}``. Such a span (TRAIL's harness functions, e.g. ``answer_single_question``) has no
    attributes of its own, so its log is the only record of what it was called with and returned: as
    ``function.arguments`` / ``function.output`` (JSON text; a string output as-is) plus the ``exception.*``
    keys. None when no log is such a record (other log bodies are free text a step has no field for)."""
    if not isinstance(logs, list):
        return None
    for log in logs:
        body = log.get("body") if isinstance(log, dict) else None
        if not isinstance(body, dict) or not any(k in body for k in _FUNCTION_KEYS):
            continue
        out: dict[str, Any] = {}
        for k in _FUNCTION_KEYS:
            v = body.get(k)
            if v is None or v == {}:  # no arguments, or a function that returned None: nothing to keep
                continue
            out[k] = v if isinstance(v, str) else json_text(v)
        return out
    return None


_FUNCTION_KEYS = ("function.arguments", "function.output", "exception.type", "exception.message")

_OI_KINDS = {"AGENT", "TOOL", "LLM", "CHAIN", "RETRIEVER", "EMBEDDING", "RERANKER", "GUARDRAIL", "EVALUATOR"}


def _line_error(e: Exception, line: bytes, n: int, path: Path, unit: str = "file") -> InputError:
    """An error in line ``n`` of OTLP JSON Lines, with one position: ``line N col C`` or ``line N: <field>``."""
    try:
        v = orjson.loads(line)
    except orjson.JSONDecodeError:
        v = {}
    if not isinstance(v, dict):
        return InputError(path, f"line {n}", f"expected a JSON object, got {json_kind(v)}")
    err = decode_error(e, line, path, line_offset=n - 1, unit=unit)
    if err.field and err.field.startswith("line "):
        return err
    return InputError(path, f"line {n}" + (f": {err.field}" if err.field else ""), err.message)


PARENT_KEYS = (b'"parent_id"', b'"parent_span_id"', b'"parentSpanId"')


def _is_span(obj: dict[str, Any]) -> bool:
    ctx = obj.get("context")
    return any(k in obj for k in ("span_id", "spanId")) or (isinstance(ctx, dict) and "span_id" in ctx)


def _concatenated(data: bytes, path: Path) -> list[Any] | None:
    """JSON objects written one after another with no list around them (the ConsoleSpanExporter writes each span's
    indented ``to_json()`` in turn); None unless the file starts with two such span objects. A later object that
    is broken is an error at its line and column."""
    import json

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    dec, pos = json.JSONDecoder(), 0
    out: list[Any] = []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos == len(text):
            break
        try:
            obj, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError:
            if not out:
                return None
            start = len(text[:pos].encode())  # the broken object, decoded again for orjson's line:col and wording
            lines = data.count(b"\n", 0, start)
            try:
                orjson.loads(data[start:])
            except orjson.JSONDecodeError as e:
                raise decode_error(e, data[start:], path, line_offset=lines) from None
            raise InputError(path, f"line {lines + 1}", "malformed JSON") from None  # orjson is the stricter
        if not (isinstance(obj, dict) and _is_span(obj)):
            return None
        out.append(obj)
        pos = end
    return out if len(out) > 1 else None


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _jsonl_records(data: bytes, path: Path) -> list[SpanRecord]:
    """OTLP JSON Lines (the collector's file exporter): one export request per line."""
    recs: list[SpanRecord] = []
    lines = data.split(b"\n")
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            export = _DECODER.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise _line_error(e, line, n, path, jsonl_unit(lines, n)) from None
        recs.extend(_records_otlp(export, path, prefix=f"line {n}: "))
    return recs


def span_records(data: bytes, path: Path) -> list[SpanRecord]:
    """Every span in an OTLP or span-list file, whatever its shape (see the module docstring), as records."""
    data = check_encoding(data, path)
    head = data[:8192]
    if b'"resourceSpans"' in head or b'"resourceSpans"' in data[:1 << 20]:
        return _otlp_records(data, path)
    if looks_jsonl(data):  # span JSON Lines: errors name the line
        obj: Any = [v for _, v in iter_jsonl(data, path)]
    else:
        try:
            obj = loads(data, path)
        except InputError:
            obj = _concatenated(data, path)
            if obj is None:
                raise
    if isinstance(obj, dict) and "spans" not in obj and _is_span(obj):  # one span.to_json() object
        obj = [obj]
    spans = obj.get("spans") if isinstance(obj, dict) else obj
    if not isinstance(spans, list):
        raise InputError(path, "spans", "expected OTLP 'resourceSpans' or a list of spans")
    default = str(obj.get("trace_id") or file_stem(path)) if isinstance(obj, dict) else file_stem(path)
    return _records_flat(spans, path, default)


def _otlp_records(data: bytes, path: Path) -> list[SpanRecord]:
    if looks_jsonl(data):
        return _jsonl_records(data, path)
    try:
        export = _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        first = data.lstrip().split(b"\n", 1)[0]
        if first.rstrip().endswith(b"}") and _is_object(first):  # JSON Lines whose later line is no object
            return _jsonl_records(data, path)
        raise decode_error(e, data, path) from None
    return _records_otlp(export, path)
