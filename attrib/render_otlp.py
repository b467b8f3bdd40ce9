"""An Attribution as OpenTelemetry spans (OTLP JSON), so the verdict shows up in the trace viewer you already use.

``attribution_otlp(attr, trace)`` returns one OTLP/JSON ``ExportTraceServiceRequest`` holding a single
``attrib.attribution`` span:

* in the **same trace** as the run when the run came from OTLP (``trace.metadata["trace_id"]``), linked
  to the decisive step's span, so Jaeger, Tempo or Phoenix show it beside the spans it blames; otherwise
  in a trace id derived from the attrib trace id (stable across runs);
* attributes ``attrib.method``, ``attrib.agent``, ``attrib.step``, ``attrib.confidence``,
  ``attrib.agent_confidence``, ``attrib.reason``, ``attrib.trace_id`` and, from OTLP input,
  ``attrib.decisive_span_id``;
* one event per agent (``attrib.agent_blame``: Shapley score and CI) and per top-k candidate step
  (``attrib.candidate``: rank, step, agent, probability, span id when known).

Send it with any OTLP/HTTP JSON exporter path (``POST /v1/traces``) or keep the file. Hand-written because
the OpenTelemetry SDK records live spans; it does not serialise an after-the-fact span with a chosen trace id.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from attrib.trace import Attribution, Trace


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}  # proto3 JSON: 64-bit ints are strings
    elif isinstance(value, float):
        v = {"doubleValue": value}
    else:
        v = {"stringValue": str(value)}
    return {"key": key, "value": v}


def _hex_id(seed: str, n_bytes: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[: 2 * n_bytes]


def _span_id(trace: Trace | None, step: int) -> str | None:
    if trace is None or not 0 <= step < trace.n_steps:
        return None
    sid = trace.steps[step].metadata.get("span_id") if trace.steps[step].metadata else None
    return str(sid) if sid else None


def attribution_otlp(attr: Attribution, trace: Trace | None = None, top_k: int = 5,
                     now_ns: int | None = None) -> dict[str, Any]:
    """The verdict as an OTLP/JSON export request with one ``attrib.attribution`` span (see module docstring)."""
    from attrib import __version__

    otlp_trace = str(trace.metadata.get("trace_id", "")) if trace is not None and trace.source_format == "otlp" else ""
    trace_id = otlp_trace if len(otlp_trace) == 32 else _hex_id(f"attrib:{attr.trace_id}", 16)
    span_id = _hex_id(f"attrib:{attr.trace_id}:{attr.method}", 8)
    end = now_ns if now_ns is not None else time.time_ns()
    start = end - int((attr.elapsed_s or 0.0) * 1e9)
    decisive = _span_id(trace, attr.step)
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
    if decisive:
        attrs.append(_attr("attrib.decisive_span_id", decisive))
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
        sid = _span_id(trace, s.step)
        if sid:
            ev.append(_attr("attrib.span_id", sid))
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
    if decisive and otlp_trace:
        span["links"] = [{"traceId": trace_id, "spanId": decisive,
                          "attributes": [_attr("attrib.link", "decisive step")]}]
    return {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", "attrib")]},
        "scopeSpans": [{"scope": {"name": "attrib", "version": __version__}, "spans": [span]}],
    }]}
