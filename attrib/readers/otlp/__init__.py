"""OpenTelemetry traces: OTLP JSON exports and flat span lists (Phoenix, TRAIL, the SDK console exporter) -> traces.

Understands the OpenTelemetry GenAI conventions (``gen_ai.operation.name`` = ``invoke_agent`` /
``execute_tool`` / ``chat``, ``gen_ai.agent.name``, ``gen_ai.tool.name``, ``gen_ai.usage.*`` incl. the older
``prompt_tokens`` / ``completion_tokens``, ``gen_ai.input/output.messages``, and the message events of semconv
<= 1.36: ``gen_ai.content.prompt`` / ``.completion``, ``gen_ai.{system,user,assistant,tool}.message``,
``gen_ai.choice``, read as a span's input / output messages where it has no such attributes), OpenInference
attributes (``openinference.span.kind``, ``input.value``, ``output.value``, ``llm.input_messages.N.message.*``,
``llm.output_messages.N...``, ``tool.name``, ``llm.token_count.*``) and OpenLLMetry's (``traceloop.span.kind`` =
workflow / task / agent / tool, ``traceloop.entity.name``, ``traceloop.entity.input`` / ``.output``: an agent span
names its agent by entity name, a tool span is a tool step, a root workflow span is the run's own root).

Mapping: every span becomes one step (never attrib's own ``attrib.attribution`` verdict spans; a file or trace of
only those is an error), ordered by start time (a parent always before its children), ties and spans without times
in tree order (depth-first, in file order);
an agent span that has children contributes the task it was handed (``input.value``, its GenAI input messages or
OpenLLMetry entity input; its output, ``output.value`` or output messages, goes to metadata, since it is produced by
the children that follow), never its status message: a status is set at a span's end and tells how the work below
it went (the root's marks the run failed);
``Step.parents`` holds the index of the parent span's step; the step's agent is the span's own
agent name (``gen_ai.agent.name`` / ``agent.name``; else its LangGraph node, from the ``metadata`` OpenInference's
LangChain instrumentation records; else, for an agent span, a smolagents managed agent's name or the span name, less
``invoke_agent `` or smolagents' ``.run``),
else the nearest enclosing span's, else the service name (not ``unknown_service`` nor a container id), else the
root span's name. LLM spans carry their tool-call requests as ``ToolCall`` (text from ``message.content`` or the
``message.contents.N.message_content.text`` parts); tool spans carry the call (arguments: ``input.value``;
``tool.parameters`` is the schema) and its ``ToolResult``, linked to the agent's last LLM call of that tool when
the span names no call id. An error status with no description takes the ``exception`` event's text, else the
span's ``error.type``; an ``exception`` event on a span not in ERROR (an error it recovered from) is kept as the
step's ``metadata.exception``, and fails nothing.
Tokens are a step's own: a span whose descendants report usage (smolagents' ``X.run`` agent span, an
``invoke_agent`` span with the run's totals) keeps its counts as ``metadata`` ``tokens_in_total`` /
``tokens_out_total``, so summing the steps' tokens counts every LLM call once.
One :class:`Trace` per ``traceId`` in the file (ids as lowercase hex: OTLP/JSON's hex is case-insensitive, and
protobuf's own JSON mapping writes base64, decoded here; an all-zero parent id is none). A span whose parent is not
in the file (a remote parent: ``flags`` bits 8-9; a lost span) roots a subtree of its own, and the trace says it is
partial: ``metadata.partial``, ``missing_parents`` (the absent ids) and ``remote_parents`` (those marked remote); a
span that is its own parent, or a cycle, is an error. :func:`attrib.readers.read_sources` joins one trace's spans
that several files hold (rotated collector files) before building it.

Besides OTLP JSON: flat span lists (Phoenix, TRAIL's ``{"trace_id", "spans": [... child_spans ...]}``, where a
harness span Patronus's ``@traced()`` wrote has only its ``logs[].body`` ``function.arguments`` / ``function.output``
/ ``exception.*``: its input, content and error when the span's attributes have none), span
JSON Lines, and the OpenTelemetry SDK's ``span.to_json()`` objects as ``ConsoleSpanExporter`` prints them (one
after another, no list).

Values are checked where OTLP fixes their type: an ``intValue`` / ``doubleValue`` string that is no number, a
``status.code`` that is none of 0-2 (or ``STATUS_CODE_UNSET`` / ``_OK`` / ``_ERROR``, any case), a time before 1970
or after the year 3000, a span with no ``traceId`` or whose parent the file holds under another trace id, and the
types of ``links`` are errors naming the field (``resourceSpans[0].scopeSpans[0].spans[2].traceId``). A span whose
end is before its start is kept as written: only starts order the steps.

Files written by ``attrib analyze --otlp`` for a run from another format carry that run verbatim
(``attrib.run_json``, ``attrib.step_json``) and read back as exactly that trace. Null fields count as absent
(proto3 JSON).

Re-runs of one task may say so with ``attrib.question_id`` on the root span (``metadata.question_id``).
Labels may ride along on the root span as ``attrib.label.mistake_agent`` and
``attrib.label.mistake_span_id`` (or ``attrib.label.mistake_step``) plus ``attrib.label.reason``;
``attrib.outcome`` overrides the outcome (a word of :data:`attrib.trace.OUTCOME_WORDS`, any case, or a boolean; any
other value is an error), else a root span with ERROR status means 'failed' and one with OK status 'succeeded' (the
application's own verdict, per the trace API; not an OpenInference instrumentation's, which sets OK on every span
that did not raise, nor a child's; a span whose parent is absent speaks only as the trace's one top span); a
labelled run is 'failed' unless it says otherwise.

Two modules: :mod:`.spans` reads each file shape into span records, :mod:`.steps` turns records into traces by
the conventions above. Speed: the OTLP shape is decoded straight into msgspec Structs (no intermediate dicts),
which keeps the reader within a small factor of raw ``orjson.loads`` on the same bytes (see bench/ingest).
"""

from __future__ import annotations

from pathlib import Path

from attrib.readers._common import looks_jsonl
from attrib.readers.otlp.spans import PARENT_KEYS, SpanRecord, span_records
from attrib.readers.otlp.steps import build_trace, run_groups, traces_from_records
from attrib.trace import Trace


class OTLPReader:
    """OTLP JSON (``resourceSpans``), OTLP JSON Lines (collector file exporter), flat span lists."""

    name = "otlp"

    def sniff(self, data: bytes, path: Path) -> float:
        head = data[:8192]
        if b'"resourceSpans"' in head:
            # OTLP JSON Lines has an export request on every line: JSON Lines whose first line is none (a chat log
            # with one such line further down) is not OTLP
            nl = head.find(b"\n")
            if nl < 0 or b'"resourceSpans"' in head[:nl] or not looks_jsonl(data):
                return 0.99
        has_id = b'"span_id"' in head or b'"spanId"' in head
        if has_id and (b'"spans"' in head or head.lstrip()[:1] == b"["):
            return 0.9
        # span objects one after another: the OpenTelemetry SDK's ConsoleSpanExporter (span.to_json(), concatenated),
        # span JSON Lines (Phoenix); every span names its parent key, even a root (null)
        if has_id and head.lstrip()[:1] == b"{" and any(k in head for k in PARENT_KEYS) \
                and not any(k in head for k in (b'"messages"', b'"history"', b'"steps"')):
            return 0.85
        return 0.0

    def read(self, data: bytes, path: Path) -> list[Trace]:
        return traces_from_records(span_records(data, path), path, "otlp")

    def records(self, data: bytes, path: Path) -> dict[str, list[SpanRecord]]:
        """The file's spans by trace id, not yet built into traces: :func:`attrib.readers.read_sources` joins the
        spans of one trace that several files hold (a collector's rotated files) before building it."""
        return run_groups(span_records(data, path), path)

    def joined(self, files: list[tuple[Path, dict[str, list[SpanRecord]]]]
               ) -> dict[str, tuple[Path, list[list[SpanRecord]]]]:
        """Of several files' span records (:meth:`records`), the trace ids whose spans more than one file holds as
        disjoint parts (a collector's rotated files), each: (the file holding a span with no parent, else the first;
        the spans of each file). Files holding spans of one trace id twice (copies of one export) are not parts."""
        parts: dict[str, list[tuple[Path, list[SpanRecord]]]] = {}
        for p, read in files:
            for tid, recs in read.items():
                parts.setdefault(tid, []).append((p, recs))
        out: dict[str, tuple[Path, list[list[SpanRecord]]]] = {}
        for tid, ps in parts.items():
            ids = [r.span_id for _, recs in ps for r in recs]
            if len(ps) < 2 or len(set(ids)) < len(ids):  # one file, or the same spans again (a copy)
                continue
            home = next((p for p, recs in ps if any(not r.parent_id for r in recs)), ps[0][0])
            out[tid] = (home, [recs for _, recs in ps])
        return out

    def build(self, trace_id: str, recs: list[SpanRecord], path: Path) -> Trace:
        """One trace from span records (of one file, or joined from several: errors name each span's file)."""
        return build_trace(trace_id, recs, path, "otlp")
