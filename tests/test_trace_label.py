"""A label whose agent did not write the labelled step: a warning (``Trace.label_mismatch``) in ``attrib traces show``,
not an error, and quiet for a tool or executor step answering the labelled agent (Who&When labels a
Computer_terminal step with the expert who ran the code)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
from typer.testing import CliRunner

from attrib.cli import app
from attrib.readers import load_trace
from attrib.trace import Label, Step, ToolCall, ToolResult, Trace, tool_agents

runner = CliRunner()

#: A LangGraph refund run labelled at step 3, the get_order tool result: the user counted messages without the tool
#: results (the mistake is calculator's step 4).
REFUND = json.loads((Path(__file__).parent / "fixtures" / "lg_refund.json").read_text())


def _write(tmp_path: Path, obj: dict, name: str = "lg_refund.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def _trace(agents: list[tuple[str, str]], label: tuple[str, int], parents: dict[int, tuple[int, ...]] | None = None
           ) -> Trace:
    steps = tuple(Step(index=i, agent=a, role=r, content=f"step {i}", parents=(parents or {}).get(i, ()))
                  for i, (a, r) in enumerate(agents))
    return Trace(id="t", source_format="attrib", steps=steps, label=Label(mistake_agent=label[0], mistake_step=label[1]))


def test_a_label_on_a_tool_result_of_another_agent_is_named(tmp_path: Path) -> None:
    why = load_trace(_write(tmp_path, REFUND)).label_mismatch()
    assert why is not None
    assert "step 3 was written by get_order, a tool answering order_lookup, not by calculator" in why
    assert "calculator's nearest step is 4" in why and "\n" not in why


def test_no_warning_when_the_agent_wrote_the_step_or_its_tool_answered_it(tmp_path: Path) -> None:
    assert load_trace(_write(tmp_path, {**REFUND, "mistake_step": 4})).label_mismatch() is None
    # the tool result answers order_lookup's call: labelling order_lookup there is the tool's output it asked for
    assert load_trace(_write(tmp_path, {**REFUND, "mistake_agent": "order_lookup"})).label_mismatch() is None
    # Who&When: a Computer_terminal step (role user, no parent links) labelled with the expert who ran the code
    ww = _trace([("user", "user"), ("Expert", "assistant"), ("Computer_terminal", "user")], ("Expert", 2))
    assert ww.label_mismatch() is None
    # ... but not with another expert
    other = _trace([("Planner", "assistant"), ("Expert", "assistant"), ("Computer_terminal", "user")], ("Planner", 2))
    assert "a tool answering Expert" in str(other.label_mismatch())
    # a step of another agent (no tool): named, and where the labelled agent is when it is near
    far = _trace([("a", "assistant")] + [("b", "assistant")] * 5, ("a", 5))
    assert far.label_mismatch() == ("step 5 was written by b, not by a; a writes no step within 3 of it (steps count "
                                    "every message from 0, tool results included)")
    assert _trace([("a", "assistant")], ("a", 0)).unlabelled().label_mismatch() is None


def test_who_and_when_labels_rarely_warn(whowhen_dir: Path) -> None:
    """Who&When holds 6 labels whose agent did not write the step; the 2 on a Computer_terminal step that answers
    the labelled expert are quiet, the other 4 are real mismatches of the benchmark's annotation."""
    from attrib.readers import read_paths

    traces = read_paths([whowhen_dir])
    differ = [t.id for t in traces if t.label and t.steps[t.label.mistake_step].agent != t.label.mistake_agent]
    warned = [t.id for t in traces if t.label_mismatch()]
    assert len(differ) == 6 and set(warned) < set(differ)
    assert sorted(warned) == ["whowhen-algorithm-15", "whowhen-hand-20", "whowhen-hand-22", "whowhen-hand-49"]


def test_traces_show_warns_next_to_the_annotated_mistake(tmp_path: Path) -> None:
    path = _write(tmp_path, REFUND)
    r = runner.invoke(app, ["traces", "show", str(path)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("annotated mistake: calculator at step 3"))
    assert lines[at + 1].startswith("warning: step 3 was written by get_order, a tool answering order_lookup")
    # from the store, for a window of steps that does not hold the labelled one
    store = tmp_path / "s.duckdb"
    assert runner.invoke(app, ["ingest", str(path), "--store", str(store), "-q"]).exit_code == 0
    r = runner.invoke(app, ["traces", "show", "chat-lg_refund", "--store", str(store), "--steps", "0-1"],
                      env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "warning: step 3 was written by get_order" in r.output, r.output
    ok = _write(tmp_path, {**REFUND, "mistake_step": 4}, "ok.json")
    assert "warning" not in runner.invoke(app, ["traces", "show", str(ok)], env={"COLUMNS": "250"}).output


def test_tools_are_told_apart_from_agents(tmp_path: Path) -> None:
    t = load_trace(_write(tmp_path, REFUND))
    assert tool_agents(t.steps) == ("get_order",)
    # an agent that only ran tools (an OTLP tool span names its agent, not the tool) is no tool
    s = Step(index=0, agent="searcher", role="tool", tool_results=(ToolResult(content="x", name="search"),))
    assert tool_agents([s]) == ()
    r = runner.invoke(app, ["traces", "show", str(tmp_path / "lg_refund.json")], env={"COLUMNS": "250"})
    assert "agents: user, supervisor, order_lookup, calculator, reviewer  tools: get_order" in r.output, r.output


def test_the_label_check_and_the_agent_game_name_one_caller() -> None:
    """A tool step counts to one agent, for the ranker's agent game (``learned._deciders``) and the label check alike
    (both ask ``attrib.trace.deciding_agent``). They differed: on a tool answering a tool answering planner the label
    warning named "a tool answering search_tool" while the blame went to planner, and with two parents the label check
    took the first, the game the latest that is no tool."""
    from attrib.methods.learned import _deciders
    from attrib.trace import deciding_agent

    t = _trace([("planner", "assistant"), ("writer", "assistant"), ("search_tool", "tool"), ("fetch_tool", "tool"),
                ("merge_tool", "tool")], ("planner", 3), {2: (0,), 3: (2,), 4: (0, 1)})
    callers = {3: "planner", 4: "writer"}  # 3: through the chain 3 -> 2 -> 0; 4: the latest of its parents
    owners = _deciders(t.unlabelled())
    for i, caller in callers.items():
        assert owners[i] == deciding_agent(i, t.steps.__getitem__) == caller
        ok = msgspec.structs.replace(t, label=Label(mistake_agent=caller, mistake_step=i))
        assert ok.label_mismatch() is None  # labelling the caller is labelling the step whose blame it gets
        other = "writer" if caller == "planner" else "planner"
        warned = msgspec.structs.replace(t, label=Label(mistake_agent=other, mistake_step=i)).label_mismatch()
        assert warned is not None and warned.startswith(f"step {i} was written by {t.steps[i].agent}, a tool "
                                                        f"answering {caller}, not by {other}"), warned
    # without parents, the last deciding agent before it, for both
    bare = msgspec.structs.replace(t, steps=tuple(msgspec.structs.replace(s, parents=()) for s in t.steps))
    assert _deciders(bare.unlabelled())[2:] == ["writer"] * 3
    assert msgspec.structs.replace(bare, label=Label(mistake_agent="writer", mistake_step=4)).label_mismatch() is None


def test_where_tool_steps_blame_went_is_a_rule_of_the_trace_model() -> None:
    """``tools_to_callers`` (each method's ``evidence["tool_steps_to_caller"]``) lives in ``attrib.trace`` beside
    ``deciding_agents``, free of networkx: one entry per (tool, caller), its steps in run order."""
    from attrib.trace import deciding_agents, tool_steps, tools_to_callers

    t = _trace([("planner", "assistant"), ("search_tool", "tool"), ("writer", "assistant"), ("search_tool", "tool"),
                ("search_tool", "tool")], ("planner", 0), {1: (0,), 3: (2,), 4: (0,)})
    owners = deciding_agents(t.steps, tool_steps(t.steps))
    assert tools_to_callers(t.steps, owners) == [{"agent": "search_tool", "caller": "planner", "steps": [1, 4]},
                                                  {"agent": "search_tool", "caller": "writer", "steps": [3]}]
    assert tools_to_callers(t.steps, [s.agent for s in t.steps]) == []


def test_tool_steps_are_told_by_one_rule() -> None:
    """``attrib.features.text.is_tool_agent`` is the trace model's (one pattern, no copy kept in sync by a test), and
    a tool step is a step of such an agent or role."""
    import attrib.features.text as text
    import attrib.trace as trace

    assert text.is_tool_agent is trace.is_tool_agent
    assert trace.is_tool_step(Step(index=0, agent="Computer_terminal", role="user"))
    assert trace.is_tool_step(Step(index=0, agent="get_order", role="tool"))
    assert not trace.is_tool_step(Step(index=0, agent="Expert", role="assistant"))


def test_the_one_pass_rule_agrees_with_the_per_step_rule_on_random_runs() -> None:
    """The agent game asks ``deciding_agents`` (one pass), the label check ``deciding_agent`` (one step): the same
    rule twice by construction, so pin them equal on random runs of tools with and without parents."""
    import random

    from attrib.trace import Step, deciding_agent, deciding_agents

    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 12)
        steps, tools = [], []
        for j in range(n):
            tool = rng.random() < 0.5
            k = rng.randint(0, min(2, j)) if rng.random() < 0.6 else 0
            steps.append(Step(index=j, agent=f"t{j}" if tool else rng.choice("abc"), role="tool" if tool else "user",
                              content="x", parents=tuple(sorted(rng.sample(range(j), k)))))
            tools.append(tool)
        assert deciding_agents(steps, tools) == [deciding_agent(i, steps.__getitem__, tools.__getitem__)
                                                 for i in range(n)]


def test_a_tool_is_named_by_whole_words_and_never_calls_tools() -> None:
    """Any agent whose name held "computer", "tool", "executor"... was a tool, its blame moved to another agent:
    Who&When's ``WomenInComputerScienceHistory_Expert`` (Algorithm-Generated 26, the annotated agent) and a
    LangGraph plan-and-execute ``executor`` node, an LLM agent that calls the tools."""
    from attrib import trace

    for name in ("Computer_terminal", "ComputerTerminal", "code_executor", "python_repl", "Tool", "shell"):
        assert trace.is_tool_agent(name), name
    for name in ("WomenInComputerScienceHistory_Expert", "Computer_Vision_Expert", "ToolSelector_Agent",
                 "function_planner", "Expert", ""):
        assert not trace.is_tool_agent(name), name
    steps = (Step(index=0, agent="user", role="user", content="Who won in 2022?"),
             Step(index=1, agent="executor", role="assistant", content="",
                  tool_calls=(ToolCall(name="search", arguments="{}", id="c1"),)),
             Step(index=2, agent="search", role="tool", content="Djokovic won in 2021"),
             Step(index=3, agent="executor", role="assistant", content="The 2022 winner is Djokovic."),
             Step(index=4, agent="code_executor", role="user", content="exitcode: 0"))
    assert trace.tool_steps(steps) == [False, False, True, False, True]
    assert trace.is_tool_step(steps[3]) and not trace.is_tool_step(steps[3], trace.calling_agents(steps))


def test_an_executor_agent_that_calls_tools_keeps_its_blame() -> None:
    """The blame table of a plan-and-execute run left out its ``executor`` (every step of it went to the planner)."""
    from attrib.methods import analyze

    msgs = [{"type": "human", "content": "Who won the 2022 Australian Open, and where is he from?"},
            {"type": "ai", "name": "planner", "content": "Plan: 1. find the 2022 winner 2. find his hometown"},
            {"type": "ai", "name": "executor", "content": "", "tool_calls": [
                {"name": "search", "args": {"q": "2021 Australian Open winner"}, "id": "c1"}]},
            {"type": "tool", "name": "search", "tool_call_id": "c1", "content": "Novak Djokovic won in 2021."},
            {"type": "ai", "name": "executor", "content": "The 2022 winner is Novak Djokovic."},
            {"type": "ai", "name": "replanner", "content": "Final answer: Novak Djokovic, from Belgrade."}]
    from attrib.readers import read_bytes

    (t,) = read_bytes(json.dumps({"messages": msgs, "outcome": "failed"}).encode(), "plan_execute.json")
    a = analyze(t)
    assert "executor" in [b.agent for b in a.agents]
    assert all(moved["agent"] != "executor" for moved in a.evidence.get("tool_steps_to_caller", []))


def test_a_label_on_the_user_or_on_a_tools_own_result_is_said() -> None:
    """Labels blaming the human who asked, or a tool on its own result step, were accepted without a word; a ranker
    fitted on them then said "step 0 by user" or "step 2 by web_search" on new runs (walkthrough w5 #5, #8)."""
    steps = (Step(index=0, agent="user", role="user", content="Total 2023 revenue of Acme?"),
             Step(index=1, agent="researcher", role="assistant", content="",
                  tool_calls=(ToolCall(name="web_search", arguments='{"q": "Acme revenue 2022"}', id="c1"),)),
             Step(index=2, agent="web_search", role="tool", content="Acme 2022 revenue: $3.1M", parents=(1,),
                  tool_results=(ToolResult(content="Acme 2022 revenue: $3.1M", call_id="c1", name="web_search"),)),
             Step(index=3, agent="researcher", role="assistant", content="Acme's 2023 revenue is $3.1M."))

    def run(agent: str, step: int) -> Trace:
        return Trace(id="r", source_format="attrib", steps=steps, agents=("user", "researcher", "web_search"),
                     label=Label(mistake_agent=agent, mistake_step=step))

    human = run("user", 0).label_mismatch()
    assert human is not None and "blames user, the person who asked" in human
    tool = run("web_search", 2).label_mismatch()
    assert tool is not None and "step 2 is web_search's result, a tool answering researcher" in tool
    assert "label researcher" in tool
    assert run("researcher", 2).label_mismatch() is None  # the caller, on its tool's step: what attrib blames
    assert run("researcher", 1).label_mismatch() is None
