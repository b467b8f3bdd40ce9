"""Chat logs as AutoGen (0.2, AgentChat, autogen-core), Magentic-One, LangGraph and plain loggers write them,
including stream dumps; each case is a defect a walkthrough found (fixtures in tests/fixtures/frameworks, made by
the walkthrough's generators after the frameworks' own dump shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import InputError
from attrib.readers import load_trace, read_path

FIXTURES = Path(__file__).parent / "fixtures" / "frameworks"
runner = CliRunner()


def _write(tmp_path: Path, name: str, data: object) -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def _error(path: Path) -> InputError:
    with pytest.raises(InputError) as e:
        read_path(path)
    return e.value


# --------------------------------------------------------------------------- the unknown-shape line (#10)

def test_an_unknown_shape_says_what_was_looked_for_and_blames_no_flag() -> None:
    """A CrewAI tasks_output dump fits no reader: the line names the keys found and the ones each format reads,
    not a --format flag the user never gave."""
    path = FIXTURES / "crew_output.json"
    e = _error(path)
    assert e.field is None
    assert "unknown format" in e.message and "raw, tasks_output, token_usage" in e.message
    for wanted in ("'messages'", "'history'", "'resourceSpans'", "'source_format'", "'content'"):
        assert wanted in e.message, wanted
    r = runner.invoke(app, ["traces", "show", str(path)])
    assert r.exit_code == 3
    (line,) = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert "--format" not in line and line.startswith(f"error: {path}: unknown format: it has the keys")


def test_an_unknown_list_says_what_it_holds(tmp_path: Path) -> None:
    e = _error(_write(tmp_path, "odd.json", [1, 2, 3]))
    assert e.field is None and "a list whose first item is a number" in e.message


# --------------------------------------------------------------------------- Magentic-One names (#11)

def test_magentic_one_04_orchestrator_folds_like_the_log_names() -> None:
    """MagenticOneGroupChat (AutoGen 0.4) writes 'MagenticOneOrchestrator'; Magentic-One's log and Who&When write
    'Orchestrator (thought)': both are the agent Orchestrator, so `traces list --agent Orchestrator` finds both."""
    t = load_trace(FIXTURES / "m1_groupchat04.json")
    assert t.agents[:2] == ("user", "Orchestrator")
    assert {s.metadata.get("raw_name") for s in t.steps if s.agent == "Orchestrator"} == {"MagenticOneOrchestrator"}
    assert load_trace(FIXTURES / "m1_log.jsonl").agents[1] == "Orchestrator"


# --------------------------------------------------------------------------- values checked, not converted (#5, #13)

def test_text_only_under_result_is_refused_not_read_as_empty(tmp_path: Path) -> None:
    """`result` is text only in an AutoGen CodeExecutionEvent; elsewhere a message with nothing but `result` was a
    blank step that was then analyzed."""
    msgs = [{"role": "user", "content": "What is 2+3?"}, {"name": "solver", "result": "the answer is 6"}]
    e = _error(_write(tmp_path, "result_key.json", {"messages": msgs, "outcome": "failed"}))
    assert e.field == "messages[1].content" and "'result'" in e.message and "CodeExecutionEvent" in e.message
    crew = [{"agent": "Senior Researcher", "thought": "I need to search", "tool": "Search the internet",
             "tool_input": "{}", "result": "ACME revenue 12.3B USD"}, {"agent": "Analyst", "result": "11.44"}]
    p = _write(tmp_path, "crew_steps.jsonl", "\n".join(json.dumps(x) for x in crew) + "\n")
    with pytest.raises(InputError) as e2:
        read_path(p, format="chat")
    assert e2.value.field == "line 1.content"


@pytest.mark.parametrize(("message", "field", "words"), [
    ({"role": "assistant", "name": "a", "content": 12345}, "[1].content", "got a number 12345"),
    ({"role": "assistant", "name": "a", "content": {"answer": "x"}}, "[1].content", "got an object"),
    ({"role": "assistant", "name": "a", "content": None}, "[1].content", "null"),
    ({"role": "assistant", "name": "a", "text": True}, "[1].text", "got a boolean"),
    ({"source": 5, "content": "x", "type": "TextMessage"}, "[1].source", "expected a string, got a number"),
    ({"role": "assistant", "name": ["a"], "content": "x"}, "[1].name", "expected a string, got a list"),
    ({"role": "assistant", "name": "a", "content": "hi", "timestamp": "yesterday"}, "[1].timestamp",
     "'yesterday' is not a time"),
    ({"role": "assistant", "name": "a", "content": "hi", "created_at": -5}, "[1].created_at", "before 1970"),
    ({"role": 3, "name": "a", "content": "hi"}, "[1].role", "expected a string, got a number"),
])
def test_a_value_of_the_wrong_kind_is_refused_naming_its_field(tmp_path: Path, message: dict, field: str,
                                                               words: str) -> None:
    e = _error(_write(tmp_path, "bad.json", [{"role": "user", "content": "q"}, message]))
    assert e.field == field and words in e.message, e


def test_null_messages_are_named_as_json_says_it(tmp_path: Path) -> None:
    e = _error(_write(tmp_path, "nullmsgs.json", {"messages": None}))
    assert (e.field, e.message) == ("messages", "expected a list of messages, got null")


def test_null_text_is_fine_beside_tool_calls_and_a_refusal_is_the_text(tmp_path: Path) -> None:
    """OpenAI writes content null on a message that only calls tools, and on a refusal (its text in `refusal`);
    an AutoGen StructuredMessage's content is an object (its JSON is the text); times in ISO-8601 or numbers."""
    msgs = [{"role": "user", "content": "q", "timestamp": 1714557600},
            {"role": "assistant", "name": "a", "content": None, "created_at": "2024-05-01T10:00:00Z",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "assistant", "name": "a", "content": None, "refusal": "I can't help with that."},
            {"source": "critic", "type": "StructuredMessage[Review]", "content": {"ok": False}}]
    t = load_trace(_write(tmp_path, "ok.json", msgs))
    assert [s.content for s in t.steps] == ["q", "", "ok", "I can't help with that.", '{"ok":false}']
    assert t.steps[0].start_time == 1714557600 and t.steps[1].start_time == 1714557600


# --------------------------------------------------------------------------- roles (#9, #12)

def test_autogen_core_llm_context_reads_calls_results_and_roles() -> None:
    """model_context.get_messages() / save_state(): AssistantMessage's FunctionCall list is its tool calls,
    FunctionExecutionResultMessage the results, named after the call (it was a role and agent verbatim)."""
    t = load_trace(FIXTURES / "ag_core_ctx.json")
    assert [(s.agent, s.role) for s in t.steps] == [("system", "system"), ("user", "user"),
                                                   ("weather_agent", "assistant"), ("get_weather", "tool"),
                                                   ("weather_agent", "assistant")]
    assert t.task == "What is the weather in Paris in Fahrenheit?"
    (call,) = t.steps[2].tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == ("call_1", "get_weather",
                                                                {"city": "Paris", "unit": "celsius"})
    assert t.steps[2].content == ""
    (res,) = t.steps[3].tool_results
    assert (res.call_id, res.name, res.content, t.steps[3].parents) == ("call_1", "get_weather", "18 C", (2,))
    assert t.steps[3].metadata["message_type"] == "FunctionExecutionResultMessage"


def test_role_words_map_to_the_four_roles_and_unknown_ones_are_kept_aside(tmp_path: Path) -> None:
    """A role or type word is read as user, assistant, system or tool; an unknown one is an assistant's (a human
    name's, a user's) and stays in metadata, instead of becoming a fifth role verbatim."""
    msgs = [{"role": "developer", "content": "Be brief."}, {"role": "customer", "content": "My order is late."},
            {"role": "Planner", "content": "Check the order."}, {"role": "model", "name": "gem", "content": "ok"},
            {"speaker": "a", "type": "message", "text": "hi"}, {"type": "AIMessageChunk", "name": "b", "content": "x"}]
    t = load_trace(_write(tmp_path, "roles.json", msgs))
    assert [(s.agent, s.role) for s in t.steps] == [("system", "system"), ("customer", "user"),
                                                   ("Planner", "assistant"), ("gem", "assistant"),
                                                   ("a", "assistant"), ("b", "assistant")]
    assert t.steps[1].metadata["raw_role"] == "customer" and t.steps[2].metadata["raw_role"] == "Planner"
    assert t.steps[4].metadata["message_type"] == "message"
    assert t.task == "My order is late."


def test_a_human_named_first_speaker_asks_the_task() -> None:
    """Plain logs and Magentic-One's log have no role: a human's name (user, UserProxy) makes the step the user's,
    and its text the task."""
    t = load_trace(FIXTURES / "plain.jsonl")
    assert (t.steps[0].agent, t.steps[0].role) == ("user", "user")
    assert t.task == "Find the 2023 revenue of ACME in EUR." and {s.role for s in t.steps[1:]} == {"assistant"}
    m1 = load_trace(FIXTURES / "m1_log.jsonl")
    assert (m1.steps[0].agent, m1.steps[0].role) == ("UserProxy", "user")
    assert m1.task.startswith("Book the cheapest direct flight")


def test_an_agentchat_user_proxy_speaks_as_the_user(tmp_path: Path) -> None:
    msgs = [{"source": "user_proxy", "type": "TextMessage", "content": "Plan a trip."},
            {"source": "planner", "type": "TextMessage", "content": "Day 1: Rome."}]
    t = load_trace(_write(tmp_path, "proxy.json", {"messages": msgs}))
    assert [s.role for s in t.steps] == ["user", "assistant"] and t.task == "Plan a trip."


# --------------------------------------------------------------------------- AutoGen 0.2 tool_responses (#8)

def test_autogen_02_tool_responses_link_each_result_to_its_call(tmp_path: Path) -> None:
    """groupchat.messages: the executor's {role: tool, tool_responses: [{tool_call_id, content}]} answers the calls
    by id (results were unlinked and named after the executor)."""
    t = load_trace(FIXTURES / "ag02_groupchat.json")
    tools = [s for s in t.steps if s.role == "tool"]
    assert [(s.agent, s.parents, [(r.call_id, r.name) for r in s.tool_results]) for s in tools] == [
        ("Executor", (2,), [("call_1", "search_flights")]), ("Executor", (5,), [("call_2", "convert_currency")]),
        ("Executor", (8,), [("call_3", "book_flight")])]
    # parallel calls answered in one message, out of order; content null: the responses are the text
    calls = [{"id": c, "type": "function", "function": {"name": n, "arguments": "{}"}} for c, n in
             (("a", "weather"), ("b", "time"))]
    msgs = [{"role": "user", "name": "u", "content": "q"},
            {"role": "assistant", "name": "Bot", "content": None, "tool_calls": calls},
            {"role": "tool", "name": "Executor", "content": None,
             "tool_responses": [{"tool_call_id": "b", "role": "tool", "content": "12:00"},
                                {"tool_call_id": "a", "role": "tool", "content": "sunny"}]}]
    step = load_trace(_write(tmp_path, "parallel.json", msgs)).steps[2]
    assert [(r.call_id, r.name, r.content) for r in step.tool_results] == [("b", "time", "12:00"),
                                                                          ("a", "weather", "sunny")]
    assert step.parents == (1,) and step.content == "12:00\nsunny"
    msgs[2]["tool_responses"] = {"tool_call_id": "a"}
    assert _error(_write(tmp_path, "bad.json", msgs)).field == "[2].tool_responses"


# --------------------------------------------------------------------------- stream dumps (#3, #4)

def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _steps(t: object) -> list[tuple]:
    return [(s.agent, s.role, s.content, s.parents, [c.id for c in s.tool_calls]) for s in t.steps]  # type: ignore[attr-defined]


def test_langgraph_updates_chunks_are_one_run_whatever_the_file_shape(tmp_path: Path) -> None:
    """stream_mode="updates" chunks ({node: {messages}}) as JSON Lines or a JSON list: one run of every message the
    nodes added, in order (they were refused as messages without content)."""
    path = FIXTURES / "lg_updates.jsonl"
    chunks = _lines(path)
    t = load_trace(path)
    added = [m for c in chunks for u in c.values() for m in u["messages"]]
    assert t.n_steps == len(added) and [s.content for s in t.steps] == [m["content"] for m in added]
    assert t.agents[:3] == ("supervisor", "transfer_to_researcher", "researcher")
    assert t.steps[3].parents == (2,) and t.steps[3].tool_results[0].name == "hotel_rate"
    as_list = load_trace(_write(tmp_path, "updates.json", chunks))
    assert _steps(as_list) == _steps(t)


def test_a_langgraph_node_is_the_agent_of_the_messages_it_adds(tmp_path: Path) -> None:
    """create_react_agent's nodes add unnamed messages: the node names their agent; a message's own name wins."""
    call = {"name": "search", "args": {"q": "x"}, "id": "c1", "type": "tool_call"}
    chunks = [{"agent": {"messages": [{"type": "ai", "name": None, "content": "", "tool_calls": [call]}]}},
              {"tools": {"messages": [{"type": "tool", "name": "search", "content": "42", "tool_call_id": "c1"}]}},
              {"agent": {"messages": [{"type": "ai", "name": "solver", "content": "It is 42."}]}},
              {"__interrupt__": [{"value": "approve?", "resumable": True}]}]
    t = load_trace(_write(tmp_path, "react.jsonl", "\n".join(json.dumps(c) for c in chunks) + "\n"))
    assert [(s.agent, s.role, s.parents) for s in t.steps] == [("agent", "assistant", ()), ("search", "tool", (0,)),
                                                              ("solver", "assistant", ())]
    one = load_trace(_write(tmp_path, "one.jsonl", json.dumps(chunks[2]) + "\n"))  # a stream of one chunk
    assert [(s.agent, s.content) for s in one.steps] == [("solver", "It is 42.")]


def test_updates_chunks_that_do_not_hang_together_are_refused(tmp_path: Path) -> None:
    chunk = {"agent": {"messages": [{"type": "ai", "content": "hi"}]}}
    mixed = [{"type": "human", "content": "q"}, chunk]
    e = _error(_write(tmp_path, "mixed.json", mixed))
    assert e.field == "[1]" and "stream_mode" in e.message and "updates" in e.message
    plan = _write(tmp_path, "plan.jsonl", json.dumps({"planner": {"plan": ["a"]}}) + "\n"
                  + json.dumps({"executor": {"past_steps": []}}) + "\n")
    with pytest.raises(InputError, match="no 'messages' in any LangGraph"):  # no text at all: no format detected
        read_path(plan, format="chat")
    e = _error(_write(tmp_path, "bad.jsonl", json.dumps({"agent": {"messages": "hi"}}) + "\n" + json.dumps(chunk)))
    assert e.field == "line 1.agent.messages"


def test_langgraph_values_states_read_as_their_last_state(tmp_path: Path) -> None:
    """stream_mode="values": each line the whole state so far; the run is the last one (it was 6 traces, each a
    prefix of the run)."""
    path = FIXTURES / "lg_values.jsonl"
    states = _lines(path)
    (t,) = read_path(path)
    last = load_trace(_write(tmp_path, "last.json", states[-1]))
    assert t.id == "chat-lg_values" and _steps(t) == _steps(last) and t.n_steps == len(states[-1]["messages"])
    assert t.task.startswith("What is the total cost in USD")
    (as_list,) = read_path(_write(tmp_path, "values.json", states))
    assert _steps(as_list) == _steps(t)


def test_values_states_that_stop_growing_are_refused_not_guessed(tmp_path: Path) -> None:
    states = _lines(FIXTURES / "lg_values.jsonl")
    other = {"messages": [{"type": "human", "content": "another question"}]}
    p = _write(tmp_path, "two_runs.jsonl", "\n".join(json.dumps(s) for s in [*states[:3], other]) + "\n")
    e = _error(p)
    assert e.field == "line 4.messages" and "line 3" in e.message and "stream_mode" in e.message
    # runs that say who they are stay one trace a line, even when one starts like the next
    runs = [{"id": f"r{i}", **s} for i, s in enumerate(states[:2])]
    p = _write(tmp_path, "runs.jsonl", "\n".join(json.dumps(r) for r in runs) + "\n")
    assert [t.id for t in read_path(p)] == ["r0", "r1"]


def test_autogen_run_stream_drops_chunks_and_the_closing_task_result() -> None:
    """run_stream yields ModelClientStreamingChunkEvent pieces before the whole message, and the TaskResult last:
    the pieces were steps of their own, the TaskResult line refused."""
    path = FIXTURES / "ag04_run_stream.jsonl"
    lines = _lines(path)
    messages = [m for m in lines[:-1] if m["type"] != "ModelClientStreamingChunkEvent"]
    assert len(messages) < len(lines) - 1 and set(lines[-1]) >= {"messages", "stop_reason"}
    t = load_trace(path)
    assert t.n_steps == len(messages) and [s.agent for s in t.steps] == [m["source"] for m in messages]
    assert t.steps[1].content == messages[1]["content"] and not any(s.content == "Plan: " for s in t.steps)
    assert t.task == messages[0]["content"]


@pytest.mark.parametrize("shape", ["no_task_result", "only_task_result_jsonl", "only_task_result_json"])
def test_autogen_run_stream_reads_the_same_in_every_shape(tmp_path: Path, shape: str) -> None:
    lines = _lines(FIXTURES / "ag04_run_stream.jsonl")
    want = _steps(load_trace(FIXTURES / "ag04_run_stream.jsonl"))
    if shape == "no_task_result":
        p = _write(tmp_path, "s.jsonl", "\n".join(json.dumps(m) for m in lines[:-1]) + "\n")
    elif shape == "only_task_result_jsonl":
        p = _write(tmp_path, "s.jsonl", json.dumps(lines[-1]) + "\n")
    else:
        p = _write(tmp_path, "s.json", lines[-1])
    assert _steps(load_trace(p)) == want


def test_a_task_result_that_is_not_the_lines_before_is_refused(tmp_path: Path) -> None:
    lines = _lines(FIXTURES / "ag04_run_stream.jsonl")
    lines[-1] = {**lines[-1], "messages": lines[-1]["messages"][:3]}
    e = _error(_write(tmp_path, "s.jsonl", "\n".join(json.dumps(m) for m in lines) + "\n"))
    assert e.field == f"line {len(lines)}" and "TaskResult" in e.message
    e = _error(_write(tmp_path, "mid.jsonl", "\n".join(json.dumps(m) for m in [lines[-1], *lines[:3]]) + "\n"))
    assert e.field == "line 1" and "TaskResult" in e.message
