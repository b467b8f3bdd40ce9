"""A ranker fitted on a dozen of a user's own runs: its confidences stay modest on a run unlike them, it records how
much data it rests on, and ``attrib fit`` warns that its confidences and step sets are rough."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from typer.testing import CliRunner

from attrib.cli import app
from attrib.evaluate.data import question_id
from attrib.evaluate.labelled import read_labelled
from attrib.methods.ranker import FEW_RUNS, FEW_TASKS, LearnedRanker, few_runs
from attrib.readers import read_paths

runner = CliRunner()

TASKS = [("What is 15% of 240 plus 12?", "48"), ("Convert 5 miles to km.", "8.05"), ("Area of a 7 by 9 rectangle?", "63"),
         ("Average of 10, 20, 60?", "30"), ("Days in 3 weeks and 4 days?", "25"), ("Cost of 6 pens at 1.25 each?", "7.5")]

#: A run of another kind (tool call, other agents, a late planner's slip): unlike the runs above.
INVENTORY = [
    {"role": "user", "name": "user", "content": "How many units of widget W-7 should we reorder? Current stock 140, "
     "weekly demand 60, lead time 3 weeks, safety stock 50."},
    {"role": "assistant", "name": "Planner", "content": "Plan: DataAgent fetches stock, Forecaster computes demand "
     "over the lead time, Planner decides the reorder quantity."},
    {"role": "assistant", "name": "DataAgent", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_stock", "arguments": "{\"sku\": \"W-7\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "{\"sku\": \"W-7\", \"on_hand\": 140, \"on_order\": 0}"},
    {"role": "assistant", "name": "DataAgent", "content": "Stock on hand is 140 units, nothing on order."},
    {"role": "assistant", "name": "Forecaster", "content": "Demand over the lead time is 60 per week times 3 weeks = "
     "120 units. Adding safety stock of 50 gives a target of 170."},
    {"role": "assistant", "name": "Planner", "content": "Reorder = target - stock = 170 - 140 = 30. But wait, I will "
     "use the weekly demand instead: reorder 60 - 140 is negative, so reorder 0 units."},
    {"role": "assistant", "name": "Critic", "content": "Looks fine, no reorder needed since stock covers the weekly "
     "demand."},
    {"role": "assistant", "name": "Planner", "content": "Final answer: reorder 0 units. TERMINATE"},
]


def _runs(folder: Path, n_tasks: int = 6, per_task: int = 2, seed: int = 7) -> Path:
    """``n_tasks * per_task`` labelled chat runs of a small solver/checker/retriever system (one file each): a
    retriever, solver or checker slips a wrong number in, and the planner reports it."""
    rng = random.Random(seed)
    tasks = TASKS + [(f"What is {a} times {a + 3}?", str(a * (a + 3))) for a in range(11, 11 + max(0, n_tasks - 6))]
    folder.mkdir(parents=True, exist_ok=True)
    k = 0
    for qi, (q, gt) in enumerate(tasks[:n_tasks]):
        for _ in range(per_task):
            k += 1
            wrong = str(round(float(gt) * rng.choice([1.5, 2, 0.5]) + rng.randint(1, 5), 2))
            by = rng.choice(["solver", "checker", "retriever"])
            msgs = [{"role": "user", "name": "user", "content": q},
                    {"role": "assistant", "name": "planner", "content": "Plan: retriever gathers the facts, solver "
                     f"computes, checker verifies. Task: {q}"}]
            msgs.append({"role": "assistant", "name": "retriever", "content":
                         f"The relevant figure I found is {wrong} (from memory, no source)." if by == "retriever"
                         else f"The facts are in the question itself: {q}"})
            msgs.append({"role": "assistant", "name": "solver", "content": f"Computing: the answer is {wrong}."
                         if by == "solver" else "Computing step by step from the facts: the answer is "
                         f"{wrong if by == 'retriever' else gt}."})
            msgs.append({"role": "assistant", "name": "checker", "content":
                         f"I re-did it and I think it should be {wrong} instead. Correcting to {wrong}."
                         if by == "checker" else f"Verified: {wrong}. Looks correct."})
            msgs.append({"role": "assistant", "name": "planner", "content": f"Final answer: {wrong}"})
            m = {"retriever": 2, "solver": 3, "checker": 4}[by]
            for _ in range(rng.randint(0, 3)):
                msgs.insert(2, {"role": "assistant", "name": "planner", "content": "Let us make sure everyone is "
                                "ready before we begin."})
                m += 1
            run = {"task": q, "ground_truth": gt, "messages": msgs, "mistake_step": m, "mistake_agent": by,
                   "metadata": {"question_id": f"q{qi}"}}
            (folder / f"run{k:02d}.json").write_text(json.dumps(run))
    return folder


def _fit(folder: Path) -> LearnedRanker:
    """The ranker `attrib fit --no-pool` writes for runs without the ground-truth answer (as the inventory run)."""
    traces = [t.without_ground_truth() for t in read_labelled([str(folder)])[0]]
    return LearnedRanker().fit(traces, [question_id(t) for t in traces])


def test_a_dozen_runs_all_ranked_right_do_not_make_an_unsure_verdict_certain(tmp_path: Path) -> None:
    """12 runs of 6 tasks that the inner folds all got right (every calibration score is 0) once made the Platt map a
    constant 99 %, so a verdict whose step had p = 0.25 read "confidence 99%"."""
    m = _fit(_runs(tmp_path / "mine"))
    assert m.step_set_ is not None and list(m.step_set_.scores_[0]) == [0.0] * 12  # the case: every calibration run ranked first, out of fold
    (tmp_path / "inventory.jsonl").write_text("\n".join(json.dumps(x) for x in INVENTORY))
    t = read_paths([str(tmp_path / "inventory.jsonl")])[0]
    p = m.predict(t)
    assert p.step_probs.max() < 0.35  # the ranker itself is unsure here
    assert p.step_confidence < 0.6 and p.agent_confidence < 0.8  # were 0.99 and 0.99


def test_the_ranker_records_how_many_runs_and_tasks_it_rests_on(tmp_path: Path) -> None:
    runs = _runs(tmp_path / "mine")
    m = _fit(runs)
    assert (m.n_train_, m.n_tasks_, m.n_calibration_) == (12, 6, 12)
    d = m.to_dict()
    again = LearnedRanker.from_dict(json.loads(json.dumps(d)))
    assert (again.n_train_, again.n_tasks_, again.n_calibration_) == (12, 6, 12)
    old = {k: v for k, v in d.items() if k not in ("n_train", "n_tasks", "n_calibration")}  # a file from before
    older = LearnedRanker.from_dict(old)
    assert (older.n_train_, older.n_tasks_, older.n_calibration_) == (None, None, None)
    assert older.predict(read_paths([str(runs / "run01.json")])[0]).step_confidence > 0  # and still scores


def test_few_runs_thresholds() -> None:
    assert few_runs(FEW_RUNS - 1, 50) and few_runs(500, FEW_TASKS - 1)
    assert not few_runs(FEW_RUNS, FEW_TASKS) and not few_runs(None, None)


def test_fit_on_few_runs_warns_in_one_line_and_still_writes(tmp_path: Path) -> None:
    runs, out = _runs(tmp_path / "mine"), tmp_path / "mine.json"
    r = runner.invoke(app, ["fit", str(runs), "--no-pool", "--out", str(out)], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert out.is_file() and json.loads(out.read_text())["settings"]["with_gt"]["n_tasks"] == 6
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: fitted on 12 labelled runs of 6 tasks"), r.stderr
    assert "--no-pool" in lines[0] and "attrib eval traces" in lines[0]


def test_fit_on_enough_runs_and_tasks_does_not_warn(tmp_path: Path) -> None:
    runs, out = _runs(tmp_path / "mine", n_tasks=FEW_TASKS, per_task=math.ceil(FEW_RUNS / FEW_TASKS)), tmp_path / "m.json"
    r = runner.invoke(app, ["fit", str(runs), "--no-pool", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "warning" not in r.stderr and out.is_file()


def test_a_verdict_from_a_ranker_on_few_runs_says_so_and_one_on_many_does_not(tmp_path: Path) -> None:
    """The fit-time warning scrolls away; the verdict itself now says what its ranker rests on
    (``evidence.fitted_on``) and, under the thresholds, that its confidence and step set are rough."""
    from attrib.methods.learned import attribute
    from attrib.render import attribution_markdown, verdict_notes

    (tmp_path / "inventory.jsonl").write_text("\n".join(json.dumps(x) for x in INVENTORY))
    t = read_paths([str(tmp_path / "inventory.jsonl")])[0]
    few = attribute(t, model=_fit(_runs(tmp_path / "mine")))
    assert few.evidence["fitted_on"] == {"runs": 12, "tasks": 6}
    note = "This ranker was fitted on 12 labelled runs of 6 tasks (under 30 runs or 10 tasks)"
    assert any(text.startswith(note) and level == "warning" for text, level in verdict_notes(few, 5))
    assert note in attribution_markdown(few, t)
    many = attribute(t, model=_fit(_runs(tmp_path / "more", n_tasks=FEW_TASKS, per_task=math.ceil(FEW_RUNS / FEW_TASKS))))
    assert many.evidence["fitted_on"]["runs"] >= FEW_RUNS
    assert not any("This ranker was fitted on" in text for text, _ in verdict_notes(many, 5))
