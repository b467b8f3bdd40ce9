"""OTLP as OpenTelemetry users export it: GenAI agent spans, partial and split traces, span status, id spellings,
message events, OpenLLMetry spans.

The fixtures in ``tests/fixtures/otlp_conv`` were written by the OpenTelemetry Python SDK (1.x, in-memory exporter,
``opentelemetry-exporter-otlp-proto-common``'s ``encode_spans`` then protobuf's ``MessageToJson``, ids turned to
hex as the OTLP/JSON spec writes them; ``genai_run_b64.json`` keeps protobuf's base64): ``genai_run.json`` is a
travel-booking run (orchestrator -> researcher, booker; the root's ERROR status says the final answer failed
validation) plus a second, healthy run; ``rotated/`` is the same export as a collector's file exporter wrote it
in batches of four spans, children first, rotated between two files; ``remote_parent.json`` is an agent service
whose root span continues a W3C ``traceparent`` (``flags`` 768); ``legacy_events.json`` records messages as span
events (semconv <= 1.27 and 1.28-1.36); ``openllmetry.json`` is a Traceloop-SDK-style workflow/agent/tool run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attrib.errors import AttribError, InputError
from attrib.readers import read_path, read_paths, read_sources
from attrib.trace import Trace

CONV = Path(__file__).parent / "fixtures" / "otlp_conv"
TASK = ("Book a round trip Berlin->Lisbon for 2 adults, 14-17 June, plus 3 hotel nights; total budget 900 EUR. "
        "Report confirmation numbers.")
STATUS = "final answer failed validation: hotel confirmation HTL-55812 does not exist"


def _doc(name: str = "genai_run.json") -> dict[str, Any]:
    return json.loads((CONV / name).read_text())


def _spans(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            yield from ss["spans"]


def _span(doc: dict[str, Any], name: str, root: bool | None = None, failed: bool | None = None) -> dict[str, Any]:
    """The one span called ``name`` (``root``: with no parent or with one; ``failed``: of the failed run or not)."""
    hits = [sp for sp in _spans(doc) if sp["name"] == name
            and (root is None or (not sp.get("parentSpanId")) == root)
            and (failed is None or (sp["traceId"] == _failed_id(doc)) == failed)]
    assert len(hits) == 1, (name, len(hits))
    return hits[0]


def _failed_id(doc: dict[str, Any]) -> str:
    return next(sp["traceId"] for sp in _spans(doc) if sp.get("status", {}).get("message") == STATUS)


def _write(tmp_path: Path, doc: dict[str, Any], name: str = "run.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def _runs(path: Path) -> tuple[Trace, Trace]:
    """(the failed booking run, the healthy one)."""
    ts = read_path(path)
    failed = [t for t in ts if any(s.metadata.get("error") == STATUS for s in t.steps)]
    assert len(ts) == 2 and len(failed) == 1
    return failed[0], next(t for t in ts if t is not failed[0])


# --------------------------------------------------------------------------- 1. GenAI agent spans


def test_an_agent_span_shows_the_task_its_input_messages_hand_it_not_its_end_status() -> None:
    """invoke_agent spans carry gen_ai.input/output.messages, not input.value: the root's step was its ERROR
    status message (set at the run's end), so the ranker blamed step 0 for the validator's verdict."""
    run, ok = _runs(CONV / "genai_run.json")
    root = run.steps[0]
    assert root.agent == "orchestrator" and root.role == "agent"
    assert root.content == TASK == run.task
    assert root.metadata["error"] == STATUS and run.outcome == "failed"  # still marks the run failed
    assert not any(STATUS in s.content for s in run.steps)
    assert root.metadata["output"].startswith("Booked: flight PNR F7Q2XZ and Hotel Alfama HTL-55812")
    assert run.final_answer == root.metadata["output"]  # the root's own output messages
    researcher = next(s for s in run.steps if s.role == "agent" and s.agent == "researcher")
    assert researcher.content.startswith("Find the cheapest round-trip BER-LIS")
    assert researcher.metadata["output"] == "TP500, 240 EUR total."
    assert ok.steps[0].content == ok.task == "What is the capital of Portugal?" and ok.final_answer == "Lisbon."


def test_a_leaf_span_s_error_is_still_what_it_said(tmp_path: Path) -> None:
    """A failed span with no children and no output: its error is its step (a tool's result, an LLM call's)."""
    run, _ = _runs(CONV / "genai_run.json")
    hotel = next(s for s in run.steps if s.tool_results and s.tool_results[0].name == "book_hotel")
    assert hotel.tool_results[0].is_error and hotel.content.startswith("TimeoutError: hotel-api.example.com")
    doc = _doc()
    _span(doc, "invoke_agent orchestrator", failed=False)["status"] = {"code": 2, "message": "no answer"}
    for sp in list(_spans(doc)):
        if sp["traceId"] != _failed_id(doc) and sp.get("parentSpanId"):
            for ss in (ss for rs in doc["resourceSpans"] for ss in rs["scopeSpans"]):
                if sp in ss["spans"]:
                    ss["spans"].remove(sp)
    lone = next(t for t in read_path(_write(tmp_path, doc)) if t.n_steps == 1)  # an agent span with no children
    assert lone.steps[0].content == "no answer" and lone.outcome == "failed"


# --------------------------------------------------------------------------- 2. partial traces


def test_a_span_whose_parent_is_remote_roots_a_partial_trace() -> None:
    """An agent service's root continues the caller's traceparent: the SDK writes flags 768 (bits 8-9: the parent
    is remote). The file was refused."""
    (t,) = read_path(CONV / "remote_parent.json")
    assert t.id == "4bf92f3577b34da6a3ce929d0e0e4736" and t.n_steps == 2
    assert [s.parents for s in t.steps] == [(), (0,)] and t.agents == ("planner",)
    assert t.metadata["partial"] is True
    assert t.metadata["missing_parents"] == t.metadata["remote_parents"] == ["00f067aa0ba902b7"]
    assert t.outcome == "failed"  # the service's own root: its ERROR status is the run's
    assert json.loads(json.dumps(t.metadata)) == t.metadata  # JSON-simple


def test_a_lost_span_loses_its_subtree_s_link_not_the_file(tmp_path: Path) -> None:
    """A span lost on the way: its children become roots of their own; the other trace in the file is intact."""
    doc = _doc()
    lost = _span(doc, "invoke_agent researcher")
    for ss in (ss for rs in doc["resourceSpans"] for ss in rs["scopeSpans"]):
        if lost in ss["spans"]:
            ss["spans"].remove(lost)
    run, ok = _runs(_write(tmp_path, doc))
    whole_run, whole_ok = _runs(CONV / "genai_run.json")
    assert ok == whole_ok and "partial" not in ok.metadata
    assert run.n_steps == whole_run.n_steps - 1 and run.outcome == "failed" and run.steps[0].content == TASK
    assert run.metadata["partial"] is True and run.metadata["missing_parents"] == [lost["spanId"]]
    assert "remote_parents" not in run.metadata  # flags 256: the parent is known to be local, and lost
    orphans = [s for s in run.steps if s.metadata["span_id"] in
               {sp["spanId"] for sp in _spans(doc) if sp.get("parentSpanId") == lost["spanId"]}]
    assert len(orphans) == 3 and all(s.parents == () for s in orphans)


def test_a_partial_trace_s_outcome_comes_from_its_root_only(tmp_path: Path) -> None:
    """Without a span of no parent, several subtrees whose parents are absent: none of them speaks for the run."""
    doc = _doc()
    root = _span(doc, "invoke_agent orchestrator", failed=True)
    for ss in (ss for rs in doc["resourceSpans"] for ss in rs["scopeSpans"]):
        if root in ss["spans"]:
            ss["spans"].remove(root)
    _span(doc, "execute_tool book_flight")["status"] = {"code": 2, "message": "a child's error"}
    run = next(t for t in read_path(_write(tmp_path, doc)) if t.metadata.get("partial"))
    assert run.metadata["missing_parents"] == [root["spanId"]] and run.outcome == "unknown"


@pytest.mark.parametrize(("parents", "message"), [
    ({"b000000000000001": "b000000000000001"}, "is its own parent"),
    ({"b000000000000001": "b000000000000002", "b000000000000002": "b000000000000001"}, "part of a parent cycle"),
])
def test_a_broken_tree_is_still_an_error(tmp_path: Path, parents: dict[str, str], message: str) -> None:
    spans = [{"traceId": "a" * 32, "spanId": sid, "parentSpanId": parents.get(sid, ""), "name": sid}
             for sid in ("b000000000000001", "b000000000000002", "b000000000000003")]
    p = _write(tmp_path, {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    with pytest.raises(InputError, match=message) as e:
        read_path(p)
    assert e.value.field is not None and e.value.field.endswith("parentSpanId")


# --------------------------------------------------------------------------- 3. rotated files


def test_one_trace_split_over_rotated_files_reads_as_one_run() -> None:
    """Collector files rotated mid-trace, children first: the folder refused one file and read the other as a
    whole, truncated run. The spans of a trace id in several files now make one trace, as one file has it."""
    rotated = CONV / "rotated"
    whole = {t.id: t for t in read_path(CONV / "genai_run.json")}
    errors: list[AttribError] = []
    got = read_sources([rotated], errors=errors, seen={})
    assert errors == [] and len(got) == 2
    assert {t.id: t for t, _ in got} == whole  # the very same traces, not partial
    root_file = rotated / "traces-2025-06-15T10-05.jsonl"
    assert [p for _, p in got] == [root_file, root_file]  # listed with the file holding the root span
    assert {t.id for t in read_paths([rotated])} == set(whole)
    first = read_path(rotated / "traces-2025-06-15T10-00.jsonl")  # read alone, a fragment says what it lacks
    assert len(first) == 1 and first[0].metadata["partial"] is True and len(first[0].metadata["missing_parents"]) == 2


def test_copies_of_one_export_are_not_joined(tmp_path: Path) -> None:
    """The same spans in two files are one run exported twice, not its parts: each file reads as before."""
    for name in ("a.json", "b.json"):
        shutil.copy(CONV / "remote_parent.json", tmp_path / name)
    assert [t.n_steps for t in read_paths([tmp_path])] == [2, 2]
    errors: list[AttribError] = []
    read_sources([tmp_path], errors=errors, seen={})
    assert len(errors) == 1 and "was already read from" in str(errors[0])


# --------------------------------------------------------------------------- 4. OK status


def test_an_ok_root_status_means_succeeded_only_on_the_root(tmp_path: Path) -> None:
    doc = _doc()
    root = _span(doc, "invoke_agent orchestrator", failed=False)
    for code in ("STATUS_CODE_OK", 1):
        root["status"] = {"code": code}
        assert _runs(_write(tmp_path, doc))[1].outcome == "succeeded"
    root["status"] = {}
    _span(doc, "chat gpt-4o", failed=False)["status"] = {"code": "STATUS_CODE_OK"}
    assert _runs(_write(tmp_path, doc))[1].outcome == "unknown"  # an OK child says nothing of the run


def test_an_instrumentation_s_default_ok_is_no_verdict(tmp_path: Path) -> None:
    """OpenInference instrumentations set OK on every span that did not raise: the application validated nothing."""
    doc = _doc()
    root = _span(doc, "invoke_agent orchestrator", failed=False)
    root["status"] = {"code": 1}
    root["attributes"].append({"key": "openinference.span.kind", "value": {"stringValue": "AGENT"}})
    assert _runs(_write(tmp_path, doc))[1].outcome == "unknown"


# --------------------------------------------------------------------------- 5. ids


def test_ids_are_case_insensitive_hex_and_an_all_zero_parent_is_none(tmp_path: Path) -> None:
    whole = {t.id: t for t in read_path(CONV / "genai_run.json")}
    doc = _doc()
    for sp in _spans(doc):
        sp["traceId"], sp["spanId"] = sp["traceId"].upper(), sp["spanId"].upper()
        sp["parentSpanId"] = sp.get("parentSpanId", "").upper() or "0000000000000000"
    assert {t.id: t for t in read_path(_write(tmp_path, doc))} == whole


def test_base64_ids_from_protobuf_s_json_mapping_read_as_hex() -> None:
    """``MessageToJson`` of an export request writes the id bytes as base64 (``G6QW+tUYbh2YVXCPp2fFDQ==``)."""
    raw = (CONV / "genai_run_b64.json").read_text()
    assert '"traceId":"' in raw and '==","spanId":"' in raw
    hexed = {t.id: t for t in read_path(CONV / "genai_run.json")}
    assert {t.id: t for t in read_path(CONV / "genai_run_b64.json")} == hexed


# --------------------------------------------------------------------------- 6. message events


def test_genai_message_events_are_the_span_s_messages() -> None:
    (t,) = read_path(CONV / "legacy_events.json")
    assert [s.content for s in t.steps] == ["", "Sydney is the capital of Australia.", "Yes, Sydney."]
    assert t.final_answer == "Yes, Sydney." and t.outcome == "failed"


def test_message_events_give_a_task_and_tool_calls_and_never_override_attributes(tmp_path: Path) -> None:
    def kv(k: str, v: str) -> dict[str, Any]:
        return {"key": k, "value": {"stringValue": v}}

    choice = {"role": "assistant", "content": None,
              "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calc", "arguments": '{"x":1}'}}]}
    spans = [
        {"traceId": "a" * 32, "spanId": "b" * 16, "name": "invoke_agent boss",
         "attributes": [kv("gen_ai.operation.name", "invoke_agent")],
         "events": [{"name": "gen_ai.system.message", "attributes": [kv("content", "Be brief.")]},
                    {"name": "gen_ai.user.message", "attributes": [kv("content", "What is 6 x 7?")]}]},
        {"traceId": "a" * 32, "spanId": "c" * 16, "parentSpanId": "b" * 16, "name": "chat m", "startTimeUnixNano": 1,
         "attributes": [kv("gen_ai.operation.name", "chat")],
         "events": [{"name": "gen_ai.choice", "attributes": [kv("message", json.dumps(choice))]}]},
        {"traceId": "a" * 32, "spanId": "d" * 16, "parentSpanId": "b" * 16, "name": "chat m", "startTimeUnixNano": 2,
         "attributes": [kv("gen_ai.operation.name", "chat"), kv("gen_ai.output.messages", json.dumps(
             [{"role": "assistant", "parts": [{"type": "text", "content": "42"}]}]))],
         "events": [{"name": "gen_ai.choice", "attributes": [kv("message.content", "not this")]}]},
    ]
    (t,) = read_path(_write(tmp_path, {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    assert t.task == t.steps[0].content == "What is 6 x 7?"
    assert [(c.name, c.arguments, c.id) for c in t.steps[1].tool_calls] == [("calc", '{"x":1}', "c1")]
    assert t.steps[2].content == "42"


# --------------------------------------------------------------------------- 7. OpenLLMetry


def test_openllmetry_spans_map_to_run_agent_and_tool() -> None:
    (t,) = read_path(CONV / "openllmetry.json")
    wf, agent, llm, tool = t.steps
    assert t.task == wf.content == "Plan Rome" and wf.parents == ()  # the workflow is the run
    assert (agent.agent, agent.role, agent.content) == ("planner", "agent", "Plan Rome")
    assert agent.metadata["output"] == "Pack for a blizzard." == t.final_answer
    assert (llm.agent, llm.tokens_in, llm.tokens_out) == ("planner", 12, 7)  # gen_ai.usage.prompt/completion_tokens
    assert [c.name for c in llm.tool_calls] == ["weather"]
    assert (tool.agent, tool.role) == ("planner", "tool")
    assert [(c.name, json.loads(c.arguments), c.id) for c in tool.tool_calls] == [("weather", {"city": "Rome"}, "c1")]
    res = tool.tool_results[0]
    assert (res.name, res.content, res.is_error) == ("weather", "-40C, blizzard", True)
    assert t.agents == ("ll-app", "planner")


# --------------------------------------------------------------------------- 8. error text, recovered errors


def test_an_error_with_only_error_type_says_its_type(tmp_path: Path) -> None:
    doc = _doc()
    _span(doc, "execute_tool book_hotel")["events"] = []  # no exception event, no status message: error.type only
    run, _ = _runs(_write(tmp_path, doc))
    hotel = next(s for s in run.steps if s.tool_results and s.tool_results[0].name == "book_hotel")
    assert hotel.metadata["error"] == hotel.tool_results[0].content == "TimeoutError"


def test_a_recovered_exception_is_kept_without_failing_the_run(tmp_path: Path) -> None:
    run, _ = _runs(CONV / "genai_run.json")
    search = next(s for s in run.steps if s.tool_results and s.tool_results[0].name == "search_flights")
    assert search.metadata["exception"] == "ConnectionResetError: upstream reset; retried once"
    assert "error" not in search.metadata and not search.tool_results[0].is_error
    doc = _doc()  # an exception on a healthy run's root that it recovered from: no failure
    _span(doc, "invoke_agent orchestrator", failed=False)["events"] = [{"name": "exception", "attributes": [
        {"key": "exception.type", "value": {"stringValue": "builtins.TimeoutError"}},
        {"key": "exception.message", "value": {"stringValue": "retried"}}]}]
    ok = _runs(_write(tmp_path, doc))[1]
    assert ok.outcome == "unknown" and ok.steps[0].metadata["exception"] == "TimeoutError: retried"


@pytest.mark.parametrize("scope", ["traceloop.sdk", "opentelemetry.instrumentation.openai.v1", "openlit.otel.tracing"])
def test_an_ok_set_by_an_instrumentation_library_is_no_verdict(tmp_path: Path, scope: str) -> None:
    """OpenLLMetry's instrumentations set OK on every span that did not raise: on a root, it said "succeeded" of a
    run whose answer may be wrong. Only the application's own tracer's OK is a verdict."""
    doc = json.loads((CONV / "openllmetry.json").read_text())
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            ss["scope"]["name"] = scope
            for sp in ss["spans"]:
                if not sp.get("parentSpanId"):
                    sp["status"] = {"code": "STATUS_CODE_OK"}
                    sp["attributes"] = [a for a in sp.get("attributes", []) if not a["key"].startswith("traceloop.")]
    f = tmp_path / "ok.json"
    f.write_text(json.dumps(doc))
    assert read_path(f)[0].outcome != "succeeded"
    for rs in doc["resourceSpans"]:  # the same run from the application's own tracer: its OK is the verdict
        for ss in rs["scopeSpans"]:
            ss["scope"]["name"] = "trip-planner"
    f.write_text(json.dumps(doc))
    assert read_path(f)[0].outcome == "succeeded"
