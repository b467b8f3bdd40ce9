"""OTLP reader: a nested agent/tool span tree becomes time-ordered steps with the right agents and parent links."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attrib.errors import InputError
from attrib.readers import load_trace, read_path


def _raw_spans(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text())
    return [sp for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]


def _attr(sp: dict[str, Any], key: str) -> Any:
    for kv in sp["attributes"]:
        if kv["key"] == key:
            return next(iter(kv["value"].values()))
    return None


def test_nested_agent_tool_tree(bundled: Path) -> None:
    path = bundled / "otlp_agents.json"
    t = load_trace(path)
    spans = _raw_spans(path)
    by_id = {sp["spanId"]: sp for sp in spans}
    assert t.n_steps == len(spans) and t.id == spans[0]["traceId"]
    # time order, parents first
    starts = [int(by_id[s.metadata["span_id"]]["startTimeUnixNano"]) for s in t.steps]
    assert starts == sorted(starts)
    step_of = {s.metadata["span_id"]: s.index for s in t.steps}

    # expected agent of every span, computed here from the raw tree: own agent name, else nearest agent ancestor
    def agent_of(sp: dict[str, Any]) -> str:
        while True:
            name = _attr(sp, "gen_ai.agent.name") or _attr(sp, "agent.name")
            if name:
                return name
            sp = by_id[sp["parentSpanId"]]

    for s in t.steps:
        sp = by_id[s.metadata["span_id"]]
        assert s.agent == agent_of(sp)
        assert s.parents == ((step_of[sp["parentSpanId"]],) if sp["parentSpanId"] else ())
        assert all(p < s.index for p in s.parents)
    assert t.agents == ("Orchestrator", "FlightSearcher", "HotelSearcher")
    assert [s.role for s in t.steps if s.agent == "FlightSearcher"] == ["agent", "assistant", "tool", "assistant"]


def test_tool_calls_results_tokens_and_label(bundled: Path, tmp_path: Path) -> None:
    t = load_trace(bundled / "otlp_agents.json")
    llm_call = t.steps[3]  # OpenInference llm.output_messages...tool_calls
    assert llm_call.tool_calls[0].name == "search_flights" and llm_call.tool_calls[0].id == "call_fl1"
    assert json.loads(llm_call.tool_calls[0].arguments)["adults"] == 2
    assert (llm_call.tokens_in, llm_call.tokens_out) == (180, 40)
    tool = t.steps[4]
    assert tool.role == "tool" and tool.tool_results[0].name == "search_flights"
    assert "price_per_person_eur" in tool.tool_results[0].content
    failed = [s for s in t.steps if s.tool_results and s.tool_results[0].is_error]
    assert len(failed) == 1 and "503" in failed[0].tool_results[0].content
    genai_call = t.steps[7]  # gen_ai.output.messages parts with a tool_call
    assert genai_call.tool_calls[0].name == "search_hotels" and genai_call.tool_calls[0].id == "call_h1"
    assert t.steps[1].tokens_in == 412 and t.steps[1].metadata["model"] == "gpt-4o"
    assert t.outcome == "failed" and t.task.startswith("Plan a 3-day trip")
    assert t.final_answer is not None and "630 EUR" in t.final_answer
    assert t.label is not None and t.label.mistake_agent == "FlightSearcher"
    assert t.steps[t.label.mistake_step].metadata["span_id"] == "c000000000000003"
    # tokens are a step's own: only the LLM calls carry them, so their sum is the run's usage
    assert {s.metadata["kind"] for s in t.steps if s.tokens_in is not None} == {"llm"}
    total_in, total_out = sum(s.tokens_in or 0 for s in t.steps), sum(s.tokens_out or 0 for s in t.steps)
    assert (total_in, total_out) == (412 + 180 + 260 + 702, 96 + 40 + 30 + 61)
    # an invoke_agent span that reports the usage of the calls below it (the GenAI semconv allows it on agent
    # spans): its counts are totals, kept in metadata, never the step's own tokens counted a second time
    doc = json.loads((bundled / "otlp_agents.json").read_text())
    root = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert root["parentSpanId"] in ("", None) and _attr(root, "gen_ai.operation.name") == "invoke_agent"
    root["attributes"] += [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(total_in)}},
                           {"key": "gen_ai.usage.output_tokens", "value": {"intValue": total_out}}]
    p = tmp_path / "with_totals.json"
    p.write_text(json.dumps(doc))
    u = load_trace(p)
    top = u.steps[0]
    assert (top.tokens_in, top.tokens_out) == (None, None)
    assert (top.metadata["tokens_in_total"], top.metadata["tokens_out_total"]) == (total_in, total_out)
    assert (sum(s.tokens_in or 0 for s in u.steps), sum(s.tokens_out or 0 for s in u.steps)) == (total_in, total_out)
    assert [s.tokens_in for s in u.steps[1:]] == [s.tokens_in for s in t.steps[1:]]


def test_a_span_keeps_its_tokens_unless_a_descendant_reports_them(tmp_path: Path) -> None:
    """Counts on a span whose subtree reports usage too are totals (metadata); counts no descendant repeats, on
    an agent span whose LLM calls were not traced, are the only record of them, so the step keeps them."""
    spans = [_span("T", "run", "", 100, gen_ai__operation__name="invoke_agent", gen_ai__agent__name="Boss",
                   gen_ai__usage__input_tokens=50, gen_ai__usage__output_tokens=7),
             _span("T", "step", "run", 110, name="Step 1", openinference__span__kind="CHAIN", output__value="s"),
             _span("T", "llm", "step", 120, gen_ai__operation__name="chat", llm__token_count__prompt=30,
                   llm__token_count__completion=5, output__value="call w"),
             _span("T", "w", "run", 130, gen_ai__operation__name="invoke_agent", gen_ai__agent__name="Worker",
                   gen_ai__usage__input_tokens=20, gen_ai__usage__output_tokens=2),
             _span("T", "t", "w", 140, gen_ai__operation__name="execute_tool", gen_ai__tool__name="search",
                   output__value="hits")]
    p = tmp_path / "tokens.json"
    p.write_text(json.dumps(_doc(*spans)))
    s = _by_span(load_trace(p))
    assert (s["run"].tokens_in, s["run"].tokens_out) == (None, None)  # its grandchild LLM call reports usage
    assert (s["run"].metadata["tokens_in_total"], s["run"].metadata["tokens_out_total"]) == (50, 7)
    assert (s["llm"].tokens_in, s["llm"].tokens_out) == (30, 5)
    assert (s["w"].tokens_in, s["w"].tokens_out) == (20, 2) and "tokens_in_total" not in s["w"].metadata
    assert "tokens_in_total" not in s["step"].metadata and s["step"].tokens_in is None


def test_round_trip_through_the_store(bundled: Path, tmp_store) -> None:
    t = load_trace(bundled / "otlp_agents.json")
    assert tmp_store.upsert_trace(t)
    assert tmp_store.get_trace(t.id) == t
    rows = tmp_store.con.execute("SELECT step, agent, parents FROM steps WHERE trace_id = ? ORDER BY step",
                                 [t.id]).fetchall()
    assert [(r[0], r[1], tuple(r[2])) for r in rows] == [(s.index, s.agent, s.parents) for s in t.steps]


def _span(tid: str, sid: str, parent: str, start: int, **attrs: Any) -> dict[str, Any]:
    def val(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": v}
        return {"stringValue": v}

    return {"traceId": tid, "spanId": sid, "parentSpanId": parent, "name": attrs.pop("name", sid),
            "startTimeUnixNano": start, "endTimeUnixNano": start + 10,
            "attributes": [{"key": k.replace("__", "."), "value": val(v)} for k, v in attrs.items()]}


def _doc(*spans: dict[str, Any], service: str = "svc") -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                               "scopeSpans": [{"spans": list(spans)}]}]}


def test_one_trace_per_trace_id_and_jsonl(tmp_path: Path) -> None:
    a = [_span("T1", "1", "", 100, gen_ai__agent__name="A", output__value="x"),
         _span("T1", "2", "1", 110, output__value="y")]
    b = [_span("T2", "9", "", 50, name="lonely span", output__value="z")]
    p = tmp_path / "two.json"
    p.write_text(json.dumps(_doc(*a, *b)))
    ts = {t.id: t for t in read_path(p)}
    assert set(ts) == {"T1", "T2"}
    assert [s.agent for s in ts["T1"].steps] == ["A", "A"]
    assert ts["T2"].steps[0].agent == "svc"  # no agent anywhere: the service name
    p2 = tmp_path / "lines.jsonl"
    p2.write_text(json.dumps(_doc(*a)) + "\n" + json.dumps(_doc(*b)) + "\n")
    assert {t.id for t in read_path(p2)} == {"T1", "T2"}


def test_children_never_precede_parents_under_clock_skew(tmp_path: Path) -> None:
    spans = [_span("T", "root", "", 1000, gen_ai__agent__name="Boss"),
             _span("T", "kid", "root", 900, gen_ai__operation__name="chat", output__value="early clock"),
             _span("T", "sib", "root", 1001, gen_ai__operation__name="chat", output__value="later")]
    p = tmp_path / "skew.json"
    p.write_text(json.dumps(_doc(*spans)))
    t = load_trace(p)
    assert [s.metadata["span_id"] for s in t.steps] == ["root", "kid", "sib"]
    assert t.steps[1].parents == (0,)


def test_flat_span_list_with_child_spans(tmp_path: Path) -> None:
    """Phoenix/TRAIL-style: snake_case ids, an attributes dict, children nested under child_spans."""
    doc = {"trace_id": "trail-1", "spans": [{
        "span_id": "a", "parent_span_id": None, "span_name": "CodeAgent.run", "timestamp": "2025-03-19T16:44:40Z",
        "span_attributes": {"openinference.span.kind": "AGENT", "input.value": "task?", "output.value": "42"},
        "child_spans": [
            {"span_id": "b", "span_name": "LiteLLMModel.__call__", "timestamp": "2025-03-19T16:44:41Z",
             "span_attributes": {"openinference.span.kind": "LLM", "llm.output_messages.0.message.content": "think"}},
            {"span_id": "c", "span_name": "SearchTool", "timestamp": "2025-03-19T16:44:42Z", "status_code": "Error",
             "status_message": "timeout",
             "span_attributes": {"openinference.span.kind": "TOOL", "tool.name": "search", "input.value": "q"}},
        ]}]}
    p = tmp_path / "trail.json"
    p.write_text(json.dumps(doc))
    t = load_trace(p)
    assert [s.agent for s in t.steps] == ["CodeAgent"] * 3  # the agent, not its method
    assert [s.parents for s in t.steps] == [(), (0,), (0,)]
    assert t.steps[1].content == "think" and t.steps[2].tool_results[0].is_error
    assert t.final_answer == "42" and t.task == "task?"


@pytest.mark.parametrize(("spans", "field"), [
    ([_span("T", "1", "", 1), _span("T", "2", "2", 2)], "parentSpanId"),  # its own parent (a lost one: a root)
    ([_span("T", "1", "", 1), _span("T", "1", "", 2)], "spanId"),
    ([_span("T", "1", "2", 1), _span("T", "2", "1", 2)], "parentSpanId"),
])
def test_broken_trees_name_the_span_field(tmp_path: Path, spans: list[dict[str, Any]], field: str) -> None:
    p = tmp_path / "broken.json"
    p.write_text(json.dumps(_doc(*spans)))
    with pytest.raises(InputError) as e:
        read_path(p)
    assert str(p) in str(e.value) and field in str(e.value) and "spans[" in str(e.value)


def test_type_errors_name_the_json_path(tmp_path: Path) -> None:
    p = tmp_path / "types.json"
    doc = _doc(_span("T", "1", "", 1))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = 7
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.name"):
        read_path(p)


def test_null_fields_read_as_absent(tmp_path: Path) -> None:
    """proto3 JSON: null is the default value, for every optional field."""
    spans = [_span("T", "1", "", 100, gen_ai__agent__name="A", input__value="task", output__value="done"),
             _span("T", "2", "1", 110, gen_ai__operation__name="chat", output__value="hi")]
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(_doc(*spans)))
    spans[0].update(parentSpanId=None, events=None, links=None, status=None, kind=None)
    spans[1].update(status={"code": None, "message": None}, events=None)
    spans[1]["attributes"] += [{"key": "nothing", "value": None}, {"key": "null.string", "value": {"stringValue": None}},
                               {"key": "empty.array", "value": {"arrayValue": {"values": None}}}]
    spans.append({"traceId": "T", "spanId": "3", "parentSpanId": "2", "name": None, "attributes": None,
                  "startTimeUnixNano": None, "endTimeUnixNano": None, "status": None})
    doc = _doc(*spans)
    doc["resourceSpans"].append({"resource": None, "scopeSpans": None})
    doc["resourceSpans"][0]["scopeSpans"].append({"scope": None, "spans": None})
    nulls = tmp_path / "nulls.json"
    nulls.write_text(json.dumps(doc))
    want, got = load_trace(plain), load_trace(nulls)
    assert got.steps[:2] == want.steps and got.final_answer == want.final_answer
    assert got.steps[1].metadata.get("error") is None
    assert got.steps[2].parents == (1,) and got.steps[2].start_time is None


def _untimed(tid: str, sid: str, parent: str, **attrs: Any) -> dict[str, Any]:
    sp = _span(tid, sid, parent, 0, **attrs)
    del sp["startTimeUnixNano"], sp["endTimeUnixNano"]
    return sp


def test_spans_without_times_come_in_tree_order(tmp_path: Path) -> None:
    """Depth-first in file order: an agent's own work comes before the next agent's, not level by level."""
    spans = [_untimed("T", "boss", "", gen_ai__agent__name="Boss", input__value="task"),
             _untimed("T", "a", "boss", gen_ai__agent__name="A", input__value="part 1"),
             _untimed("T", "b", "boss", gen_ai__agent__name="B", input__value="part 2"),
             _untimed("T", "a-llm", "a", gen_ai__operation__name="chat", output__value="A's answer"),
             _untimed("T", "b-llm", "b", gen_ai__operation__name="chat", output__value="B's answer")]
    p = tmp_path / "untimed.json"
    p.write_text(json.dumps(_doc(*spans)))
    t = load_trace(p)
    assert [s.metadata["span_id"] for s in t.steps] == ["boss", "a", "a-llm", "b", "b-llm"]
    assert [s.agent for s in t.steps] == ["Boss", "A", "A", "B", "B"]
    assert [s.parents for s in t.steps] == [(), (0,), (1,), (0,), (3,)]


def test_times_order_the_steps_and_ties_keep_tree_order(tmp_path: Path) -> None:
    spans = [_span("T", "boss", "", 100, gen_ai__agent__name="Boss"),
             _span("T", "a", "boss", 100, gen_ai__agent__name="A"),
             _span("T", "b", "boss", 150, gen_ai__agent__name="B"),
             _span("T", "a-llm", "a", 100, gen_ai__operation__name="chat"),
             _span("T", "a-late", "a", 200, gen_ai__operation__name="chat"),
             _span("T", "b-llm", "b", 160, gen_ai__operation__name="chat")]
    p = tmp_path / "timed.json"
    p.write_text(json.dumps(_doc(*spans)))
    assert [s.metadata["span_id"] for s in load_trace(p).steps] == ["boss", "a", "a-llm", "b", "b-llm", "a-late"]


def test_final_answer_is_never_the_task(tmp_path: Path) -> None:
    """A root agent span with children and no output: the last non-tool step's output, not the root's input."""
    spans = [_span("T", "root", "", 100, gen_ai__agent__name="Boss", input__value="What is 6 x 7?"),
             _span("T", "w", "root", 110, gen_ai__agent__name="Worker", input__value="multiply",
                   output__value="worker says 48"),
             _span("T", "llm", "w", 120, gen_ai__operation__name="chat", output__value="48"),
             _span("T", "tool", "w", 130, gen_ai__operation__name="execute_tool", gen_ai__tool__name="calc",
                   output__value="42")]
    p = tmp_path / "final.json"
    p.write_text(json.dumps(_doc(*spans)))
    t = load_trace(p)
    assert t.task == "What is 6 x 7?" and t.steps[0].content == t.task
    assert t.final_answer == "48"  # the tool's result is not an answer; the llm's is the last word
    spans[1]["attributes"].append({"key": "output.value", "value": {"stringValue": "ignored: not the root"}})
    spans[0]["attributes"].append({"key": "output.value", "value": {"stringValue": "6 x 7 = 48"}})
    p.write_text(json.dumps(_doc(*spans)))
    assert load_trace(p).final_answer == "6 x 7 = 48"  # the root's own output wins
    p.write_text(json.dumps(_doc(spans[0], *[_span("T", "w", "root", 110, gen_ai__agent__name="W",
                                                    input__value="sub-task")])))
    assert load_trace(p).final_answer == "6 x 7 = 48"
    spans[0]["attributes"].pop()
    p.write_text(json.dumps(_doc(spans[0], _span("T", "w", "root", 110, gen_ai__agent__name="W",
                                                 input__value="sub-task"))))
    assert load_trace(p).final_answer is None  # no output anywhere: no answer, rather than the task


def test_jsonl_errors_name_one_position(tmp_path: Path) -> None:
    lines = [json.dumps(_doc(_span(f"T{i}", "1", "", i, output__value="x" * 40))) for i in range(6)]
    truncated = lines[:5] + [lines[5][:-20]]
    p = tmp_path / "cut.jsonl"
    p.write_text("\n".join(truncated) + "\n")
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == f"line 6 col {len(lines[5]) - 20 + 1}"
    assert e.value.message == "file ends in the middle of a JSON value (truncated?)"  # the last line: the file's end
    p.write_text("\n".join(lines[:2] + [lines[2][:-20]] + lines[3:]) + "\n")  # a line cut off mid-file
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == f"line 3 col {len(lines[2]) - 20 + 1}"
    assert e.value.message.startswith("line ends in the middle of a JSON value")
    p.write_text(lines[0] + "\n" + json.dumps([json.loads(lines[1])]) + "\n")
    with pytest.raises(InputError) as e:
        read_path(p)
    assert (e.value.field, e.value.message) == ("line 2", "expected a JSON object, got a list")
    doc = json.loads(lines[1])
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = 7
    p.write_text(lines[0] + "\n" + json.dumps(doc) + "\n")
    with pytest.raises(InputError) as e:  # the field path as the other errors spell it, not msgspec's "$." one
        read_path(p)
    assert e.value.field == "line 2: resourceSpans[0].scopeSpans[0].spans[0].name"
    assert e.value.message.startswith("expected str") and "`" not in e.value.message


def test_flat_span_errors_name_the_key_the_file_uses(tmp_path: Path) -> None:
    p = tmp_path / "flat.json"
    p.write_text(json.dumps({"spans": [{"span_id": "a", "name": "root"},
                                       {"span_id": "b", "parent_span_id": "b", "name": "loop"}]}))
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == "spans[1].parent_span_id" and "its own parent" in e.value.message
    p.write_text(json.dumps({"spans": [{"span_id": "a", "name": "root"}, {"spanId": "a", "name": "twin"}]}))
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == "spans[1].spanId" and "duplicate" in e.value.message
    p.write_text(json.dumps({"spans": [{"span_id": 0, "name": "zero"}]}))
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == "spans[0].span_id" and "0 is not a valid span id" in e.value.message
    p.write_text(json.dumps({"spans": [{"span_id": 5, "parent_span_id": 0, "name": "int ids"},
                                       {"span_id": 6, "parent_span_id": 5, "name": "child"}]}))
    assert [s.parents for s in load_trace(p).steps] == [(), (0,)]  # parent 0: none, as OTLP's all-zero id


# --------------------------------------------------------------------------- real-world exports (tests/fixtures)
# Shapes as the instrumentations write them: openinference-instrumentation-smolagents (_wrappers.py: "X.run" AGENT,
# "Step N" CHAIN, "Model.generate" LLM with message.contents parts, tool spans named by class with tool.name and the
# schema in tool.parameters), openinference-instrumentation-langchain (_tracer.py: run metadata as a JSON string with
# langgraph_node / langgraph_checkpoint_ns; "agent" nodes marked AGENT), TRAIL's Patronus export (flat spans with
# span_attributes and child_spans), and the OpenTelemetry SDK's ConsoleSpanExporter (span.to_json(), concatenated).

FIXTURES = Path(__file__).parent / "fixtures"


def _by_span(t: Any) -> dict[str, Any]:
    return {s.metadata["span_id"]: s for s in t.steps}


def test_smolagents_export_keeps_llm_text_tool_arguments_and_call_links() -> None:
    t = load_trace(FIXTURES / "otlp_smolagents.json")
    s = _by_span(t)
    # llm.output_messages.0.message.contents.0.message_content.text: the model's thought and code, not ""
    assert s["c1f0a5e4b3d2a102"].content.startswith("Thought: I will ask search_agent")
    assert (s["c1f0a5e4b3d2a102"].tokens_in, s["c1f0a5e4b3d2a102"].tokens_out) == (2210, 88)
    # the tool was called with input.value's arguments; tool.parameters is the tool's schema
    tool = s["d2e1b6f5c4e3b204"]
    (call,) = tool.tool_calls
    assert json.loads(call.arguments)["kwargs"] == {"query": "Mercedes Sosa discography studio albums"}
    # the tool span names no call id: its result answers the agent's LLM call of that tool
    llm = s["d2e1b6f5c4e3b203"]
    assert llm.tool_calls[0].id == "call_kXq1"
    assert tool.tool_results[0].call_id == call.id == "call_kXq1" and tool.metadata["call_step"] == llm.index
    # an ERROR step span with no description: the exception event says what went wrong
    failed = s["e3f2c7a6d5f4c301"]
    assert "The variable `result` is not defined" in failed.metadata["error"]
    assert failed.content.startswith("AgentExecutionError: Code execution failed")
    # the task is the question, not input.value's JSON; the managed agent is named as its manager calls it
    assert t.task == "How many studio albums did Mercedes Sosa publish between 2000 and 2009 (included)?"
    assert t.final_answer == "4"
    assert t.agents == ("CodeAgent", "search_agent")
    assert {st.agent for st in t.steps if st.metadata["span_id"].startswith("d2")} == {"search_agent"}


def test_smolagents_agent_span_names_the_agent_not_its_run_method(tmp_path: Path) -> None:
    """OpenInference names a smolagents run span ``{agent.name or class}.run``: a named manager is its name, an
    unnamed one its class (``CodeAgent``), never ``CodeAgent.run``; ``invoke_agent X`` stays ``X``."""
    spans = [_span("T", "m", "", 100, name="research_lead.run", openinference__span__kind="AGENT",
                   smolagents__task="q?", smolagents__managed_agents__0__name="search_agent"),
             _span("T", "l", "m", 110, name="LiteLLMModel.generate", openinference__span__kind="LLM",
                   output__value="ask search_agent"),
             _span("T", "s", "m", 120, name="search_agent.run", openinference__span__kind="AGENT",
                   smolagents__task="You're a helpful agent named 'search_agent'."),
             _span("T", "u", "m", 130, name="CodeAgent.run", openinference__span__kind="AGENT", smolagents__task="x"),
             _span("T", "g", "m", 140, name="invoke_agent Planner", gen_ai__operation__name="invoke_agent")]
    p = tmp_path / "named.json"
    p.write_text(json.dumps(_doc(*spans)))
    t = load_trace(p)
    assert [s.agent for s in t.steps] == ["research_lead", "research_lead", "search_agent", "CodeAgent", "Planner"]


def test_trail_export_takes_task_and_answer_from_its_agent_not_the_harness() -> None:
    t = load_trace(FIXTURES / "trail_gaia.json")
    assert t.task == "What is the surname of the equine veterinarian mentioned in 1.E Exercises?"
    assert t.final_answer == "Louvrier"  # the top agent's output, not the last step's "Error: 429"
    assert t.agents == ("main", "CodeAgent", "search_agent")  # not the container id "c09a5098c122"
    s = _by_span(t)
    tool = s["a1b2c3d4e5f60009"]
    (res,) = tool.tool_results
    assert res.is_error and res.content.startswith("HTTPError: 429") and res.call_id == "call_W8bz"
    assert json.loads(tool.tool_calls[0].arguments)["kwargs"]["query"] == "LibreTexts 1.E Exercises equine veterinarian"
    assert s["a1b2c3d4e5f60005"].content.startswith("Thought: I will ask search_agent")


def test_agent_run_totals_are_metadata_not_the_steps_own_tokens() -> None:
    """smolagents' X.run AGENT span carries the run's token totals (its monitor's counts); its LLM spans carry
    each call's. Summing the steps counts each call once."""
    for name, agent_span in (("otlp_smolagents.json", "b7ad6b7169203331"), ("trail_gaia.json", "a1b2c3d4e5f60003")):
        t = load_trace(FIXTURES / name)
        run = _by_span(t)[agent_span]
        assert run.metadata["kind"] == "agent" and (run.tokens_in, run.tokens_out) == (None, None), name
        assert run.metadata["tokens_in_total"] > 0 and run.metadata["tokens_out_total"] > 0
        llm = [s for s in t.steps if s.metadata["kind"] == "llm"]
        assert sum(s.tokens_in or 0 for s in t.steps) == sum(s.tokens_in for s in llm) > 0, name
    smol = _by_span(load_trace(FIXTURES / "otlp_smolagents.json"))["b7ad6b7169203331"]
    assert (smol.metadata["tokens_in_total"], smol.metadata["tokens_out_total"]) == (9120, 412)


def test_trail_function_logs_give_a_harness_span_its_arguments_output_and_error(tmp_path: Path) -> None:
    """Patronus's @traced() records a function's call only as a log (body: function.name / .arguments / .output,
    exception.*); the span has no attributes. The step keeps the arguments as input and the output as content."""
    t = load_trace(FIXTURES / "trail_gaia.json")
    harness = _by_span(t)["a1b2c3d4e5f60002"]  # answer_single_question: its example is only in its log
    assert json.loads(harness.metadata["input"])["example"]["question"] == t.task
    doc = {"trace_id": "trail-2", "spans": [{
        "span_id": "a", "span_name": "main", "timestamp": "2025-03-19T16:44:40Z", "logs": [],
        "child_spans": [
            {"span_id": "b", "span_name": "answer_single_question", "timestamp": "2025-03-19T16:44:41Z",
             "span_attributes": {},
             "logs": [{"timestamp": "2025-03-19T16:44:42Z", "body": {
                 "function.name": "answer_single_question", "function.arguments": {"example": {"question": "q?"}},
                 "function.output": {"prediction": "Louvrier", "agent_error": None}}}]},
            {"span_id": "c", "span_name": "fetch_page", "timestamp": "2025-03-19T16:44:43Z",
             "span_attributes": {"openinference.span.kind": "TOOL", "tool.name": "fetch_page"},
             "logs": [{"body": {"function.name": "fetch_page", "function.arguments": {"url": "https://x"},
                                "function.output": "<html>page</html>"}}]},
            {"span_id": "d", "span_name": "visit", "timestamp": "2025-03-19T16:44:44Z", "status_code": "Error",
             "status_message": "",
             "logs": [{"body": {"function.name": "visit", "function.arguments": {"url": "https://y"},
                                "exception.type": "requests.exceptions.HTTPError",
                                "exception.message": "429 Too Many Requests"}}]},
            {"span_id": "e", "span_name": "ask", "timestamp": "2025-03-19T16:44:45Z",
             "span_attributes": {"input.value": "own input", "output.value": "own output"},
             "logs": [{"body": {"function.name": "ask", "function.arguments": {"q": 1}, "function.output": "log"}},
                      {"body": "free text"}]},
        ]}]}
    p = tmp_path / "trail_logs.json"
    p.write_text(json.dumps(doc))
    s = _by_span(load_trace(p))
    assert json.loads(s["b"].metadata["input"]) == {"example": {"question": "q?"}}
    assert json.loads(s["b"].content) == {"prediction": "Louvrier", "agent_error": None}
    (call,), (res,) = s["c"].tool_calls, s["c"].tool_results  # a tool whose output only its log holds
    assert json.loads(call.arguments) == {"url": "https://x"} and res.content == "<html>page</html>"
    assert s["d"].metadata["error"] == s["d"].content == "HTTPError: 429 Too Many Requests"
    assert (s["e"].metadata["input"], s["e"].content) == ("own input", "own output")  # attributes win


def test_langgraph_export_names_agents_by_their_graph_node() -> None:
    t = load_trace(FIXTURES / "otlp_langgraph.json")
    # create_react_agent's inner "agent"/"tools" nodes belong to the node that holds them
    assert t.agents == ("LangGraph", "supervisor", "research_expert")
    s = _by_span(t)
    assert [s[f"00f067aa0ba9000{c}"].agent for c in "789abcd"] == ["research_expert"] * 7
    # Anthropic content parts (message.contents.N.message_content.text), joined
    assert s["00f067aa0ba90010"].content == "4.21 trillion / 124.5 million:\nJapan's 2023 GDP per person was about 3,382 USD."
    assert s["00f067aa0ba9000b"].tool_results[0].call_id == "call_r1"
    assert s["00f067aa0ba90006"].tool_results[0].call_id == "call_sup1"
    # {"messages": [...]} in and out: the user's question, the last assistant message
    assert t.task == "What was Japan's 2023 GDP per person, in US dollars?"
    assert t.final_answer == "Japan's 2023 GDP per person was about 3,382 USD."
    # the graph and its nodes output the state their children wrote: like an agent span, the step holds what it
    # was handed, and the state dump (every message again) stays in metadata
    root = t.steps[0]
    assert root.content == t.task and json.loads(root.metadata["output"])["messages"][-1]["name"] == "supervisor"
    assert s["00f067aa0ba90002"].content == t.task


def test_console_exporter_dump_reads_as_written_and_as_list_or_lines(tmp_path: Path) -> None:
    """ConsoleSpanExporter prints each finished span's to_json() in turn: children before parents, no list."""
    path = FIXTURES / "otel_console_spans.json"
    t = load_trace(path)
    assert [s.metadata["span_name"] for s in t.steps] == ["solve", "ChatOpenAI", "ChatOpenAI"]
    assert [s.parents for s in t.steps] == [(), (0,), (0,)]
    assert t.agents == ("calculator-team",)  # resource.attributes service.name
    assert t.steps[1].content == t.steps[1].metadata["error"] == \
        "RateLimitError: Error code: 429 - Rate limit reached for gpt-4o"
    assert (t.task, t.final_answer) == ("What is 6 x 7?", "6 x 7 = 48")
    # ids as a trace viewer shows them: the exporter's "0x" prefix dropped, so an exported verdict links to the span
    assert t.id == "5b8aa5a2d2c872e8321cf37308d69df2" and all(
        not s.metadata["span_id"].startswith("0x") and len(s.metadata["span_id"]) == 16 for s in t.steps)
    spans = list(_objects(path.read_text()))
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(spans))
    lines = tmp_path / "spans.jsonl"
    lines.write_text("".join(json.dumps(sp) + "\n" for sp in spans))
    one = tmp_path / "one.json"
    one.write_text(json.dumps(spans[2], indent=4))
    for p in (listed, lines):
        assert read_path(p)[0].steps == t.steps, p.name
    assert load_trace(one).steps[0].content == "6 x 7 = 48"
    cut = tmp_path / "cut.json"  # a dump cut off inside the third span: the error is where the file ends
    text = path.read_text()
    at = text.index('"name": "solve"') + 30
    cut.write_text(text[:at])
    with pytest.raises(InputError) as e:
        read_path(cut)
    assert e.value.message == "file ends in the middle of a JSON value (truncated?)"
    line = text[:at].count("\n") + 1
    assert e.value.field == f"line {line} col {at - text.rindex(chr(10), 0, at)}"


def _objects(text: str) -> Any:
    dec, pos = json.JSONDecoder(), 0
    while pos < len(text.rstrip()):
        obj, pos = dec.raw_decode(text, pos)
        yield obj
        while pos < len(text) and text[pos].isspace():
            pos += 1


def test_re_runs_of_one_task_say_so_with_attrib_question_id(bundled: Path, tmp_path: Path) -> None:
    """OTLP had no way to carry metadata.question_id, so re-runs of one task could sit in training while another
    was scored; ``attrib.question_id`` on the root span sets it (absent: no key, the trace id groups)."""
    from attrib.trace import question_id

    doc = json.loads((bundled / "otlp_agents.json").read_text())
    root = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert question_id(load_trace(bundled / "otlp_agents.json")) == load_trace(bundled / "otlp_agents.json").id
    root["attributes"].append({"key": "attrib.question_id", "value": {"stringValue": "task-7"}})
    p = tmp_path / "rerun.json"
    p.write_text(json.dumps(doc))
    t = load_trace(p)
    assert t.metadata["question_id"] == "task-7" and question_id(t) == "task-7"


def test_a_run_root_that_names_no_agent_shows_its_request_not_the_final_answer() -> None:
    """A harness root span (``datadesk.run``: no agent name, the agents below it) became step 0 with the run's final
    output as its text, so the final answer 'first appeared' at step 0 and its service pseudo-agent took the blame in
    7 of 10 such runs. Its step now shows the request it was handed; the output goes to metadata."""
    from attrib.methods import analyze

    root = Path(__file__).parent / "fixtures" / "own_system" / "runs" / "otlp"
    blamed = []
    for p in sorted(root.glob("*.json")):
        t = load_trace(p)
        step0 = t.steps[0]
        assert step0.metadata["span_name"].endswith(".run") and step0.content == t.task
        assert t.final_answer and t.final_answer not in step0.content and step0.metadata["output"]
        blamed.append(analyze(t).agent)
    assert len(blamed) == 10 and "datadesk" not in blamed
