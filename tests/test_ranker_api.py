"""The learned ranker's Python API, as a library user meets it: ``LearnedRanker().fit(traces)`` without ``groups``
groups re-runs of one task as ``attrib fit`` does, every parameter is checked up front, a path where a trace belongs is
a named type error, an unfitted ranker cannot be saved, and an in-memory ranker flags the runs it was fitted on."""

from __future__ import annotations

import math

import msgspec
import orjson
import pytest

import attrib
from attrib.errors import NotFittedError, UsageError
from attrib.methods.learned import fit_artifact
from attrib.methods.ranker import LearnedRanker, RankerParamError, RankerTypeError
from attrib.trace import Label, Step, ToolCall, ToolResult, Trace, question_id

#: Six tasks of an invented planner/coder/reviewer system with a python tool; each run misreads the rate by 10x.
TASKS = [
    ("Compute the total cost of {n} items at ${p} each with 8% sales tax.", 0.08),
    ("Compute the total cost of {n} widgets priced ${p} each plus 5% shipping fee.", 0.05),
    ("What is the price of {n} books at ${p} each after a 10% surcharge?", 0.10),
    ("Total for {n} tickets at ${p} each including a 20% service charge.", 0.20),
    ("Compute the bill for {n} meals at ${p} each with 15% tip.", 0.15),
    ("Compute the cost of {n} licences at ${p} each with 7% VAT.", 0.07),
]


def _run(i: int, planted: str = "coder", qid: bool = True) -> Trace:
    """One failed 5-step run of task ``i % 6`` whose decisive mistake is the planner's (step 0) or the coder's
    (step 1); ``qid``: whether it carries ``metadata.question_id``."""
    tmpl, rate = TASKS[i % len(TASKS)]
    n, p = 3 + i % 5, 12.5 + (i % 7)
    right, wrong = round(n * p * (1 + rate), 2), round(n * p * (1 + rate * 10), 2)
    said = rate * 10 if planted == "planner" else rate
    code = f"total = {n} * {p} * (1 + {rate * 10:g})\nprint(round(total, 2))"
    steps = (
        Step(index=0, agent="planner", content=f"Plan: multiply {n} by {p}, then add {said * 100:.0f}% on top. "
             "Coder, implement it."),
        Step(index=1, agent="coder", content="I will compute it with Python.",
             tool_calls=(ToolCall(name="python_exec", arguments=code, id=f"c{i}"),)),
        Step(index=2, agent="python_exec", role="tool", content=str(wrong), parents=(1,),
             tool_results=(ToolResult(content=str(wrong), call_id=f"c{i}", name="python_exec"),)),
        Step(index=3, agent="reviewer", content=f"The code ran without errors and printed {wrong}. Looks correct."),
        Step(index=4, agent="planner", content=f"Final answer: {wrong}"),
    )
    return Trace(id=f"hand-{planted}-{i}", source_format="attrib", steps=steps, task=tmpl.format(n=n, p=p),
                 outcome="failed", final_answer=str(wrong), ground_truth=str(right),
                 label=Label(mistake_agent=planted, mistake_step=0 if planted == "planner" else 1),
                 metadata={"question_id": f"q{i % len(TASKS)}"} if qid else {})


def _corpus(n: int = 36, qid: bool = True) -> list[Trace]:
    """``n`` labelled runs of the six tasks (re-runs of each task differ in their numbers)."""
    return [_run(i, "planner" if i % 3 == 0 else "coder", qid) for i in range(n)]


def _same(a: dict, b: dict) -> bool:
    """Two saved rankers alike (floats compared exactly: the same folds give the same fit)."""
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


# --------------------------------------------------------------------------- 1. default groups


def test_fit_without_groups_keeps_reruns_of_a_task_together_as_attrib_fit_does() -> None:
    """Without ``groups`` each run was its own group: re-runs of one task fell on both sides of the inner folds
    (overconfident calibration), ``n_tasks_`` counted 36 tasks for 6 and the few-tasks note vanished."""
    runs = _corpus(36)
    ranker = LearnedRanker(random_state=0).fit(runs)
    assert ranker.n_tasks_ == 6 and ranker.n_train_ == 36
    explicit = LearnedRanker(random_state=0).fit(runs, groups=[question_id(t) for t in runs])
    assert _same(ranker.to_dict(), explicit.to_dict())
    # the same fit as `attrib fit`'s (fit_artifact): the library and the CLI agree
    art = fit_artifact(runs, "test")
    saved = {k: v for k, v in ranker.to_dict().items() if k not in ("fingerprints", "tasks", "question_ids")}
    assert _same(saved, art["settings"]["with_gt"])
    verdict = attrib.analyze(_run(100), model=ranker)
    assert verdict.evidence["fitted_on"] == {"runs": 36, "tasks": 6}
    assert "6 tasks" in verdict.to_markdown()  # the few-tasks note


def test_fit_without_groups_groups_runs_without_a_question_id_by_their_task_text() -> None:
    """Runs without ``metadata.question_id`` (OTLP files cannot carry one) that share their task text form one group,
    as ``attrib fit`` groups them (:func:`attrib.trace.group_reruns`)."""
    runs = [_run(i % 6, "planner" if i % 3 == 0 else "coder", qid=False) for i in range(24)]  # 4 re-runs per task
    runs = [msgspec.structs.replace(t, id=f"run-{k}") for k, t in enumerate(runs)]
    ranker = LearnedRanker(random_state=0).fit(runs)
    assert ranker.n_tasks_ == 6
    art = fit_artifact(runs, "test")
    assert _same({k: v for k, v in ranker.to_dict().items() if k not in ("fingerprints", "tasks", "question_ids")},
                 art["settings"]["with_gt"])


# --------------------------------------------------------------------------- 2. parameters


@pytest.mark.parametrize(("name", "value", "words"), [
    ("hazard_bias", float("nan"), "finite number"),
    ("hazard_bias", float("inf"), "finite number"),
    ("l2_step", -1.0, "'auto' or a number >= 0"),
    ("l2_step", float("nan"), "'auto' or a number >= 0"),
    ("l2_agent", -5, "a number >= 0"),
    ("l2_agent", "1", "a number >= 0"),
    ("smooth", 5.0, "a share in [0, 1)"),
    ("smooth", 1.0, "a share in [0, 1)"),
    ("smooth", -0.1, "a share in [0, 1)"),
    ("joint", -3, "a number >= 0"),
    ("joint", True, "a number >= 0"),
    ("set_level", 1.5, "between 0 and 1"),
    ("set_level", 0, "between 0 and 1"),
    ("calibration", "bogus", "'platt', 'isotonic', 'none'"),
    ("length_calibration", "yes", "True or False"),
    ("inner_folds", 1, "whole number >= 2"),
    ("random_state", None, "whole number >= 0"),
])
def test_fit_refuses_a_bad_parameter_up_front_naming_it_its_value_and_range(name, value, words) -> None:
    """NaN hazard_bias fitted and gave NaN confidences; negative penalties, smooth=5 and joint=-3 fitted silently;
    calibration='bogus' and set_level=1.5 raised a plain ValueError from deep inside. Each is a RankerParamError
    (a UsageError and a ValueError) naming the parameter, before any fitting."""
    with pytest.raises(RankerParamError) as err:
        LearnedRanker().set_params(**{name: value}).fit(_corpus(12))
    e = err.value
    assert isinstance(e, UsageError) and isinstance(e, ValueError)
    assert e.field == name and words in e.message and repr(value) in e.message


def test_parameters_at_the_edge_of_their_range_still_fit() -> None:
    ranker = LearnedRanker(l2_step=0.3, l2_agent=0, smooth=0.0, joint=0, hazard_bias=2, set_level=0.5,
                           calibration="none", length_calibration=False).fit(_corpus(12))
    p = ranker.predict(_run(100))
    assert math.isfinite(p.step_confidence) and math.isfinite(p.agent_confidence)


# --------------------------------------------------------------------------- 3. files where traces belong


def test_fit_on_paths_is_a_named_type_error_pointing_to_the_readers() -> None:
    """``fit(["a.json"])`` raised ``AttributeError: 'str' object has no attribute 'check'``."""
    with pytest.raises(RankerTypeError) as err:
        LearnedRanker().fit(["a.json"])
    e = err.value
    assert isinstance(e, TypeError) and isinstance(e, UsageError) and e.field == "traces[0]"
    assert "Trace objects" in e.message and "'a.json'" in e.message
    assert "attrib.read_paths" in e.message and "attrib.load_trace" in e.message
    runs = _corpus(8)
    with pytest.raises(RankerTypeError, match=r"traces\[8\].*dict"):
        LearnedRanker().fit([*runs, {"id": "x"}])
    with pytest.raises(RankerTypeError, match="sequence of Trace objects, got str") as err:
        LearnedRanker().fit("runs/")  # a folder name: not fitted one character at a time
    assert err.value.field == "traces"


# --------------------------------------------------------------------------- 4. to_dict before fit


def test_to_dict_before_fit_says_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
        LearnedRanker().to_dict()


# --------------------------------------------------------------------------- 5. in-sample verdicts


def test_a_ranker_object_flags_the_runs_it_was_fitted_on_as_a_ranker_file_does(tmp_path) -> None:
    """``analyze(run, model=ranker)`` said ``in_sample: None`` for a run the ranker was fitted on, while the same fit
    saved by ``fit_artifact`` and read with ``model_path=`` said True with an "In sample" note."""
    runs = _corpus(36)
    ranker = LearnedRanker(random_state=0).fit(runs)
    path = tmp_path / "mine.json"
    path.write_bytes(orjson.dumps(fit_artifact(runs, "test")))
    rerun = msgspec.structs.replace(_run(6), id="my-rerun",  # task 0 again, another closing turn
                                    steps=(*_run(6).steps[:-1], Step(index=4, agent="planner", content="Done.")))
    # a new task: new text and its own question id (with task q4's id it is a run of q4, whatever its text)
    new = msgspec.structs.replace(_run(100), task="Compute the cost of 4 lamps at $20 each with 9% duty.",
                                  metadata={"question_id": "q-new"})
    for run, in_sample, same_task in ((runs[0], True, None), (rerun, False, True), (new, False, False)):
        obj = attrib.analyze(run, model=ranker)
        file = attrib.analyze(run, model_path=str(path))
        assert obj.evidence["in_sample"] is file.evidence["in_sample"] is in_sample
        assert obj.evidence["same_task_trained"] is file.evidence["same_task_trained"] is same_task
    assert "In sample: the ranker was fitted on this very run" in attrib.analyze(runs[0], model=ranker).to_markdown()
    # kept through to_dict / from_dict; a ranker saved without them (older) still loads and says nothing
    back = LearnedRanker.from_dict(orjson.loads(orjson.dumps(ranker.to_dict())))
    assert attrib.analyze(runs[0], model=back).evidence["in_sample"] is True
    older = {k: v for k, v in ranker.to_dict().items() if k not in ("fingerprints", "tasks", "question_ids")}
    ev = attrib.analyze(runs[0], model=LearnedRanker.from_dict(older)).evidence
    assert ev["in_sample"] is None and ev["same_task_trained"] is None
    # the ranker file keeps its one top-level list of runs (not one per setting)
    art = orjson.loads(path.read_bytes())
    assert "fingerprints" in art and all("fingerprints" not in s for s in art["settings"].values())


def test_the_step_set_is_described_as_the_reports_word_it() -> None:
    """The ranker's docs promised the decisive step "with probability >= set_level", the per-run reading the reports
    stopped giving (conformal coverage is over runs like the calibration runs: ``render.step_set_line``)."""
    import inspect

    import attrib.methods.ranker as ranker

    text = " ".join(inspect.getsource(ranker).split())
    assert "with probability >= set_level" not in text and "with probability >= ``set_level``" not in text
    assert "in ≥ ``set_level`` of runs like those it was calibrated on" in text
