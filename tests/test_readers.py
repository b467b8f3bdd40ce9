"""Readers: format detection, the chat reader's shapes, the native round trip, the bundled fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attrib.errors import InputError
from attrib.readers import READERS, detect, load_trace, read_bytes, read_path
from attrib.trace import Trace


@pytest.mark.parametrize(("name", "fmt"), [("demo_whowhen.json", "whowhen"), ("otlp_agents.json", "otlp"),
                                           ("chat_autogen.jsonl", "chat"), ("chat_langgraph.json", "chat")])
def test_bundled_fixtures_are_detected(bundled: Path, name: str, fmt: str) -> None:
    path = bundled / name
    assert detect(path.read_bytes(), path).name == fmt
    assert read_path(path)[0].source_format == fmt


def test_demo_trace_has_an_early_decisive_mistake(bundled: Path) -> None:
    raw = json.loads((bundled / "demo_whowhen.json").read_text())
    t = load_trace(bundled / "demo_whowhen.json")
    assert t.n_steps == len(raw["history"]) and 8 <= t.n_steps <= 12
    assert len(t.agents) >= 3 and t.outcome == "failed"
    assert t.label is not None and t.label.mistake_step == int(raw["mistake_step"]) == 1
    assert t.steps[1].agent == t.label.mistake_agent == "UnitConversion_Expert"
    wrong = "33.0"  # the wrong figure first appears at the mistake step and reaches the final step
    assert wrong in t.steps[1].content and all(wrong not in s.content for s in t.steps[:1])
    assert wrong in t.steps[-2].content and t.ground_truth == "6.8"
    assert t.unlabelled().label is None


def test_chat_fixture_links_tool_results_to_their_calls(bundled: Path) -> None:
    t = load_trace(bundled / "chat_autogen.jsonl")
    raw = [json.loads(line) for line in (bundled / "chat_autogen.jsonl").read_text().splitlines()]
    assert t.n_steps == len(raw)
    call_step = {c["id"]: i for i, m in enumerate(raw) for c in m.get("tool_calls") or []}
    for i, m in enumerate(raw):
        s = t.steps[i]
        if m["role"] == "tool":
            assert s.role == "tool" and s.parents == (call_step[m["tool_call_id"]],)
            assert s.tool_results[0].call_id == m["tool_call_id"] and s.tool_results[0].content == m["content"]
            assert s.agent == "web_search"  # named after the tool it ran
        else:
            assert s.agent == m["name"] and s.parents == ()
            assert [c.name for c in s.tool_calls] == [c["function"]["name"] for c in m.get("tool_calls") or []]


def test_langgraph_fixture_reads_message_types_and_tool_links(bundled: Path) -> None:
    t = load_trace(bundled / "chat_langgraph.json")
    raw = json.loads((bundled / "chat_langgraph.json").read_text())["messages"]
    assert [s.agent for s in t.steps] == ["user", "planner", "web_search", "researcher", "writer"]
    assert t.n_steps == len(raw) and t.steps[2].role == "tool" and t.steps[2].parents == (1,)
    assert [c.name for c in t.steps[1].tool_calls] == ["web_search"]


def _write(tmp_path: Path, name: str, obj: object) -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_chat_shapes(tmp_path: Path) -> None:
    # a plain JSON list
    p = _write(tmp_path, "list.json", [{"role": "user", "content": "hi"}, {"role": "assistant", "name": "Bot", "content": "yo"}])
    t = load_trace(p)
    assert [s.agent for s in t.steps] == ["user", "Bot"] and t.id == "chat-list"
    # an object with messages, trace fields and a label
    p = _write(tmp_path, "obj.json", {"id": "run-7", "task": "add", "messages": [
        {"role": "user", "name": "Alice", "content": "2+2?"}, {"role": "assistant", "name": "Calc", "content": "5"}],
        "mistake_agent": "Calc", "mistake_step": 1, "ground_truth": "4"})
    t = load_trace(p)
    assert (t.id, t.task, t.outcome, t.ground_truth) == ("run-7", "add", "failed", "4")
    assert t.label is not None and (t.label.mistake_agent, t.label.mistake_step) == ("Calc", 1)
    # LangGraph / LangChain message dicts
    p = _write(tmp_path, "lg.json", {"messages": [
        {"type": "human", "content": "weather in Oslo?"},
        {"type": "ai", "name": "agent", "content": "", "tool_calls": [{"name": "weather", "args": {"city": "Oslo"}, "id": "t1"}]},
        {"type": "tool", "name": "weather", "content": "-3C", "tool_call_id": "t1"},
        {"type": "ai", "name": "agent", "content": "It is -3C."}]})
    t = load_trace(p)
    assert [s.role for s in t.steps] == ["user", "assistant", "tool", "assistant"]
    assert t.steps[1].tool_calls[0].name == "weather" and json.loads(t.steps[1].tool_calls[0].arguments) == {"city": "Oslo"}
    assert t.steps[2].parents == (1,) and t.steps[2].tool_results[0].content == "-3C"
    # autogen-agentchat {source, content}, content parts
    p = _write(tmp_path, "ag.json", [{"source": "user", "content": "task", "type": "TextMessage"},
                                     {"source": "Coder", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                                      "models_usage": {"prompt_tokens": 11, "completion_tokens": 3}}])
    t = load_trace(p)
    assert [s.agent for s in t.steps] == ["user", "Coder"] and t.steps[1].content == "a\nb"
    assert (t.steps[1].tokens_in, t.steps[1].tokens_out) == (11, 3)


def test_plain_agent_logs_are_detected_without_format(tmp_path: Path) -> None:
    """{agent, content} / {speaker, text} lines (no role, no name) read as chat, with no --format needed."""
    lines = [{"agent": "Planner", "content": "Plan: add 2 and 2."}, {"agent": "Solver", "content": "2+2=5"}]
    p = _write(tmp_path, "plain.jsonl", "\n".join(json.dumps(x) for x in lines))
    t = load_trace(p)
    assert [s.agent for s in t.steps] == ["Planner", "Solver"] and t.steps[1].content == "2+2=5"
    p = _write(tmp_path, "plain.json", [{"speaker": "a", "text": "hi"}, {"speaker": "b", "text": "yo"}])
    assert [(s.agent, s.content) for s in load_trace(p).steps] == [("a", "hi"), ("b", "yo")]
    p = _write(tmp_path, "one.jsonl", json.dumps({"agent": "Solo", "content": "2+2=5"}) + "\n")  # one line, one step
    assert [(s.agent, s.content) for s in load_trace(p).steps] == [("Solo", "2+2=5")]


def test_langchain_serialised_messages_read_like_plain_ones(tmp_path: Path) -> None:
    plain = [{"type": "human", "content": "6 x 7?"},
             {"type": "ai", "name": "solver", "content": "", "tool_calls": [{"name": "calc", "args": {"e": "6*7"}, "id": "c1"}]},
             {"type": "tool", "name": "calc", "content": "42", "tool_call_id": "c1"},
             {"type": "ai", "name": "solver", "content": "48"}]
    # messages_to_dict: {"type": ..., "data": {...}}
    as_dict = [{"type": m["type"], "data": {**m, "id": None}} for m in plain]
    # dumpd: {"lc": 1, "type": "constructor", "id": [..., class], "kwargs": {...}}
    cls = {"human": "HumanMessage", "ai": "AIMessageChunk", "tool": "ToolMessage"}
    as_lc = [{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", cls[m["type"]]],
              "kwargs": {k: v for k, v in m.items() if k != "type"}} for m in plain]
    want = load_trace(_write(tmp_path, "plain.json", plain))
    for name, msgs in (("dict.json", as_dict), ("lc.json", as_lc)):
        t = load_trace(_write(tmp_path, name, msgs))
        assert [(s.agent, s.role, s.content, s.parents) for s in t.steps] == \
               [(s.agent, s.role, s.content, s.parents) for s in want.steps], name
        assert t.steps[1].tool_calls[0].name == "calc"


def test_chat_jsonl_of_conversations_gives_one_trace_per_line(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"c{i}", "messages": [{"role": "user", "content": f"q{i}"}]}) for i in range(3)]
    p = _write(tmp_path, "many.jsonl", "\n".join(lines) + "\n")
    assert [t.id for t in read_path(p)] == ["c0", "c1", "c2"]


def test_native_json_round_trips_losslessly(bundled: Path, tmp_path: Path) -> None:
    for name in ("demo_whowhen.json", "otlp_agents.json", "chat_autogen.jsonl"):
        t = load_trace(bundled / name)
        p = tmp_path / f"{name}.attrib.json"
        p.write_bytes(t.to_json())
        assert detect(p.read_bytes(), p).name == "attrib"
        assert load_trace(p) == t


def test_every_reader_is_registered_by_name() -> None:
    assert {"whowhen", "otlp", "chat", "attrib"} <= set(READERS)


def test_format_override_and_unknown_format(bundled: Path) -> None:
    p = bundled / "chat_autogen.jsonl"
    assert read_path(p, format="chat")[0].source_format == "chat"
    with pytest.raises(InputError, match="format: unknown format"):
        read_path(p, format="nope")
    with pytest.raises(InputError):
        read_path(p, format="whowhen")  # JSONL is not one Who&When object


def test_trace_from_reader_is_a_trace(bundled: Path) -> None:
    assert isinstance(load_trace(bundled / "demo_whowhen.json"), Trace)


def test_autogen_agentchat_messages_get_roles_tool_calls_and_result_links() -> None:
    """``TaskResult.model_dump()``: typed messages, FunctionCall lists and their execution results, a handoff."""
    path = Path(__file__).parent / "fixtures" / "autogen_agentchat.json"
    raw = json.loads(path.read_text())["messages"]
    t = load_trace(path)
    assert [s.role for s in t.steps] == ["user", "assistant", "tool", "assistant", "assistant", "assistant"]
    assert [s.agent for s in t.steps] == [m["source"] for m in raw]
    (call,) = t.steps[1].tool_calls
    req = raw[1]["content"][0]
    assert (call.name, call.id, json.loads(call.arguments)) == ("get_weather", req["id"], {"city": "New York"})
    (res,) = t.steps[2].tool_results
    assert res.call_id == req["id"] and res.name == "get_weather" and not res.is_error
    assert res.content == t.steps[2].content == raw[2]["content"][0]["content"]
    assert t.steps[2].parents == (1,)  # the result points back to the step that requested the call
    assert t.steps[4].metadata["handoff_target"] == "writer"
    assert t.steps[3].metadata["message_type"] == "ToolCallSummaryMessage"
    assert (t.steps[1].tokens_in, t.steps[1].tokens_out) == (61, 15)


def test_agentchat_results_without_a_name_take_the_calls_and_flag_errors(tmp_path: Path) -> None:
    msgs = [{"type": "ToolCallRequestEvent", "source": "assistant",
             "content": [{"id": "c1", "name": "search", "arguments": "{}"}, {"id": "c2", "name": "fetch", "arguments": "{}"}]},
            {"type": "ToolCallExecutionEvent", "source": "assistant",
             "content": [{"call_id": "c2", "content": "404", "is_error": True}, {"call_id": "c1", "content": "ok"}]}]
    t = load_trace(_write(tmp_path, "ac.json", msgs))
    assert [(r.name, r.is_error) for r in t.steps[1].tool_results] == [("fetch", True), ("search", False)]
    assert t.steps[1].parents == (0,) and t.steps[1].content == "404\nok"


def test_an_empty_chat_log_says_so(tmp_path: Path) -> None:
    p = _write(tmp_path, "empty.json", {"messages": []})
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == "messages" and "empty chat log" in e.value.message


@pytest.mark.parametrize(("agent", "message"), [(None, "expected the mistaken agent"), ("", "expected the mistaken"),
                                                ("Ghost_Agent", "is not an agent of this run")])
def test_whowhen_label_must_name_an_agent_of_the_run(tmp_path, agent, message):
    import json

    from attrib.errors import InputError
    from attrib.readers import read_path

    obj = {"question": "q", "history": [{"role": "user", "name": "A", "content": "x"},
                                         {"role": "assistant", "name": "B", "content": "y"}],
           "mistake_step": "1", "question_ID": "q1"}
    if agent is not None:
        obj["mistake_agent"] = agent
    else:
        obj["mistake_agent"] = None
    p = tmp_path / "1.json"
    p.write_text(json.dumps(obj))
    with pytest.raises(InputError, match=message) as e:
        read_path(p)
    assert e.value.field == "mistake_agent"


# --------------------------------------------------------------------------- real-world shapes (tests/fixtures)
# autogen-agentchat >= 0.5 (messages.py: ToolCallSummaryMessage carries tool_calls/results, CodeExecutionEvent a
# CodeResult in result, MultiModalMessage images as {"data": base64}, StructuredMessage[T] types), Magentic-One's
# log.jsonl (LogHandler: {timestamp, source, message, type} events and {prompt_tokens, completion_tokens,
# type: LLMCallEvent} records), LangChain messages_to_dict dumps (Anthropic content blocks, pre-0.2 tool calls
# in additional_kwargs). The OTLP ones are in test_otlp.py.

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(("name", "fmt"), [
    ("autogen_agentchat.json", "chat"), ("autogen_taskresult_v05.json", "chat"), ("magentic_one_log.jsonl", "chat"),
    ("langchain_messages.json", "chat"), ("otlp_smolagents.json", "otlp"), ("otlp_langgraph.json", "otlp"),
    ("trail_gaia.json", "otlp"), ("otel_console_spans.json", "otlp")])
def test_real_world_fixtures_are_detected_as_their_format(name: str, fmt: str) -> None:
    path = FIXTURES / name
    assert detect(path.read_bytes(), path).name == fmt
    assert [r.name for r in READERS.values() if r.sniff(path.read_bytes(), path) >= READERS[fmt].sniff(
        path.read_bytes(), path)] == [fmt]  # no other reader ties or wins


def test_autogen_05_task_result_reads_code_events_images_and_summaries() -> None:
    path = FIXTURES / "autogen_taskresult_v05.json"
    raw = json.loads(path.read_text())["messages"]
    t = load_trace(path)
    assert [s.agent for s in t.steps] == [m["source"] for m in raw]
    assert t.task == raw[0]["content"]
    kinds = {m["type"]: i for i, m in enumerate(raw)}
    # CodeExecutionEvent: no content field, its CodeResult output is the text; it runs the code generated before
    run = t.steps[kinds["CodeExecutionEvent"]]
    assert (run.role, run.content, run.parents) == ("tool", "2024-01\n", (kinds["CodeGenerationEvent"],))
    assert run.tool_results[0].name == "code_execution" and not run.tool_results[0].is_error
    # ToolCallSummaryMessage repeats the request's calls: the request keeps them, the result links to it
    assert t.steps[kinds["ToolCallSummaryMessage"]].tool_calls == ()
    assert t.steps[kinds["ToolCallExecutionEvent"]].parents == (kinds["ToolCallRequestEvent"],)
    # a chart image is no text (and its base64 stays out); the speaker selection is a name
    assert t.steps[kinds["MultiModalMessage"]].content == "Here is the chart; the best month is 2024-01.\n<image>"
    assert t.steps[kinds["SelectSpeakerEvent"]].content == "analyst"
    # a StructuredMessage[T] speaks as an assistant; the user proxy's input request as the user
    assert t.steps[kinds["StructuredMessage[Review]"]].role == "assistant"
    assert json.loads(t.steps[kinds["StructuredMessage[Review]"]].content)["best_month"] == "2024-01"
    assert t.steps[kinds["UserInputRequestedEvent"]].role == "user"


def test_magentic_one_log_reads_without_format_and_folds_the_orchestrator() -> None:
    path = FIXTURES / "magentic_one_log.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    events = [m for m in raw if m["type"] != "LLMCallEvent"]
    t = load_trace(path)
    assert t.n_steps == len(events) and t.agents == ("Orchestrator", "WebSurfer")
    assert [s.content for s in t.steps] == [m["message"] for m in events]
    assert [s.metadata.get("raw_name", s.agent) for s in t.steps] == [m["source"] for m in events]
    # the LLM call's token counts go to the step it produced
    assert (t.steps[1].tokens_in, t.steps[1].tokens_out) == (1422, 188)
    # a WebSurferEvent is a browser action: a tool call with its arguments, the page in metadata
    (call,) = t.steps[2].tool_calls
    assert (call.name, json.loads(call.arguments)) == ("input_text", raw[3]["arguments"])
    assert t.steps[2].metadata["url"] == raw[3]["url"]


def test_langchain_dump_joins_content_blocks_and_reads_old_tool_calls() -> None:
    t = load_trace(FIXTURES / "langchain_messages.json")
    assert t.task == "Who directed the film that won Best Picture in 1998?"
    # Anthropic blocks: thinking and text joined; the tool_use block is the tool call, not JSON in the text
    assert t.steps[2].content == ("Best Picture in 1998 means the 70th Academy Awards.\n"
                                  "I'll look up the 1998 Best Picture winner.")
    assert [c.id for c in t.steps[2].tool_calls] == ["toolu_01A9"] and t.steps[3].parents == (2,)
    assert t.steps[3].content.endswith("directed by James Cameron.")  # a tool message's text blocks, joined
    # LangChain < 0.2: the calls only in additional_kwargs.tool_calls; the result still links to them
    (call,) = t.steps[4].tool_calls
    assert (call.name, call.id, json.loads(call.arguments)) == ("wikipedia", "call_old1", {"query": "Titanic director"})
    assert t.steps[5].parents == (4,) and t.steps[5].tool_results[0].name == "wikipedia"
    # an image block is no text: a placeholder, not its base64
    assert t.steps[6].content == "The 1998 Best Picture, Titanic, was directed by James Cameron.\n<image>"


def test_json_lines_errors_name_the_file_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "log.jsonl", "\n".join([json.dumps({"role": "user", "content": "hi"}), "",
                                                 json.dumps({"role": "assistant", "name": "Bot"})]) + "\n")
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == "line 3.content"  # the file's line, 1-based (was "line[1]")


def test_json_lines_cut_mid_file_says_the_line_ends_not_the_file(tmp_path: Path) -> None:
    good = [json.dumps({"role": "user", "content": "hi"}), json.dumps({"role": "assistant", "name": "B", "content": "yo"})]
    cut = json.dumps({"role": "assistant", "name": "A", "content": "half"})[:-10]
    p = _write(tmp_path, "log.jsonl", "\n".join([good[0], cut, good[1]]) + "\n")
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == f"line 2 col {len(cut) + 1}"
    assert e.value.message.startswith("line ends in the middle of a JSON value") and "file ends" not in e.value.message
    p = _write(tmp_path, "log.jsonl", "\n".join([good[0], good[1], cut]) + "\n\n")  # the last line: the file's end
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == f"line 3 col {len(cut) + 1}"
    assert e.value.message == "file ends in the middle of a JSON value (truncated?)"


def test_a_bare_message_list_names_what_the_file_has(tmp_path: Path) -> None:
    """A file that is the list itself has no 'messages' key: a message is [i] (its JSON path), as a JSON Lines
    message is its line and one inside an object messages[i]."""
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "name": "A", "content": "ok"},
            {"role": "assistant", "name": "B"}]
    with pytest.raises(InputError) as e:
        read_path(_write(tmp_path, "list.json", msgs))
    assert e.value.field == "[2].content" and "missing" in e.value.message
    msgs[2] = {"role": "assistant", "name": 7, "content": "x"}
    with pytest.raises(InputError) as e:
        read_path(_write(tmp_path, "list.json", msgs))
    assert e.value.field == "[2].name"
    msgs[2] = {"role": "assistant", "name": "B", "content": "x", "tool_calls": [{"id": "c1"}]}
    with pytest.raises(InputError) as e:
        read_path(_write(tmp_path, "list.json", msgs))
    assert e.value.field == "[2].tool_calls[0].name"
    with pytest.raises(InputError) as e:
        read_path(_write(tmp_path, "obj.json", {"messages": msgs}))
    assert e.value.field == "messages[2].tool_calls[0].name"  # inside an object: the key it has
    with pytest.raises(InputError) as e:
        read_path(_write(tmp_path, "empty.json", []), format="chat")
    assert e.value.field is None and "empty chat log" in e.value.message  # the file itself, no 'messages' field
    lines = "\n".join(json.dumps(m) for m in ({"type": "LLMCallEvent", "prompt_tokens": 3, "source": "x"},) * 2)
    with pytest.raises(InputError) as e:
        read_path(_write(tmp_path, "tokens.jsonl", lines + "\n"), format="chat")
    assert e.value.field is None and "only token-count records" in e.value.message


def test_activation_formats_follow_the_suffix_the_way_activations_reads_it(tmp_path: Path) -> None:
    """``.PTH`` is pt (not the raw suffix 'PTH'), an unknown suffix (or declared format) is kept so opening it names
    it, none is safetensors, and a declared format wins; the chat and OTLP readers share the rule."""
    msgs = [
        {"role": "user", "content": "task"},
        {"role": "assistant", "name": "A", "content": "a", "activation": {"path": "step_1.PTH"}},
        {"role": "assistant", "name": "B", "content": "b", "activation": {"path": "step_2.h5"}},
        {"role": "assistant", "name": "C", "content": "c", "activation": {"path": "step_3"}},
        {"role": "assistant", "name": "D", "content": "d", "activation": {"path": "x.npz", "format": "pt"}},
        {"role": "assistant", "name": "E", "content": "e", "activation": {"path": "x.npz", "format": "pth"}},
        {"role": "assistant", "name": "F", "content": "f", "activation": {"path": "x.npz", "format": "hdf"}},
    ]
    p = tmp_path / "run.json"
    p.write_text(json.dumps(msgs))
    formats = [s.activation.format for s in load_trace(p).steps if s.activation is not None]
    assert formats == ["pt", "h5", "safetensors", "pt", "pt", "hdf"]  # a declared pth is pt too, as a suffix


def test_read_sources_with_seen_refuses_an_id_from_two_files_naming_both(bundled: Path, tmp_path: Path) -> None:
    """The repeated-id check `eval traces`, `fit` and `ingest` share: the later file fails naming the earlier one,
    the others are still read; without ``seen`` (analyze) repeats are kept."""
    from attrib.errors import AttribError
    from attrib.readers import read_sources

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "chat.json").write_bytes((bundled / "chat_langgraph.json").read_bytes())
    a, b = tmp_path / "a" / "chat.json", tmp_path / "b" / "chat.json"
    assert [t.id for t, _ in read_sources([tmp_path])] == ["chat-chat", "chat-chat"]
    with pytest.raises(InputError, match="'chat-chat' was already read from") as e:
        read_sources([tmp_path], seen={})
    assert e.value.field == "id" and str(a) in str(e.value) and str(b) in str(e.value)
    errors: list[AttribError] = []
    seen: dict[str, str] = {}
    assert [f for _, f in read_sources([tmp_path], errors=errors, seen=seen)] == [a]
    assert len(errors) == 1 and str(b) in str(errors[0]) and seen == {"chat-chat": str(a)}


def test_a_format_that_does_not_fit_says_which_one_does(bundled: Path) -> None:
    """--format whowhen on a chat log: the reader's own field error, plus that the file looks like chat; a broken
    file of the chosen format keeps its plain field error (no other reader claims it)."""
    from attrib.readers import FormatError

    with pytest.raises(FormatError) as e:
        read_path(bundled / "chat_langgraph.json", format="whowhen")
    assert e.value.field == "format" and e.value.exit_code == 3
    assert "history: missing required field" in e.value.message and "looks like chat" in e.value.message
    assert e.value.as_flag().startswith(f"{bundled / 'chat_langgraph.json'}: --format: 'whowhen' does not fit")
    with pytest.raises(InputError) as e2:
        read_bytes(b'{"question": "q", "history": 3}', "w.json", format="whowhen")
    assert not isinstance(e2.value, FormatError) and e2.value.field == "history"


def test_attrib_json_errors_name_the_field_not_msgspec_wording() -> None:
    """Validation errors of attrib's own JSON: the missing key is the field, paths without msgspec's ``$.``."""
    with pytest.raises(InputError) as e:
        read_bytes(b'{"source_format": "chat", "steps": []}', "t.json", format="attrib")
    assert (e.value.field, e.value.message) == ("id", "missing required field")
    with pytest.raises(InputError) as e:
        read_bytes(b'{"id": "x", "source_format": "chat", "steps": [{"index": "0", "agent": "a"}]}', "t.json",
                   format="attrib")
    assert (e.value.field, e.value.message) == ("steps[0].index", "expected int, got str")


def test_a_message_type_that_is_not_text_is_one_error(tmp_path) -> None:
    """A chat message whose "type" was a list crashed the reader with "unhashable type: 'list'" (found by the
    hypothesis test in tests/test_bad_input.py)."""
    import pytest

    from attrib.errors import InputError
    from attrib.readers import read_path

    p = tmp_path / "odd.json"
    p.write_text('[{"type": []}]')
    with pytest.raises(InputError):
        read_path(p, "chat")
