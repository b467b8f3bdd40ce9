"""One report never gives contradictory numbers for one step: the learned ranker's per-step number is labelled as its
uncalibrated p (the header's confidence is the calibrated one), and the conformal step set says what its coverage is
(over runs like the calibration runs), never "with 70% probability" beside a 54% verdict."""

from __future__ import annotations

import msgspec
import pytest
from _shown import rich_text

import attrib
from attrib.paths import traces_dir
from attrib.render import attribution_markdown, attribution_rich, step_set_line
from attrib.trace import Attribution, Step, StepBlame, Trace

TRACE = Trace(id="t", source_format="chat", steps=(
    Step(index=0, agent="user", content="Convert 15 lb to kg."),
    Step(index=1, agent="Converter", content="15 lb x 2.2 = 33 kg."),
    Step(index=2, agent="Checker", content="Final answer: 33 kg."),
))
#: the heading of the learned ranker's per-step number (was "p", and "P(decisive)" on the plot)
RANKER_P = "ranker p (uncalibrated)"


def _learned(confidence: float = 0.54, **evidence: object) -> Attribution:
    """A learned verdict whose top step's uncalibrated p (0.68) is above its calibrated confidence."""
    steps = tuple(StepBlame(step=i, agent=s.agent, score=p, probability=p)
                  for i, (s, p) in enumerate(zip(TRACE.steps, (0.07, 0.68, 0.25), strict=True)))
    return Attribution(trace_id="t", method="learned", agent="Converter", step=1, confidence=confidence, steps=steps,
                       evidence={"confidence_kind": "calibrated", **evidence})


def _rich_text(a: Attribution) -> str:
    return rich_text(attribution_rich(a, TRACE), width=200)


def test_the_rankers_p_is_labelled_uncalibrated_in_every_report() -> None:
    a = _learned()
    md = attribution_markdown(a, TRACE)
    assert f"| step | agent | {RANKER_P} | excerpt |" in md and "| p |" not in md
    text = _rich_text(a)
    assert "ranker p" in text and "(uncalibrated)" in text
    pytest.importorskip("matplotlib")
    assert a.plot().axes[0].get_ylabel() == RANKER_P  # was "P(decisive)"


def test_a_one_step_set_above_the_confidence_says_what_its_coverage_is() -> None:
    a = _learned(step_set={"level": 0.7, "steps": [1]})
    line = step_set_line(a, TRACE)
    assert "probability the decisive step" not in line  # was "with 70% probability the decisive step is step 1"
    assert line == ("step 1 (1 of 3 steps) — a set that holds the decisive step in ≥ 70% of runs like those it was "
                    "calibrated on, not a probability for this run (this run's calibrated confidence in step 1: 54%)")
    assert line in attribution_markdown(a, TRACE) and line in " ".join(_rich_text(a).split())
    # at a level the confidence reaches, no second number is needed
    assert "calibrated confidence" not in step_set_line(_learned(0.8, step_set={"level": 0.7, "steps": [1]}), TRACE)


def test_the_demo_run_reads_one_probability_for_its_step() -> None:
    """The README's demo at --set-level 0.7: confidence 54 %, ranker p 0.68, step set {1}."""
    trace = attrib.load_trace(traces_dir() / "demo_whowhen.json")
    a = attrib.analyze(trace, set_level=0.7)
    md = attribution_markdown(a, trace)
    assert "with 70% probability" not in md and "≥ 70% of runs like those it was calibrated on" in md
    assert f"| {RANKER_P} |" in md
    if a.evidence["step_set"]["steps"] == [a.step] and a.confidence < 0.7:
        assert f"this run's calibrated confidence in step {a.step}: {a.confidence:.0%}" in md


def test_a_set_with_no_step_list_or_trace_still_says_its_promise() -> None:
    a = msgspec.structs.replace(_learned(step_set={"level": 0.9, "steps": [1, 2]}), steps=())
    assert step_set_line(a) == ("steps 1, 2 — a set that holds the decisive step in ≥ 90% of runs like those it was "
                                "calibrated on, not a probability for this run")


# ------------------------------------------------------------------------- the method's warnings, in every report
#: a method's warnings quote the run (an agent's name): shown as written, never as Markdown
WARNINGS = ["The run's final answer equals its ground truth (4): it may not have failed at all.",
            "The top signal is only a prior on the agent's name (**Bold**_Expert), not evidence in the step."]


def _warned() -> Attribution:
    return _learned(warnings=[*WARNINGS, WARNINGS[0]])  # a repeat is shown once


def test_every_method_warning_is_a_warning_note_first() -> None:
    from attrib.render import verdict_notes

    notes = verdict_notes(_warned(), 5)
    assert notes[:2] == [(w, "warning") for w in WARNINGS] and len([n for n, _ in notes if n == WARNINGS[0]]) == 1
    assert verdict_notes(_learned(warnings="not a list"), 5) == verdict_notes(_learned(), 5)


def test_markdown_and_rich_reports_show_the_warnings() -> None:
    md = attribution_markdown(_warned(), TRACE)
    assert f"> **{WARNINGS[0]}**" in md
    assert r"> **The top signal is only a prior on the agent's name (\*\*Bold\*\*\_Expert), not evidence" in md
    assert "(**Bold**_Expert)" not in md  # escaped: not drawn bold
    text = " ".join(_rich_text(_warned()).split())
    assert all(w in text for w in WARNINGS)


def test_the_app_shows_the_warnings(tmp_path, monkeypatch) -> None:
    pytest.importorskip("streamlit")
    pytest.importorskip("plotly")
    import sys

    from _shown import shown
    from streamlit.testing.v1 import AppTest

    from attrib.paths import REPO_ROOT
    from attrib.store import open_store
    from attrib.store.api import ingest

    run = traces_dir() / "demo_whowhen.json"
    trace = attrib.load_trace(run)
    a = attrib.analyze(trace)
    a = msgspec.structs.replace(a, evidence={**a.evidence, "warnings": WARNINGS})
    store = tmp_path / "s.duckdb"
    with open_store(store) as s:
        assert ingest([run], store=s, progress=False).ok
        s.save_attribution(a)
    monkeypatch.setattr(sys, "argv", ["inspector.py"])
    monkeypatch.setenv("ATTRIB_STORE", str(store))
    at = AppTest.from_file(str(REPO_ROOT / "apps" / "inspector.py"), default_timeout=60)
    at.query_params.update({"page": "Timeline", "trace": trace.id, "method": "learned"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    boxes = [str(w.value) for w in at.warning]
    assert [w for w in map(shown, boxes) if w in WARNINGS] == WARNINGS, boxes  # what a user reads: the words
    assert "**Bold**" not in " ".join(boxes)  # escaped as the run's text is, not drawn bold


# ------------------------------------------------------------------------------ scores, summaries, the plot title
def _scored() -> Attribution:
    """A flow-graph-like verdict: its numbers are scores, not probabilities."""
    from attrib.trace import AgentBlame

    steps = tuple(StepBlame(step=i, agent=s.agent, score=p) for i, (s, p) in enumerate(zip(TRACE.steps, (0.1, 0.43, 0.3),
                                                                                         strict=True)))
    return Attribution(trace_id="t", method="flow-graph", agent="Converter", step=1, confidence=0.43,
                       agent_confidence=0.9, steps=steps,
                       agents=(AgentBlame(agent="Converter", score=0.43), AgentBlame(agent="Checker", score=0.3)),
                       evidence={"confidence_kind": "a score, not calibrated",
                                 "agent_blame": "summed positive step scores"})


def test_a_score_is_printed_as_a_score_not_a_percentage() -> None:
    a = _scored()
    md = attribution_markdown(a, TRACE)
    assert "score 0.43, agent score 0.90" in md and "43%" not in md and "90%" not in md
    text = _rich_text(a)
    assert "score 0.43" in text and "agent score 0.90" in text and "%" not in text
    pytest.importorskip("matplotlib")
    assert a.plot().axes[0].get_title().endswith("(score 0.43)")
    # a calibrated confidence stays a percentage
    assert "confidence 54%" in attribution_markdown(_learned(), TRACE)


def test_a_long_blame_title_fits_its_panel() -> None:
    """The causal method's "blame: summed positive step scores" ran past the figure's right edge."""
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _scored().plot()
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box = ax.title.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.x1, (ax.get_title(), box, fig.bbox)
    assert "summed positive" in fig.axes[1].get_title() and "step scores" in fig.axes[1].get_title()


def _other_author() -> tuple[Trace, Attribution]:
    """A verdict whose blamed agent (Converter) did not take its step (step 2, Checker's)."""
    return TRACE, msgspec.structs.replace(_learned(), step=2)


def test_the_summary_says_who_took_the_step_when_another_agent_is_blamed() -> None:
    from attrib.cli.analyze import verdicts_table
    from attrib.render import summary_markdown

    results = [_other_author(), (TRACE, _learned()), (TRACE, _scored())]
    md = summary_markdown(results)
    assert "| `t` | 2 | Converter (step by Checker) | 54% | - |" in md  # not "step 2 | Converter"
    assert "| `t` | 1 | Converter | 54% | - |" in md  # the step's own author: nothing to add
    assert "| `t` | 1 | Converter | 0.43 | 0.90 |" in md  # a score as a score
    text = rich_text(verdicts_table(results), width=120)
    assert "(step by Checker)" in text and text.count("(step by") == 1 and "0.43" in text and "43%" not in text


def test_markdown_on_several_runs_ends_with_the_summary_table(tmp_path) -> None:
    from typer.testing import CliRunner

    from attrib.cli import app

    for name in ("demo_whowhen.json", "chat_langgraph.json"):
        (tmp_path / name).write_bytes((traces_dir() / name).read_bytes())
    r = CliRunner().invoke(app, ["analyze", str(tmp_path), "--markdown"])
    assert r.exit_code == 0, r.output
    tail = r.output[r.output.rindex("## 2 runs"):]
    assert "| trace | step | blamed agent | conf | agent conf |" in tail
    assert "`whowhen-algorithm-demo_whowhen`" in tail and "`chat-chat_langgraph`" in tail
    one = CliRunner().invoke(app, ["analyze", str(traces_dir() / "demo_whowhen.json"), "--markdown"])
    assert one.exit_code == 0 and "runs" not in one.output.split("\n")[0] and "| trace |" not in one.output


def test_the_terminal_summary_calls_a_methods_score_a_score(tmp_path) -> None:
    """The rich summary of several runs headed flow-graph's and the judges' numbers "conf" / "agent conf", as for the
    calibrated learned method (walkthrough w7 #10)."""
    import shutil

    from typer.testing import CliRunner

    from attrib.cli import app
    from attrib.paths import traces_dir

    for name in ("demo_whowhen.json", "chat_langgraph.json"):
        shutil.copy(traces_dir() / name, tmp_path / name)
    out = CliRunner().invoke(app, ["analyze", str(tmp_path), "--method", "flow-graph"], env={"COLUMNS": "160"}).output
    assert "agent score" in out and "agent conf" not in out, out
    out = CliRunner().invoke(app, ["analyze", str(tmp_path)], env={"COLUMNS": "160"}).output
    assert "agent conf" in out
