"""The library as a Python user meets it: hand-built traces are checked up front, misspelt options and unfitted
estimators fail clearly, the ranker follows scikit-learn's conventions, and renderers keep their promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import attrib
from attrib.errors import AttribError, InputError, NotFittedError, NotFoundError, UsageError
from attrib.evaluate.data import load_subset, question_id
from attrib.methods import analyze
from attrib.methods.calibration import Calibrator
from attrib.methods.causal import CausalStepModel
from attrib.methods.conformal import ConformalStepSet
from attrib.methods.learned import default_model, fit_artifact
from attrib.methods.ranker import LearnedRanker
from attrib.trace import Attribution, Label, Step, Trace


def _trace(**kw) -> Trace:
    steps = kw.pop("steps", (Step(index=0, agent="human", role="user", content="What is 2 + 2?"),
                             Step(index=1, agent="Solver", content="2 + 2 = 5"),
                             Step(index=2, agent="Checker", content="Looks right. FINAL ANSWER: 5")))
    return Trace(id="hand", source_format="native", steps=steps, **kw)


@pytest.mark.parametrize(("trace", "field"), [
    (_trace(steps=(Step(index=5, agent="A"), Step(index=7, agent="B"))), "steps[0].index"),
    (_trace(steps=(Step(index=0, agent="A", content=None),)), "steps[0].content"),  # type: ignore[arg-type]
    (_trace(outcome="FAILED"), "outcome"),  # type: ignore[arg-type]
    (_trace(agents=("X",)), "steps[0].agent"),
    (_trace(label=Label(mistake_agent="Solver", mistake_step=9)), "label.mistake_step"),
    (_trace(steps=(Step(index=0, agent="A", tokens_in=np.int64(5)),)), "trace"),  # type: ignore[arg-type]
    (_trace(steps=()), "steps"),
])
def test_hand_built_trace_is_checked_before_any_method(trace: Trace, field: str):
    for method in ("learned", "flow-graph"):
        with pytest.raises(InputError) as e:
            analyze(trace, method)
        assert e.value.field == field, e.value


def test_analyze_wants_a_trace_not_a_path():
    with pytest.raises(TypeError, match="load_trace") as e:
        analyze("traces/demo_whowhen.json")  # type: ignore[arg-type]
    assert isinstance(e.value, UsageError) and e.value.field == "trace"  # attrib's own error too: exit 2, one line


def test_reports_want_a_trace_not_a_path():
    """`verdict.to_rich("x")` reached `'str' object has no attribute 'id'`; every report now names the argument."""
    verdict = analyze(_trace())
    for report in (verdict.to_rich, verdict.to_markdown, verdict.to_otlp):
        with pytest.raises(UsageError, match="expected an attrib.Trace, got str .*load_trace") as e:
            report("traces/demo_whowhen.json")  # type: ignore[arg-type]
        assert e.value.field == "trace"


def test_misspelt_options_are_refused_by_name(tmp_path):
    t = _trace()
    with pytest.raises(InputError, match="set_levl.*set_level"):
        analyze(t, set_levl=0.5)
    with pytest.raises(InputError, match="keep"):
        analyze(t, "flow-graph", set_level=0.5)
    assert len(analyze(t, top_k=2).evidence["top_k"]) == len(analyze(t, "flow-graph", top_k=2).evidence["top_k"]) == 2
    # the batch engine refuses before touching the store (the path does not exist either: options come first)
    with pytest.raises(InputError, match="set_levl"):
        attrib.analyze_many(tmp_path / "none.duckdb", engine="serial", options={"set_levl": 0.5})


def test_unfitted_estimators_say_fit_first():
    t = _trace()
    for call in (lambda: LearnedRanker().predict(t), lambda: CausalStepModel().step_scores(t),
                 lambda: Calibrator().predict(0.5), lambda: ConformalStepSet().predict(np.array([0.5, 0.5]))):
        with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
            call()
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_ranker_params_and_fit_input_checks(whowhen_dir):
    from sklearn.base import clone

    r = LearnedRanker(l2_agent=3.0, random_state=7)
    assert repr(r) == "LearnedRanker(l2_agent=3.0, random_state=7)"
    c = clone(r)
    assert c is not r and c.get_params() == r.get_params()
    with pytest.raises(ValueError, match="no parameter 'l2'"):
        r.set_params(l2=1.0)
    ag = list(load_subset("algorithm")[:24])
    groups = [question_id(t) for t in ag]
    with pytest.raises(ValueError, match="groups has 3 entries for 24 traces"):
        LearnedRanker().fit(ag, groups[:3])
    with pytest.raises(ValueError, match="inner_folds"):
        LearnedRanker(inner_folds=1).fit(ag, groups)
    with pytest.raises(AttribError, match="distinct tasks"):
        LearnedRanker().fit(ag, ["one"] * len(ag))
    # an unlabelled trace among labelled ones is dropped together with its group (was an IndexError)
    mixed = ag[:10] + [ag[10].unlabelled()] + ag[11:]
    m = LearnedRanker(inner_folds=2).fit(mixed, groups)
    assert m.n_train_ == 23 and m.predict(ag[0]).step_probs.shape == (ag[0].n_steps,)


def test_ranker_file_rewritten_in_place_is_read_again(whowhen_dir, tmp_path):
    ag, hc = load_subset("algorithm"), load_subset("hand")
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(fit_artifact(list(ag[:40]), "a")))
    first = default_model("with_gt", str(path))
    path.write_text(json.dumps(fit_artifact(list(hc[:40]), "b")))
    second = default_model("with_gt", str(path))
    assert first is not second and second.n_train_ == 40
    assert not np.allclose(first.step_model_.coef_, second.step_model_.coef_)
    assert default_model("with_gt", str(path)) is second  # unchanged file: the cached model


def test_renderers_follow_the_method():
    t = _trace()
    learned = analyze(t, top_k=2)
    md = learned.to_markdown(t)
    assert "confidence" in md and md.count("\n| ") - 2 == len(learned.agents) + 2  # 2 headers, the agents, 2 steps
    assert "| agent | blame |" in md
    fg = analyze(t, "flow-graph")
    assert fg.step != 0 and fg.agent != "human"  # the user's question is not a mistake
    md = fg.to_markdown(t)
    assert "score" in md.split("\n")[2] and "blame: summed step mass" in md


def test_plot_keeps_the_matplotlib_backend(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    a = analyze(_trace())
    fig = a.plot(str(tmp_path / "v.png"))
    assert (tmp_path / "v.png").stat().st_size > 1000 and fig.axes
    assert matplotlib.get_backend() == before


def test_evaluate_names_an_unknown_subset():
    from attrib.evaluate.harness import evaluate

    with pytest.raises(NotFoundError, match="unknown Who&When subset 'Algorithm'"):
        evaluate(subsets=["Algorithm"])
    with pytest.raises(AttribError, match="unknown method"):
        evaluate(subsets="algorithm", methods=["lerned"])


def test_lazy_names_are_listed_before_first_use():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import attrib, sys; print('analyze' in dir(attrib), "
                          "'load_trace' in dir(attrib), 'numpy' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False"]


def test_second_pass_fixes(tmp_path, whowhen_dir):
    from attrib.errors import UsageError
    from attrib.evaluate.labelled import evaluate_labelled
    from attrib.methods.learned import ranker_source
    from attrib.readers import load_trace

    chat = load_trace("traces/chat_autogen.jsonl")
    v = analyze(chat, "causal")
    assert v.agent != "user"  # the human's own message is not the mistake
    assert Attribution.from_json(v.to_json()) == v  # evidence survives a JSON round trip
    with pytest.raises(ValueError, match="step_head"):
        LearnedRanker().set_params(step_head="xx").fit(list(load_subset("hand")[:24]))
    with pytest.raises(UsageError):
        analyze(_trace(), set_levl=0.5)
    with pytest.raises(UsageError, match="k-fold needs k >= 2"):
        evaluate_labelled(list(load_subset("hand")[:10]), k=0)
    assert evaluate_labelled(t for t in load_subset("hand")[:10])["n"] == 10  # a generator is fine
    with pytest.raises(TypeError, match="read files first"):
        evaluate_labelled("runs/")
    # a ranker is named by its resolved path and content: a rewritten file is another ranker
    from attrib.methods.learned import ARTIFACT

    path = tmp_path / "r.json"
    shipped = json.loads(ARTIFACT.read_text())
    path.write_text(json.dumps({**shipped, "trained_on": "a"}))
    first = ranker_source(str(path))
    path.write_text(json.dumps({**shipped, "trained_on": "a, again"}))
    assert first.startswith(str(path.resolve())) and ranker_source(str(path)) != first
    with pytest.raises(UsageError, match="scheduler"):
        attrib.analyze_many(tmp_path / "x.duckdb", engine="serial", scheduler="tcp://h:8786")


def test_store_and_option_values_are_checked(tmp_store):
    from attrib.errors import UsageError
    from attrib.store import open_store

    with pytest.raises(InputError, match="steps\\[0\\].index"):
        tmp_store.upsert_trace(_trace(steps=(Step(index=5, agent="A"),)))
    assert tmp_store.trace_ids() == []
    with pytest.raises(UsageError, match="size string"):
        open_store(tmp_store.path.with_name("m.duckdb"), memory_limit=512)  # type: ignore[arg-type]
    for bad in ({"top_k": 0}, {"top_k": "3"}, {"set_level": 2.0}, {"set_level": "0.5"}):
        with pytest.raises(UsageError):
            analyze(_trace(), **bad)


def test_the_top_level_api_is_what_a_notebook_needs_and_nothing_else():
    """``attrib.X`` covers the README's library examples (the ranker and ``read_paths`` were only reachable from
    deep modules, the tool-call classes of a hand-built trace too), every exported name is documented, and tab
    completion shows the API, not the package's plumbing (``annotations``, ``lazy_exports``)."""
    import subprocess
    import sys

    for name in ("LearnedRanker", "read_paths", "ToolCall", "ToolResult", "AgentBlame", "StepBlame", "InputError"):
        assert name in attrib.__all__ and name in dir(attrib), name
    for name in attrib.__all__:
        assert (getattr(attrib, name).__doc__ or "").strip(), name
    assert not {"annotations", "lazy_exports"} & set(dir(attrib))
    assert attrib.LearnedRanker is LearnedRanker
    t = attrib.Trace(id="tools", source_format="attrib", steps=(
        attrib.Step(index=0, agent="Coder", content="search it", tool_calls=(attrib.ToolCall(name="search"),)),
        attrib.Step(index=1, agent="search", role="tool", parents=(0,),
                    tool_results=(attrib.ToolResult(content="no results", name="search"),)),
    ))
    assert isinstance(attrib.analyze(t), attrib.Attribution)
    # star-importing the whole API still loads none of the heavy optional stacks
    out = subprocess.run([sys.executable, "-c", "from attrib import *; import sys; print(sorted(m for m in "
                          "('torch', 'sklearn', 'dask', 'distributed', 'transformers', 'streamlit') if m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_a_hand_built_trace_with_dicts_for_structs_is_analysed_typed() -> None:
    """A dict where a ToolCall belongs (and a list for a tuple) passed the type check, since both encode alike, and
    analyze then crashed deep inside on the untyped trace ('dict' object has no attribute 'id')."""
    import attrib

    steps = [attrib.Step(index=0, agent="A", content="look it up", tool_calls=({"name": "search"},)),  # type: ignore[arg-type]
             attrib.Step(index=1, agent="B", content="The answer is 7.")]
    t = attrib.Trace(id="t", source_format="attrib", steps=steps)  # type: ignore[arg-type]
    assert t.problem() is None
    typed = t.check()
    assert isinstance(typed.steps, tuple) and isinstance(typed.steps[0].tool_calls[0], attrib.ToolCall)
    verdict = attrib.analyze(t)
    assert verdict.trace_id == "t" and verdict.step in (0, 1)


def test_steps_given_as_dicts_name_the_agents_too() -> None:
    """A Step given as a dict (the docstring's promise: typed by ``check``) crashed the constructor, which derives
    ``agents`` from ``s.agent`` ('dict' object has no attribute 'agent'), unless ``agents`` was passed too."""
    import attrib

    steps = [{"index": 0, "agent": "planner", "content": "Plan: add the two numbers."},
             {"index": 1, "agent": "solver", "content": "The answer is 7."}]
    t = attrib.Trace(id="d", source_format="attrib", steps=steps)  # type: ignore[arg-type]
    assert t.agents == ("planner", "solver")
    typed = t.check()
    assert isinstance(typed.steps[1], attrib.Step) and typed.agents == ("planner", "solver")
    assert attrib.analyze(t).agent in ("planner", "solver")


def test_a_verdict_shows_itself_as_its_report_in_rich_and_jupyter() -> None:
    """`rich.print(verdict)` or a verdict ending a notebook cell dumped the struct's 4,000-character repr; and
    `to_otlp(with_steps=True)` without the trace silently wrote the verdict alone."""
    import pytest
    from rich.console import Console

    import attrib
    from attrib.errors import UsageError

    trace = attrib.load_trace(Path(__file__).resolve().parents[1] / "traces" / "demo_whowhen.json")
    verdict = attrib.analyze(trace)
    con = Console(width=120, record=True)
    con.print(verdict)
    assert "decisive mistake" in con.export_text() and "Attribution(" not in con.export_text()
    md = verdict._repr_markdown_()
    assert md.startswith("## ") and "UnitConversion_Expert" in md and "Attribution(" not in md
    with pytest.raises(UsageError, match="needs the trace"):
        verdict.to_otlp(with_steps=True)


def test_the_shared_argument_checks_take_numpy_numbers_and_refuse_the_rest() -> None:
    """errors.is_real raised OverflowError on an int too large for a float (10**400) instead of saying no."""
    from attrib.errors import is_real, is_whole_number

    assert is_real(0.5) and is_real(np.float32(0.5)) and is_real(np.int64(3)) and is_real(3)
    assert not any(is_real(v) for v in (True, float("nan"), float("inf"), 10**400, "0.5", None))
    assert is_whole_number(np.int64(2)) and not is_whole_number(True) and not is_whole_number(2.0)


def test_a_plot_calls_a_score_a_score(tmp_path):
    """The flow-graph method's confidence is a score, as every report says; the plot's title read "(43%)"."""
    t = _trace()
    assert re.search(r"\(confidence \d+%\)$", analyze(t).plot(str(tmp_path / "a.png")).axes[0].get_title())
    title = analyze(t, "flow-graph").plot(str(tmp_path / "b.png")).axes[0].get_title()
    assert re.search(r"\(score \d\.\d\d\)$", title), title  # a score, not a percentage (since 74b9011)


def test_every_public_member_of_the_public_classes_says_what_it_does():
    """`help(store.count_traces)` said nothing: each public method and property of the classes a library user
    handles has a docstring."""
    import inspect

    from attrib.engine import BatchReport
    from attrib.store import Store
    from attrib.store.api import IngestReport

    missing = []
    for cls in (Store, IngestReport, BatchReport, Trace, Attribution, Step, Label, LearnedRanker, Calibrator,
                ConformalStepSet):
        for name, obj in vars(cls).items():
            f = obj.fget if isinstance(obj, property) else obj
            if name.startswith("_") or not (inspect.isfunction(f) or isinstance(obj, property)):
                continue
            if not (f.__doc__ or "").strip():
                missing.append(f"{cls.__name__}.{name}")
    assert not missing, missing
