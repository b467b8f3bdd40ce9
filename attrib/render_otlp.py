"""An Attribution as OpenTelemetry spans (OTLP JSON), so the verdict shows up in the trace viewer you already use.

``attribution_otlp(attr, trace)`` returns one OTLP/JSON ``ExportTraceServiceRequest`` holding a single
``attrib.attribution`` span:

* in the **same trace** as the run when the run came from OTLP (``trace.metadata["trace_id"]``), linked
  to the decisive step's span, so Jaeger, Tempo or Phoenix show it beside the spans it blames; otherwise
  in a trace id derived from the attrib trace id (stable across runs);
* attributes ``attrib.method``, ``attrib.agent``, ``attrib.step``, ``attrib.confidence``,
  ``attrib.agent_confidence``, ``attrib.reason``, ``attrib.trace_id``, the conformal step set
  (``attrib.step_set``: an int array, ``attrib.step_set_level``) and, from OTLP input, ``attrib.decisive_span_id``;
* ids collectors accept: an input span id that is not 16 hex digits (flat span lists say ``s3``) is replaced by one
  derived from the trace id and step, as is a trace id that is not 32 hex digits, and the input's own span id is
  kept in ``attrib.decisive_span_original_id`` (``attrib.span_original_id`` on a candidate event);
* one event per agent (``attrib.agent_blame``: Shapley score and CI) and per top-k candidate step
  (``attrib.candidate``: rank, step, agent, probability, span id when known).

``trace_otlp(trace, attr)`` also writes the **run itself**, for a trace read from any other format (Who&When,
chat logs, attrib JSON): one span per step, in step order, with the attributes viewers show
(``gen_ai.agent.name``, ``openinference.span.kind`` AGENT or TOOL, ``output.value``), and the verdict span linked to
the decisive step's span. So a chat log opens in the trace viewer with the blame on it. Each step span also carries
the step verbatim (``attrib.step_json``) and the first one the run's other fields (``attrib.run_json``: task, ground
truth, label, metadata), so attrib's OTLP reader reads the file back as the very same trace (equal, same content hash),
with the same verdict; it never reads ``attrib.attribution`` spans as steps (a file of only those is an error).

Send it with any OTLP/HTTP JSON exporter path (``POST /v1/traces``) or keep the file. Hand-written because
the OpenTelemetry SDK records live spans; it does not serialise an after-the-fact span with a chosen trace id.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import msgspec

from attrib.trace import Attribution, Trace, step_words


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}  # proto3 JSON: 64-bit ints are strings
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list | tuple):
        v = {"arrayValue": {"values": [_attr("", x)["value"] for x in value]}}
    else:
        v = {"stringValue": str(value)}
    return {"key": key, "value": v}


def _hex_id(seed: str, n_bytes: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[: 2 * n_bytes]


def _valid_id(x: str, n_bytes: int) -> bool:
    """An id collectors accept: ``2 * n_bytes`` hex digits, not all zero."""
    return re.fullmatch(f"[0-9a-fA-F]{{{2 * n_bytes}}}", x) is not None and x.strip("0") != ""


def _own_span_id(trace: Trace | None, step: int) -> str | None:
    """The step's span id from OTLP input, as the input wrote it (maybe not hex: flat span lists say ``s3``)."""
    if trace is None or trace.source_format != "otlp" or not 0 <= step < trace.n_steps:
        return None
    sid = trace.steps[step].metadata.get("span_id") if trace.steps[step].metadata else None
    return str(sid) if sid else None


def _span_id(trace: Trace | None, step: int, exported: bool = False) -> str | None:
    """The step's span id: its own from OTLP input when it is valid hex, else one derived from the trace id and step
    (the one :func:`trace_otlp` gives it), for a non-hex own id or ``exported`` (the steps are in the same file)."""
    if trace is None or not 0 <= step < trace.n_steps:
        return None
    own = _own_span_id(trace, step)
    if own is not None and _valid_id(own, 8):
        return own
    return _hex_id(f"attrib:{trace.id}:step:{step}", 8) if exported or own is not None else None


def _trace_id(trace_id: str, trace: Trace | None) -> str:
    otlp_trace = str(trace.metadata.get("trace_id", "")) if trace is not None and trace.source_format == "otlp" else ""
    return otlp_trace if _valid_id(otlp_trace, 16) else _hex_id(f"attrib:{trace_id}", 16)


def _original_id(trace: Trace | None, step: int, sid: str | None) -> str | None:
    """The input's own span id of ``step`` where the span id written (``sid``) had to be derived from it."""
    own = _own_span_id(trace, step)
    return own if own is not None and own != sid else None


def _export(spans: list[dict[str, Any]]) -> dict[str, Any]:
    from attrib import __version__

    return {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", "attrib")]},
        "scopeSpans": [{"scope": {"name": "attrib", "version": __version__}, "spans": spans}],
    }]}


def attribution_otlp(attr: Attribution, trace: Trace | None = None, top_k: int = 5,
                     now_ns: int | None = None) -> dict[str, Any]:
    """The verdict as an OTLP/JSON export request with one ``attrib.attribution`` span (see module docstring)."""
    return _export([_attribution_span(attr, trace, top_k, now_ns)])


def _attribution_span(attr: Attribution, trace: Trace | None, top_k: int, now_ns: int | None,
                      exported: bool = False) -> dict[str, Any]:
    from attrib.render import check_same_run

    check_same_run(attr, trace)
    trace_id = _trace_id(attr.trace_id, trace)
    span_id = _hex_id(f"attrib:{attr.trace_id}:{attr.method}", 8)
    end = now_ns if now_ns is not None else time.time_ns()
    start = end - int((attr.elapsed_s or 0.0) * 1e9)
    decisive = _span_id(trace, attr.step, exported)
    attrs = [
        _attr("attrib.trace_id", attr.trace_id),
        _attr("attrib.method", attr.method),
        _attr("attrib.agent", attr.agent),
        _attr("attrib.step", int(attr.step)),
        _attr("attrib.confidence", float(attr.confidence)),
        _attr("attrib.reason", attr.reason),
    ]
    if attr.agent_confidence is not None:
        attrs.append(_attr("attrib.agent_confidence", float(attr.agent_confidence)))
    if kind := attr.evidence.get("confidence_kind"):  # "calibrated", or a method's score that is no probability
        attrs.append(_attr("attrib.confidence_kind", str(kind)))
    if decisive:
        attrs.append(_attr("attrib.decisive_span_id", decisive))
        if orig := _original_id(trace, attr.step, decisive):
            attrs.append(_attr("attrib.decisive_span_original_id", orig))
    if ss := attr.evidence.get("step_set"):
        attrs += [_attr("attrib.step_set", [int(i) for i in ss["steps"]]),
                  _attr("attrib.step_set_level", float(ss["level"]))]
    events = [
        {"timeUnixNano": str(end), "name": "attrib.agent_blame",
         "attributes": [_attr("attrib.agent", a.agent), _attr("attrib.score", float(a.score))]
         + ([_attr("attrib.ci_low", float(a.ci_low)), _attr("attrib.ci_high", float(a.ci_high))]
            if a.ci_low is not None and a.ci_high is not None else [])}
        for a in attr.agents
    ]
    for rank, s in enumerate(attr.top_steps(top_k), 1):
        ev = [_attr("attrib.rank", rank), _attr("attrib.step", int(s.step)), _attr("attrib.agent", s.agent),
              _attr("attrib.score", float(s.score))]
        if s.probability is not None:
            ev.append(_attr("attrib.probability", float(s.probability)))
        sid = _span_id(trace, s.step, exported)
        if sid:
            ev.append(_attr("attrib.span_id", sid))
            if orig := _original_id(trace, s.step, sid):
                ev.append(_attr("attrib.span_original_id", orig))
        events.append({"timeUnixNano": str(end), "name": "attrib.candidate", "attributes": ev})
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "attrib.attribution",
        "kind": 1,  # SPAN_KIND_INTERNAL
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": attrs,
        "events": events,
    }
    if decisive:
        span["links"] = [{"traceId": trace_id, "spanId": decisive,
                          "attributes": [_attr("attrib.link", "decisive step")]}]
    return span


def trace_otlp(trace: Trace, attr: Attribution | None = None, top_k: int = 5,
               now_ns: int | None = None) -> dict[str, Any]:
    """The run as OTLP/JSON, one span per step (plus the verdict span when ``attr`` is given); see module docstring.

    Steps keep their own times when every step has one, in step order; otherwise they are laid out 1 ms apart,
    ending at ``now_ns``.
    """
    trace_id = _trace_id(trace.id, trace)
    end = now_ns if now_ns is not None else time.time_ns()
    n = trace.n_steps
    starts = [s.start_time for s in trace.steps]
    # the reader orders spans by start time, so a step's own times are kept only when they keep the step order
    own_times = all(t is not None for t in starts) and all(
        a <= b for a, b in zip(starts, starts[1:], strict=False))  # type: ignore[operator]
    spans = []
    ids = [_span_id(trace, i, exported=True) for i in range(n)]  # each step's, and its caller's as its parent
    for i, s in enumerate(trace.steps):
        if own_times:
            t0 = int(s.start_time * 1e9)  # type: ignore[operator]
            t1 = int(s.end_time * 1e9) if s.end_time is not None else t0
        else:
            t0, t1 = end - (n - i) * 1_000_000, end - (n - i - 1) * 1_000_000 - 1
        tool = s.role == "tool"
        # a step that only calls a tool has no content: its output is the call, as `attrib traces show` words it
        attrs = [_attr("gen_ai.agent.name", s.agent), _attr("openinference.span.kind", "TOOL" if tool else "AGENT"),
                 _attr("output.value", s.content or step_words(s)), _attr("attrib.step", i),
                 _attr("attrib.step_json", msgspec.json.encode(s).decode())]
        if tool:
            attrs.append(_attr("tool.name", s.tool_results[0].name if s.tool_results and s.tool_results[0].name
                               else s.agent))
        if i == 0:
            attrs.append(_attr("attrib.run_json", msgspec.json.encode(msgspec.structs.replace(trace, steps=())).decode()))
        span = {"traceId": trace_id, "spanId": ids[i], "name": f"{s.agent} step {i}",
                "kind": 1, "startTimeUnixNano": str(t0), "endTimeUnixNano": str(max(t1, t0)), "attributes": attrs}
        if parents := [p for p in s.parents if 0 <= p < i]:  # a tool step under the step that called it, in a viewer
            span["parentSpanId"] = ids[max(parents)]
        spans.append(span)
    if attr is not None:
        spans.append(_attribution_span(attr, trace, top_k, end, exported=True))
    return _export(spans)
