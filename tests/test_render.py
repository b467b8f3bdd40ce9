"""Rendering says who took the decisive step, and flags an agent verdict that points elsewhere."""

from _shown import rich_text

from attrib.render import attribution_markdown, verdict_line
from attrib.trace import Attribution, Step, StepBlame, Trace

TRACE = Trace(id="t", source_format="chat", steps=(
    Step(index=0, agent="user", content="Which city is largest?"),
    Step(index=1, agent="Researcher", content="Lyon 2,308,818."),
    Step(index=2, agent="Analyst", content="Lyon is largest."),
))


def _attr(step: int, agent: str) -> Attribution:
    return Attribution(trace_id="t", method="m", agent=agent, step=step, confidence=0.4,
                       steps=(StepBlame(step=step, agent=TRACE.steps[step].agent, score=0.4),))


def test_agreeing_verdict_reads_step_by_agent():
    assert verdict_line(_attr(1, "Researcher"), TRACE) == "step 1 by Researcher"
    assert "**Decisive step 1 by Researcher**" in attribution_markdown(_attr(1, "Researcher"), TRACE)


def test_disagreeing_agent_verdict_is_not_presented_as_the_steps_author():
    a = _attr(2, "Researcher")
    assert verdict_line(a, TRACE) == "step 2 (by Analyst), blamed agent Researcher"
    assert verdict_line(a) == "step 2 (by Analyst), blamed agent Researcher"  # from the method's own step list
    assert "step 2 by Researcher" not in attribution_markdown(a, TRACE)


def test_an_unsure_verdict_says_to_check_the_candidates():
    import msgspec

    from attrib.render import attribution_rich, low_confidence_note

    steps = tuple(StepBlame(step=i, agent=s.agent, score=p, probability=p)
                  for i, (s, p) in enumerate(zip(TRACE.steps, (0.2, 0.5, 0.3), strict=True)))
    sure = Attribution(trace_id="t", method="m", agent="Researcher", step=1, confidence=0.6, steps=steps)
    unsure = msgspec.structs.replace(sure, confidence=0.2)
    assert low_confidence_note(sure, 2) is None and "Low confidence" not in attribution_markdown(sure, TRACE)
    note = low_confidence_note(unsure, 2)
    assert note is not None and "top 2 steps (together 80%" in note
    assert note in attribution_markdown(unsure, TRACE, top_k=2)
    assert note in rich_text(attribution_rich(unsure, TRACE, top_k=2), width=300)


def test_step_set_reads_as_words():
    import msgspec

    from attrib.render import attribution_rich, step_set_line

    a = _attr(1, "Researcher")
    assert step_set_line(a, TRACE) == ""  # the method gave no set
    with_set = msgspec.structs.replace(a, evidence={"step_set": {"level": 0.9, "steps": [2, 1]}})
    line = step_set_line(with_set, TRACE)
    assert line == ("steps 1, 2 (2 of 3 steps) — a set that holds the decisive step in ≥ 90% of runs like those it was "
                    "calibrated on, not a probability for this run")
    assert line in attribution_markdown(with_set, TRACE)
    whole = msgspec.structs.replace(a, evidence={"step_set": {"level": 0.8, "steps": [0, 1, 2]}})
    assert step_set_line(whole, TRACE).startswith("any of the 3 steps: too unsure to narrow the run down")
    one = Trace(id="t", source_format="chat", steps=TRACE.steps[:1])
    assert step_set_line(msgspec.structs.replace(a, step=0, evidence={"step_set": {"level": 0.9, "steps": [0]}}),
                         one) == "step 0, the run's only step"
    assert line in rich_text(attribution_rich(with_set, TRACE), width=300)
    # the shipped ranker on a run from another system: the promise was measured on Who&When only, and says so
    elsewhere = msgspec.structs.replace(a, evidence={"step_set": {"level": 0.9, "steps": [2, 1]},
                                                     "calibrated_on": "Who&When", "calibration_measured_here": False})
    assert step_set_line(elsewhere, TRACE).startswith(
        "steps 1, 2 (2 of 3 steps; a promise measured on Who&When runs, not on this system) — a set that holds")
    home = msgspec.structs.replace(elsewhere, evidence={**elsewhere.evidence, "calibration_measured_here": True})
    assert step_set_line(home, TRACE) == line


def test_the_shipped_rankers_calibration_is_scoped_to_who_and_when(tmp_path, monkeypatch):
    """A verdict on a run from another system said "49% calibrated" as if the calibration measured on Who&When
    carried over; now it says where it was measured, on every face, and only where it applies."""
    from pathlib import Path

    from attrib.methods.learned import attribute, fit_artifact
    from attrib.readers import load_trace
    from attrib.render import attribution_rich, calibration_note

    monkeypatch.delenv("ATTRIB_RANKER", raising=False)
    traces = Path(__file__).resolve().parents[1] / "traces"
    other = attribute(load_trace(traces / "chat_langgraph.json"))
    assert other.evidence["calibrated_on"] == "Who&When" and other.evidence["calibration_measured_here"] is False
    note = calibration_note(other)
    assert note and "Who&When runs only" in note and "attrib fit" in note
    assert note in attribution_markdown(other)
    assert note in rich_text(attribution_rich(other), width=400)
    # a Who&When run, and any ranker of the user's own, carry no such note
    assert calibration_note(attribute(load_trace(traces / "demo_whowhen.json"))) is None
    from attrib.evaluate.data import load_subset

    own = tmp_path / "ranker.json"
    import orjson

    own.write_bytes(orjson.dumps(fit_artifact(load_subset("algorithm")[:40], "test")))
    mine = attribute(load_trace(traces / "chat_langgraph.json"), model_path=str(own))
    assert "calibrated_on" not in mine.evidence and calibration_note(mine) is None


def test_a_verdict_on_a_run_the_ranker_was_fitted_on_says_it_is_in_sample(tmp_path, monkeypatch):
    """`attrib analyze` on a Who&When log (the shipped ranker's training data), or on a run a user's ranker was
    fitted on, gave an in-sample verdict with no word of it."""
    from pathlib import Path

    import orjson

    from attrib.evaluate.data import load_subset
    from attrib.methods.learned import attribute, fit_artifact
    from attrib.readers import load_trace
    from attrib.render import in_sample_note

    monkeypatch.delenv("ATTRIB_RANKER", raising=False)
    hand = load_subset("hand")
    shipped = attribute(hand[0])
    assert shipped.evidence["in_sample"] is True and in_sample_note(shipped) in attribution_markdown(shipped)
    fresh = attribute(load_trace(Path(__file__).resolve().parents[1] / "traces" / "chat_langgraph.json"))
    assert fresh.evidence["in_sample"] is False and in_sample_note(fresh) is None
    own = tmp_path / "ranker.json"
    own.write_bytes(orjson.dumps(fit_artifact(hand[:30], "test")))
    assert attribute(hand[1], model_path=str(own)).evidence["in_sample"] is True
    assert attribute(hand[40], model_path=str(own)).evidence["in_sample"] is False
    monkeypatch.setenv("ATTRIB_RANKER", str(own))
    assert attribute(hand[1]).evidence["in_sample"] is True


def test_the_reason_never_calls_a_step_the_earliest_when_an_earlier_one_has_the_higher_hazard(monkeypatch):
    """It said "taken as the earliest step to go wrong: its hazard is 0.20, and the most suspicious step before it
    ... has 0.24", and "The agent head agrees" beside a 9 % agent confidence."""
    from pathlib import Path

    from attrib.methods.learned import UNSURE_AGENT, attribute
    from attrib.readers import load_trace

    monkeypatch.delenv("ATTRIB_RANKER", raising=False)
    traces = Path(__file__).resolve().parents[1] / "traces"
    checked = 0
    for name in ("demo_whowhen.json", "otlp_agents.json", "chat_autogen.jsonl", "chat_langgraph.json"):
        a = attribute(load_trace(traces / name))
        fp = a.evidence.get("first_passage") or {}
        if "earlier_step" in fp:
            checked += 1
            earliest = "taken as the earliest step to go wrong" in a.reason
            assert earliest == (fp["earlier_hazard"] <= fp["hazard"]), (name, a.reason)
        if a.agent_confidence < UNSURE_AGENT:
            assert "agent head agrees" not in a.reason and "unsure" in a.reason
    assert checked == 4  # both wordings occur among these: the demo's and the OTLP run's


_RUN_TEXT = Trace(id="run[bold]", source_format="chat", steps=(
    Step(index=0, agent="Planner[b]", content="see the [/docs] page, then total = sum(prices[i] for i in idx)"),
    Step(index=1, agent="Checker|2", content="ran `cat log | wc -l`: 3\nlooks right"),
))


def _verdict_on_run_text() -> Attribution:
    from attrib.trace import AgentBlame

    return Attribution(
        trace_id=_RUN_TEXT.id, method="m", agent="Planner[b]", step=0, confidence=0.6,
        agents=(AgentBlame(agent="Planner[b]", score=0.6), AgentBlame(agent="Checker|2", score=0.4)),
        steps=(StepBlame(step=0, agent="Planner[b]", score=0.6), StepBlame(step=1, agent="Checker|2", score=0.4)))


def test_rich_report_prints_the_runs_text_as_written_not_as_markup():
    """A step quoting "[/docs]" raised MarkupError (so `attrib analyze` printed no report at all), and "[b]" or
    "[i]" in a name or code turned into bold / italic and vanished from the text."""
    from attrib.render import attribution_rich

    out = rich_text(attribution_rich(_verdict_on_run_text(), _RUN_TEXT), width=300)
    assert "decisive mistake in run[bold]" in out
    assert "step 0 by Planner[b]" in out
    assert "see the [/docs] page, then total = sum(prices[i] for i in idx)" in out  # table excerpt and evidence
    assert out.count("Planner[b]") >= 3  # verdict, agent table, step table


def test_markdown_table_cells_escape_pipes_in_agent_names_and_text():
    md = attribution_markdown(_verdict_on_run_text(), _RUN_TEXT)
    rows = [line for line in md.splitlines() if line.startswith("| ") and "Checker" in line]
    assert rows == ["| Checker\\|2 | 0.400 |", "| 1 | Checker\\|2 | 0.40 | ran \\`cat log \\| wc -l\\`: 3 looks right |"]


def test_html_in_a_step_stays_text_in_markdown():
    """A scraped page's <b>, or a stray <script>, was passed through and rendered (or hid the rest) in a viewer."""
    run = Trace(id="h", source_format="attrib", steps=(Step(index=0, agent="a", content="task"),
                                                       Step(index=1, agent="b", content="<b>bold</b> & <script>x")))
    a = Attribution(trace_id="h", method="m", agent="b", step=1, confidence=0.6,
                    steps=(StepBlame(step=1, agent="b", score=0.6, probability=0.6),))
    md = attribution_markdown(a, run)
    assert "<b>" not in md and "<script>" not in md and r"\<b\>bold\</b\> \& \<script\>x" in md


def test_without_the_trace_only_the_decisive_step_shows_text():
    """A verdict rendered on its own (``verdict.to_markdown()``, a stored verdict) knows only the decisive step's text
    (``evidence.step_text``); every other candidate row used to show that same text under its own step number."""
    from attrib.render import attribution_rich

    a = Attribution(trace_id="t", method="m", agent="Researcher", step=1, confidence=0.6,
                    steps=(StepBlame(step=1, agent="Researcher", score=0.6),
                           StepBlame(step=2, agent="Analyst", score=0.3)),
                    evidence={"step_text": "Lyon 2,308,818."})
    rows = [line for line in attribution_markdown(a).splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert rows == ["| 1 | Researcher | 0.60 | Lyon 2,308,818. |", "| 2 | Analyst | 0.30 |  |"]
    # its table row and the evidence, once each
    assert rich_text(attribution_rich(a), width=300).count("Lyon 2,308,818.") == 2


def test_a_bad_top_k_is_refused_by_name_not_sliced():
    """``top_k=-1`` listed every step but the last, ``0`` an empty table and ``"3"`` died in a slice."""
    import pytest

    from attrib.errors import UsageError
    from attrib.render import attribution_rich

    a = _attr(1, "Researcher")
    for bad in (-1, 0, "3", 2.5):
        with pytest.raises(UsageError, match="top_k"):
            attribution_markdown(a, TRACE, top_k=bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="top_k"):
            attribution_rich(a, TRACE, top_k=bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="top_k"):
            a.to_otlp(TRACE, top_k=bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="top_k"):
            a.to_otlp(TRACE, top_k=bad, with_steps=True)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="top_k"):  # the public method the renderers use
            a.top_steps(bad)  # type: ignore[arg-type]
    assert "| 1 | Researcher |" in attribution_markdown(a, TRACE, top_k=1)


def test_a_report_refuses_another_runs_trace() -> None:
    """verdict.to_markdown(other_trace) showed the other run's step texts and authors under this verdict."""
    import msgspec
    import pytest

    from attrib.errors import UsageError
    from attrib.render import attribution_rich

    a = _attr(1, "Researcher")
    other = msgspec.structs.replace(TRACE, id="another-run")
    for render in (lambda: attribution_markdown(a, other), lambda: attribution_rich(a, other),
                   lambda: a.to_otlp(other), lambda: a.to_otlp(other, with_steps=True)):
        with pytest.raises(UsageError, match="the verdict is on run .* the trace given is 'another-run'"):
            render()
    assert "Researcher" in attribution_markdown(a, TRACE)


def test_long_step_sets_and_paths_read_as_ranges() -> None:
    from attrib.methods.flow_graph import path_text
    from attrib.render import step_ranges

    assert step_ranges([1]) == "1"
    assert step_ranges([1, 2]) == "1, 2"  # two in a row stay a list
    assert step_ranges([0, 1, 3, 4, 5, 9]) == "0, 1, 3-5, 9"
    assert step_ranges(list(range(0, 60, 2))).endswith("22, ...")  # at most 12 pieces
    assert path_text([4, 92], ["reuses 33.0"]) == "4 →(reuses 33.0) 92"
    assert path_text([1, 2, 3], arrow="->") == "1 -> 2 -> 3"  # no hop words: plain arrows
    long = path_text(list(range(40)), ["next turn"] * 39)
    assert long.startswith("0 →(next turn) 1") and "… (29 steps)" in long and long.endswith("→(next turn) 39")
    assert long.count("→(next turn)") == 10  # the ends only


def test_a_step_that_only_calls_a_tool_reads_as_its_call_in_every_report():
    """Steps 2 and 4 of the bundled AutoGen run are assistant messages with tool calls and no content: their top-k
    excerpt was blank in the rich and Markdown reports, while `attrib traces show` shows "→ web_search(...)"."""
    from attrib.cli.traces import render, view_of
    from attrib.markdown import md_inline
    from attrib.methods import analyze
    from attrib.paths import traces_dir
    from attrib.readers import load_trace
    from attrib.render import attribution_rich

    t = load_trace(traces_dir() / "chat_autogen.jsonl")
    assert [i for i, s in enumerate(t.steps) if not s.content and s.tool_calls] == [2, 4]
    a = analyze(t, top_k=t.n_steps)
    show = rich_text(render(view_of(t)), width=400)
    md = attribution_markdown(a, t)
    out = rich_text(attribution_rich(a, t), width=400)
    for i in (2, 4):
        call = f"→ web_search({t.steps[i].tool_calls[0].arguments})"
        assert call in show  # what `attrib traces show` prints for it
        row = next(line for line in md.splitlines() if line.startswith(f"| {i} | Researcher |"))
        assert f"| {md_inline(call)}" in row and call in out  # step 4 makes a second call after it
    tool = t.steps[3]  # a tool step: the call it answers, then what came back, as `traces show` words it
    assert f"← {' '.join(tool.tool_results[0].content.split())[:20]}" in md


def test_the_report_says_where_tool_steps_blame_went():
    """Tool steps count to the agent that called them: an author whose every step is a tool's has no row in the agent
    table, so the report says where its steps went instead of dropping the agent silently."""
    import msgspec

    from attrib.methods import analyze
    from attrib.paths import traces_dir
    from attrib.readers import load_trace
    from attrib.render import attribution_rich, tool_callers_line

    t = load_trace(traces_dir() / "chat_autogen.jsonl")
    a = analyze(t)
    line = tool_callers_line(a)
    assert line == ("Tool steps count to the agent that called them (a tool is not repaired, the call is): "
                    "web_search's steps 3, 5, 6 to Researcher.")
    assert "web_search" not in {x.agent for x in a.agents}
    assert line in attribution_markdown(a, t)
    assert line in rich_text(attribution_rich(a, t), width=400)
    assert tool_callers_line(_attr(1, "Researcher")) is None  # no step moved: no line
    assert a.evidence["tool_steps_to_caller"] == [{"agent": "web_search", "caller": "Researcher", "steps": [3, 5, 6]}]
    # a verdict stored before the steps were grouped (one entry per step) reads alike
    old = msgspec.structs.replace(a, evidence={**a.evidence, "tool_steps_to_caller": [
        {"step": i, "agent": "web_search", "caller": "Researcher"} for i in (3, 5, 6)]})
    assert tool_callers_line(old) == line


def test_a_verdict_from_your_own_ranker_names_it_beside_the_method():
    """Two verdicts on one run, from the shipped ranker and from `attrib fit`'s, read alike in every report; a
    verdict from another ranker now names the file beside the method (the shipped one is the default: unnamed)."""
    import msgspec

    from attrib.render import attribution_rich, ranker_name, verdict_ranker

    a = msgspec.structs.replace(_attr(1, "Researcher"), method="learned")
    mine = msgspec.structs.replace(a, evidence={"ranker": "/home/me/my_ranker.json (sha256 510b48def5dc)"})
    shipped = msgspec.structs.replace(a, evidence={"ranker": "shipped (fitted on Who&When)"})
    assert (verdict_ranker(mine), verdict_ranker(shipped), verdict_ranker(a)) == ("my_ranker.json", "shipped", None)
    assert ranker_name("a fitted LearnedRanker") == "a fitted LearnedRanker"
    # the name is the one the learned method writes (attrib.methods.ranker_names), compared whole: a ranker file
    # named "shipped_v2.json" is no shipped ranker
    from attrib.methods.learned import SHIPPED, ranker_source
    from attrib.methods.ranker_names import file_source

    assert ranker_source(None) == SHIPPED and ranker_name(SHIPPED) == "shipped"
    assert ranker_name(file_source("/tmp/shipped_v2.json", "0" * 64)) == "shipped_v2.json"
    assert ranker_name("shipped_v2.json") == "shipped_v2.json"
    assert "(method `learned`, ranker `my_ranker.json`" in attribution_markdown(mine, TRACE)
    assert "ranker" not in attribution_markdown(shipped, TRACE).split("\n")[2]
    assert "method learned, ranker my_ranker.json" in rich_text(attribution_rich(mine, TRACE), width=300)


def test_rankers_differ_names_both_short_unless_the_short_names_coincide():
    """The CLI's stored-verdict note and the inspector's warning compare rankers through one function."""
    import msgspec

    from attrib.render import rankers_differ

    a = msgspec.structs.replace(_attr(1, "Researcher"), method="learned")

    def by(source):
        return msgspec.structs.replace(a, evidence={"ranker": source})

    mine, other = "/a/my.json (sha256 111111111111)", "/b/my.json (sha256 222222222222)"
    assert rankers_differ(by(mine), by("shipped (fitted on Who&When)")) == ("my.json", "shipped")
    assert rankers_differ(by(mine), by(other)) == (mine, other)  # one file name twice: the full names
    assert rankers_differ(by(mine), by(mine)) is None and rankers_differ(a, by(mine)) is None


def test_a_verdict_on_an_otlp_run_names_the_span_to_look_up():
    """attrib's step numbers exist only in attrib: a verdict on spans names the decisive span (name and id), in the
    JSON evidence and in every report, so a user finds it in their trace viewer. Runs not read from spans do not."""
    from attrib.methods import analyze
    from attrib.paths import REPO_ROOT
    from attrib.readers import load_trace

    trace = load_trace(REPO_ROOT / "traces" / "otlp_agents.json")
    verdict = analyze(trace)
    meta = trace.steps[verdict.step].metadata
    assert verdict.evidence["decisive_span"] == {"span_id": meta["span_id"], "span_name": meta["span_name"]}
    assert f"span {meta['span_name']!r} ({meta['span_id']})" in verdict_line(verdict, trace)
    assert meta["span_id"] in attribution_markdown(verdict, trace)
    assert b'"decisive_span"' in verdict.to_json()
    plain = analyze(load_trace(REPO_ROOT / "traces" / "demo_whowhen.json"))
    assert "decisive_span" not in plain.evidence and "span" not in verdict_line(plain)


def test_the_ranker_having_seen_the_run_is_worded_from_one_place() -> None:
    """In sample / seen task: the report's note, the stored verdict's line (`traces show`, `traces list --method`)
    and a batch's count all read :func:`attrib.render.seen_how`, so the three cannot drift apart."""
    import msgspec

    from attrib.render import in_sample_note, seen_how, verdict_summary

    base = msgspec.structs.replace(_attr(1, "Researcher"), evidence={"confidence_kind": "calibrated"})
    cases = {"in sample": ({"in_sample": True, "same_task_trained": True}, "In sample: ",
                           ", in sample (the ranker was fitted on this run)"),
             "seen task": ({"same_task_trained": True}, "Seen task: ",
                           ", seen task (the ranker was fitted on another run of it)")}
    for how, (ev, note, words) in cases.items():
        a = msgspec.structs.replace(base, evidence={**base.evidence, **ev})
        assert seen_how(a) == how and (in_sample_note(a) or "").startswith(note)
        assert verdict_summary(a) == f"step 1 by Researcher, confidence 40%{words}"
    assert seen_how(base) is None and in_sample_note(base) is None
    assert verdict_summary(base) == "step 1 by Researcher, confidence 40%"


def test_a_judges_unsure_verdict_does_not_call_its_steps_the_rankers() -> None:
    """A judge that lists several steps with a low confidence gets the low-confidence note; its step numbers are
    the method's, not a ranker's (the learned ranker's note keeps "the ranker's")."""
    import msgspec

    from attrib.render import low_confidence_note

    steps = tuple(StepBlame(step=i, agent=s.agent, score=p, probability=p)
                  for i, (s, p) in enumerate(zip(TRACE.steps, (0.2, 0.25, 0.2), strict=True)))
    judge = Attribution(trace_id="t", method="judge-all", agent="Researcher", step=1, confidence=0.25, steps=steps)
    note = low_confidence_note(judge, 2) or ""
    assert "(together 45% of the method's step probability)" in note and "ranker" not in note, note
    assert "of the method's step probability" in attribution_markdown(judge, TRACE)
    learned = msgspec.structs.replace(judge, method="learned")
    assert "(together 45% of the ranker's step probability)" in (low_confidence_note(learned, 2) or "")
