"""`attrib eval traces` / `attrib fit` / `--model` on a user's own labelled runs, as a team lead walks them
(walkthrough w5): seen tasks by question id, task-level intervals, the step head in the advice, the few-runs caution,
conflicting copies and near-duplicate tasks, and the smaller edges. The runs are the invented system of
tests/fixtures/own_system (30 runs of 10 tasks: two chat runs with metadata.question_id, one OTLP run without)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.readers import read_paths
from attrib.trace import Trace

runner = CliRunner()
OWN = Path(__file__).parent / "fixtures" / "own_system" / "runs"


def _chat(tasks: str = "1-7") -> list[Trace]:
    """The chat runs (two per task, with metadata.question_id q01..q10) of tasks ``tasks`` (a glob range)."""
    return read_paths(sorted((OWN / "chat").glob(f"datadesk-q0[{tasks}]-*.json")))


def _reruns_with_new_texts() -> list[Trace]:
    """The OTLP run of each task q01..q07, as a re-run whose task text carries a request id (so it differs from the
    training runs' text) but whose metadata.question_id is the task's: a seen task by its id only."""
    out = []
    for i, t in enumerate(read_paths(sorted((OWN / "otlp").glob("datadesk-q0[1-7]-r3.json")))):
        qid = t.id.split("-")[1]
        out.append(msgspec.structs.replace(t, task=f"[req {1006 + i}] {t.task}",
                                           metadata={**t.metadata, "question_id": qid}))
    return out


def _write(traces: list[Trace], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t in traces:
        (folder / f"{t.id}.json").write_bytes(t.to_json())
    return folder


# --- 1. a run that shares a training run's question_id is a seen task everywhere ------------------------------------


def test_a_rerun_sharing_a_training_question_id_is_a_seen_task_though_its_text_differs(tmp_path: Path) -> None:
    """w5 #1: a ranker file listed only its runs' fingerprints and task-text hashes, so re-runs of its tasks whose
    text carried a request id were "unseen": no IN SAMPLE flag, the advice kept the ranker on that row, and the
    verdict had no "Seen task" note. The file (and a fitted LearnedRanker) now lists the question ids too."""
    from attrib.evaluate.labelled import evaluate_labelled
    from attrib.methods.learned import attribute, fit_artifact, ranker_training
    from attrib.methods.ranker import LearnedRanker
    from attrib.render import verdict_notes

    train, reruns = _chat(), _reruns_with_new_texts()
    art = fit_artifact(train, "test")
    assert art["question_ids"] == [f"q0{i}" for i in range(1, 8)]
    model = tmp_path / "mine.json"
    model.write_bytes(orjson.dumps(art))
    file = ranker_training(model)
    assert file is not None and file.question_ids == frozenset(art["question_ids"])
    assert all(file.seen(t) == (False, True) for t in reruns)
    # the eval row of the ranker file is in sample for all 7, with no row of "unseen" runs left to quote
    r = evaluate_labelled(reruns, k=5, model_path=str(model), pool_who_and_when=False)
    row = next(x for x in r["rows"] if x["method"] == "learned (your ranker)")
    assert row["protocol"].endswith("IN SAMPLE for 7")
    assert any(n.startswith("7 of these traces are other runs of tasks this ranker was fitted on") for n in r["notes"])
    # the verdict says so (evidence.same_task_trained, the "Seen task" note)
    v = attribute(reruns[0], model_path=str(model))
    assert v.evidence["in_sample"] is False and v.evidence["same_task_trained"] is True
    assert any(text.startswith("Seen task") for text, _ in verdict_notes(v, 5))
    out = runner.invoke(app, ["analyze", str(_write(reruns[:1], tmp_path / "one") / f"{reruns[0].id}.json"),
                              "--model", str(model)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "Seen task" in out.output
    # a ranker object remembers them too, through to_dict / from_dict
    ranker = LearnedRanker(random_state=0).fit(train)
    assert ranker.question_ids_ == frozenset(art["question_ids"]) and ranker.seen(reruns[0]) == (False, True)
    again = LearnedRanker.from_dict(orjson.loads(orjson.dumps(ranker.to_dict())))
    assert again.seen(reruns[0]) == (False, True)
    # a run of a task it never saw is still unseen, whatever its id
    other = _chat("8")[0]
    assert file.seen(other) == (False, False) and ranker.seen(other) == (False, False)


def test_an_older_ranker_file_without_question_ids_still_loads_and_matches_by_text(tmp_path: Path) -> None:
    from attrib.evaluate.labelled import evaluate_labelled
    from attrib.methods.learned import attribute, fit_artifact, ranker_training

    art = fit_artifact(_chat(), "test")
    del art["question_ids"]  # written by an attrib fit before they were listed
    model = tmp_path / "old.json"
    model.write_bytes(orjson.dumps(art))
    reruns = _reruns_with_new_texts()
    file = ranker_training(model)
    assert file is not None and file.question_ids is None
    assert file.seen(reruns[0]) == (False, False)  # its text differs and the file has no ids to compare
    assert attribute(reruns[0], model_path=str(model)).evidence["same_task_trained"] is False
    r = evaluate_labelled(reruns, k=5, model_path=str(model), pool_who_and_when=False)
    assert any(n.startswith(f"{model} lists its runs' tasks by text but not their question ids") for n in r["notes"])


# --- 2. intervals and the advice's paired test resample tasks where runs repeat them --------------------------------


def test_the_interval_resamples_tasks_where_runs_repeat_them_and_is_unchanged_with_one_run_per_task() -> None:
    """w5 #2: 64 runs of 18 tasks whose re-runs fail alike got a 95% interval of 62-84 (resampling runs); over
    tasks it is 53-89. Runs that repeat one outcome 4 times are one draw of the task, not four."""
    import numpy as np

    from attrib.evaluate.metrics import bootstrap_ci, paired_gain

    task_hits = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=float)
    runs = np.repeat(task_hits, 4)  # each task run 4 times, all alike
    tasks = [f"q{i}" for i in range(10) for _ in range(4)]
    assert bootstrap_ci(runs, groups=tasks) == bootstrap_ci(task_hits)  # draw for draw, the 10 tasks
    lo, hi = bootstrap_ci(runs, groups=tasks)
    lo_runs, hi_runs = bootstrap_ci(runs)
    assert hi - lo > 1.5 * (hi_runs - lo_runs)  # the run bootstrap claimed about half the width
    # one run per task (Who&When): the plain bootstrap, to the last digit, so its figures do not move
    x = np.random.default_rng(3).random(58)
    assert bootstrap_ci(x, groups=[f"q{i}" for i in range(58)]) == bootstrap_ci(x)
    b = np.roll(runs, 4)
    g = paired_gain(runs, b, groups=tasks)
    assert g["ci_high"] - g["ci_low"] > paired_gain(runs, b)["ci_high"] - paired_gain(runs, b)["ci_low"]


def test_eval_traces_rows_and_advice_resample_tasks_and_who_and_when_rows_do_not_change() -> None:
    from attrib.evaluate.data import load_subset
    from attrib.evaluate.harness import cross_validate, floor_fitter, mean_summary
    from attrib.evaluate.labelled import evaluate_labelled
    from attrib.evaluate.metrics import paired_gains
    from attrib.trace import question_id

    r = evaluate_labelled(read_paths([OWN]), k=5, pool_who_and_when=False)
    assert all(x.get("ci_over") == "tasks" for x in r["rows"] if "step_accuracy_ci" in x)
    assert "30 runs of 10 tasks: the 95% intervals and the advice resample tasks, not runs, since re-runs of one " \
           "task are not independent" in r["notes"]
    # Who&When has one log per question: its rows and gains are what they were without groups
    hand = list(load_subset("hand"))[:30]
    groups = {t.id: question_id(t) for t in hand}
    runs = [cross_validate(hand, floor_fitter, 5, 0)]
    assert mean_summary(runs, groups) == mean_summary(runs)
    assert paired_gains(runs, runs[::-1], groups) == paired_gains(runs, runs[::-1])


# --- 3. the step head measured is the one the advice's fit command writes --------------------------------------------


def test_a_logit_refit_is_named_in_the_protocol_the_json_and_the_advices_fit_command() -> None:
    """w5 #3: `eval traces --step-head logit --no-pool` advised `attrib fit runs/ --no-pool --out ...`, which fits the
    first-passage head, not the logit ranker measured; neither the protocol column nor the JSON said which head."""
    from attrib.cli.evaluate import advice_line

    r = runner.invoke(app, ["eval", "traces", str(OWN), "--no-pool", "--step-head", "logit", "--json"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    assert out["step_head"] == "logit"
    assert next(x for x in out["rows"] if x["method"] == "learned, refit")["protocol"] == "5-fold, logit head"
    assert out["advice"]["fit_flags"] == "--no-pool --step-head logit"
    r = runner.invoke(app, ["eval", "traces", str(OWN), "--no-pool", "--json"])
    out = orjson.loads(r.output)
    assert out["step_head"] == "first_passage" and out["advice"]["fit_flags"] == "--no-pool"
    assert next(x for x in out["rows"] if x["method"] == "learned, refit")["protocol"] == "5-fold"
    # the line a significant advice prints: the fit command carries the head, and the format the runs were read with
    gain = {"mean": 20.0, "ci_low": 5.0, "ci_high": 35.0}
    adv = {"use": "learned, refit", "best_refit": "learned, refit", "against": "learned (shipped)", "n": 30,
           "fit_flags": "--no-pool --step-head logit", "step_gain": gain, "agent_gain": gain, "significant": True}
    assert (advice_line(adv, ["my runs/"], "chat") or "").endswith(
        "Fit it with `attrib fit 'my runs/' -f chat --no-pool --step-head logit --out my_ranker.json`")


# --- 4. the few-runs caution in eval traces, and one word on --no-pool from eval and fit -----------------------------


def _few(tmp_path: Path) -> Path:
    """24 labelled runs of 8 tasks (the chat runs of q01-q08 and their OTLP re-runs): few for a fit alone."""
    import shutil

    d = tmp_path / "few"
    for sub in ("chat", "otlp"):
        (d / sub).mkdir(parents=True)
        for f in sorted((OWN / sub).glob("datadesk-q0[1-8]-*.json")):
            shutil.copy(f, d / sub / f.name)
    return d


def test_eval_traces_cautions_on_few_runs_as_fit_does_and_fit_does_not_contradict_its_advice(tmp_path: Path) -> None:
    """w5 #10: eval traces advised `attrib fit small8/ --no-pool` on 26 runs of 8 tasks with no caution, and that fit
    then warned "drop --no-pool to pool them with Who&When"."""
    from attrib.cli.evaluate import advice_line

    runs = _few(tmp_path)
    r = runner.invoke(app, ["eval", "traces", str(runs), "--no-pool", "--json"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    words = "24 labelled runs of 8 tasks (under 30 runs or 10 tasks)"
    assert any(n.startswith(f"{words}: a ranker fitted on them alone (`attrib fit --no-pool`) has rough confidences")
               for n in out["notes"])
    assert out["advice"]["caution"] == words  # the best refit here is the one fitted on these runs alone
    gain = {"mean": 20.0, "ci_low": 5.0, "ci_high": 35.0}
    line = advice_line({**out["advice"], "use": "learned, refit", "significant": True, "step_gain": gain,
                        "agent_gain": gain, "n": 24}, [str(runs)]) or ""
    assert line.endswith(f"--no-pool --out my_ranker.json`. Fitted on {words} alone, its confidences and 90% step "
                         "sets are rough, as `attrib fit` warns")
    r = runner.invoke(app, ["fit", str(runs), "--no-pool", "--out", str(tmp_path / "m.json")], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    warning = " ".join(r.stderr.split())
    assert warning.startswith(f"warning: fitted on {words}: its confidences and 90% step sets are rough")
    assert "drop --no-pool" not in warning and "keep --no-pool where it scores higher there" in warning
    # enough runs and tasks: no caution
    r = runner.invoke(app, ["eval", "traces", str(OWN), "--no-pool", "--json"])
    out = orjson.loads(r.output)
    assert not any("under 30 runs" in n for n in out["notes"]) and "caution" not in out["advice"]



def test_the_few_runs_words_are_one_phrase_for_fit_eval_and_the_reports() -> None:
    """`attrib fit`, `attrib eval traces` and a verdict's report word few runs by one function of the numpy-free
    ``ranker_names`` (labelled.py and render.py each built "(under N runs or M tasks)")."""
    from attrib.methods.ranker_names import few_runs_words
    from attrib.render import few_runs_note
    from attrib.trace import Attribution

    assert few_runs_words(12, 6) == "12 labelled runs of 6 tasks (under 30 runs or 10 tasks)"
    assert few_runs_words(12, None) == "12 labelled runs (under 30 runs or 10 tasks)"  # a file without a task count
    assert few_runs_words(40, 20) is None and few_runs_words(None, None) is None
    for runs, tasks in ((12, 6), (12, None), (40, 5)):
        fitted = {"runs": runs, **({"tasks": tasks} if tasks is not None else {})}
        a = Attribution(trace_id="t", method="learned", agent="a", step=0, confidence=0.5,
                        evidence={"fitted_on": fitted})
        assert (few_runs_note(a) or "").startswith(f"This ranker was fitted on {few_runs_words(runs, tasks)}: ")

# --- 5. copies of one run with different labels; near-duplicate task texts without a question id ---------------------


def _with_disputed_copies(tmp_path: Path) -> tuple[Path, list[str]]:
    """The fixture's runs plus two copies of datadesk-q01-r1 (same steps) labelled by other annotators."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(OWN, runs)
    src = runs / "chat" / "datadesk-q01-r1.json"
    d = orjson.loads(src.read_bytes())
    steps = read_paths([src])[0].steps
    other = [s for s in steps if s.agent not in (d["mistake_agent"], "user") and s.role != "tool"][:2]
    names = []
    for k, s in enumerate(other, 2):
        copy = {**d, "id": f"datadesk-q01-r1-annotator{k}", "mistake_agent": s.agent, "mistake_step": s.index}
        name = f"datadesk-q01-r1-annotator{k}.json"
        (runs / "chat" / name).write_bytes(orjson.dumps(copy))
        names.append(f"{name} ({s.agent} at step {s.index})")
    return runs, names


def test_copies_of_one_run_with_different_labels_are_named_and_counted_once(tmp_path: Path) -> None:
    """w5 #9: two annotators' copies of one run were scored and trained on three times, against three labels, with
    only "1 run(s) repeat another run's steps exactly"; fit said nothing."""
    runs, names = _with_disputed_copies(tmp_path)
    r = runner.invoke(app, ["eval", "traces", str(runs), "--no-pool", "--json"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    assert out["n"] == 30  # each run once: the two extra copies are not counted
    note = next(n for n in out["notes"] if n.startswith("1 run(s) have copies with different labels: "))
    assert all(name in note for name in names) and "datadesk-q01-r1.json (researcher at step 4)" in note
    assert note.endswith("Each run is counted once, with its first copy's label; settle the label and remove the "
                         "other copies")
    assert not any("repeat another run's steps" in n for n in out["notes"])
    r = runner.invoke(app, ["fit", str(runs), "--no-pool", "--out", str(tmp_path / "m.json")], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert "warning: 1 run(s) have copies with different labels" in " ".join(r.stderr.split())
    assert orjson.loads((tmp_path / "m.json").read_bytes())["n_train"] == 30


def test_fit_and_eval_traces_run_one_label_check_in_one_order(tmp_path: Path) -> None:
    """``check_labels`` is the label check of both commands (each ran the three checks in its own copy of the order):
    disputed copies kept once, then labels naming an agent that did not write the step, then task texts that differ
    only in digits; eval's notes start with its notes and fit warns of each, in that order."""
    from attrib.evaluate.labelled import check_labels, read_labelled

    runs, _ = _with_disputed_copies(tmp_path)
    d = orjson.loads((runs / "chat" / "datadesk-q02-r1.json").read_bytes())
    steps = read_paths([runs / "chat" / "datadesk-q02-r1.json"])[0].steps
    wrong = next(s for s in steps if s.agent not in (d["mistake_agent"], "user") and s.role != "tool")
    (runs / "chat" / "datadesk-q02-r1.json").write_bytes(orjson.dumps({**d, "mistake_step": wrong.index}))
    for k in (1, 2):  # two runs without a question id whose tasks differ in a request number
        t = read_paths([runs / "chat" / f"datadesk-q03-r{k}.json"])[0]
        (runs / "chat" / f"datadesk-q03-r{k}.json").write_bytes(msgspec.structs.replace(
            t, task=f"[req {k}] {t.task}", metadata={}).to_json())
    files: dict[str, str] = {}
    traces, _ = read_labelled([str(runs)], files=files)
    kept, notes = check_labels(traces, files)
    assert len(kept) == len(traces) - 2 and [n.split(" ", 3)[:3] for n in notes] == [
        ["1", "run(s)", "have"], ["1", "of", "30"], ["2", "runs", "without"]], notes
    out = orjson.loads(runner.invoke(app, ["eval", "traces", str(runs), "--no-pool", "--json"]).output)
    assert out["notes"][:3] == notes
    r = runner.invoke(app, ["fit", str(runs), "--no-pool", "--out", str(tmp_path / "m.json")], env={"COLUMNS": "2000"})
    assert r.exit_code == 0, r.output
    assert [line.removeprefix("warning: ") for line in r.stderr.splitlines()][:3] == notes


def test_runs_without_question_ids_whose_tasks_differ_only_in_digits_are_flagged(tmp_path: Path) -> None:
    """w5 #11: re-runs without question ids whose task texts carried a request id ("[req 1006] ...") became 64
    tasks of one run each, and the refit's figures leaked from 73 % to 77 % without a word."""
    traces = [msgspec.structs.replace(t, task=f"[req {1000 + i}] {t.task}", metadata={})
              for i, t in enumerate(read_paths([OWN / "chat"]))]
    folder = _write(traces, tmp_path / "noq")
    note = ("20 runs without metadata.question_id have task texts that differ from another's only in digits, brackets "
            "or spaces (e.g. ")
    r = runner.invoke(app, ["eval", "traces", str(folder), "--no-pool", "--json"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    assert out["n_tasks"] == 20 and any(n.startswith(note) and "give them one metadata.question_id" in n
                                        for n in out["notes"])
    r = runner.invoke(app, ["fit", str(folder), "--no-pool", "--out", str(tmp_path / "m.json")], env={"COLUMNS": "400"})
    assert r.exit_code == 0 and f"warning: {note}" in " ".join(r.stderr.split())
    # with their question ids (or one task text each) there is nothing to say
    out = orjson.loads(runner.invoke(app, ["eval", "traces", str(OWN), "--no-pool", "--json"]).output)
    assert not any("differ from another's only in digits" in n for n in out["notes"])


# --- 6. the smaller edges -----------------------------------------------------------------------------------------


def test_both_spellings_of_the_first_passage_head_work_in_the_cli_and_the_library(tmp_path: Path) -> None:
    """w5 #12: the CLI refused `--step-head first_passage`, the library refused "first-passage"."""
    from attrib.methods.learned import fit_artifact
    from attrib.methods.ranker import LearnedRanker

    train = _chat()
    a = LearnedRanker(step_head="first-passage", random_state=0).fit(train)
    b = LearnedRanker(step_head="first_passage", random_state=0).fit(train)
    assert a.to_dict() == b.to_dict() and a.to_dict()["params"]["step_head"] == "first_passage"
    assert fit_artifact(train, "t", step_head="first-passage")["settings"]["with_gt"]["params"]["step_head"] \
        == "first_passage"
    for spelling in ("first_passage", "first-passage"):
        r = runner.invoke(app, ["fit", str(OWN), "--no-pool", "--step-head", spelling, "--out", str(tmp_path / "m.json")])
        assert r.exit_code == 0, r.output
        assert orjson.loads((tmp_path / "m.json").read_bytes())["settings"]["with_gt"]["step_model"]["kind"] \
            == "first_passage"
    r = runner.invoke(app, ["eval", "traces", str(OWN), "--no-pool", "--step-head", "first_passage", "--json"])
    assert r.exit_code == 0 and orjson.loads(r.output)["step_head"] == "first_passage"
    r = runner.invoke(app, ["fit", str(OWN), "--step-head", "hazard", "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 2 and "first-passage, logit" in r.output


def test_a_step_heads_names_both_ways_live_in_one_numpy_free_module() -> None:
    """The library's name of a step head (``step_head_name``) and the flag's (``step_head_flag``, which the eval
    advice's ``fit_flags`` and protocol words use) are one pair in ``ranker_names``: the CLI reads ``--step-head``
    without importing the ranker's numpy."""
    import subprocess
    import sys

    from attrib.evaluate.labelled import fit_flags
    from attrib.methods.ranker import step_head_name as reexported
    from attrib.methods.ranker_names import RankerParamError, step_head_flag, step_head_name

    assert reexported is step_head_name
    for flag in ("first-passage", "logit"):
        assert step_head_flag(step_head_name(flag)) == step_head_flag(flag) == flag
    assert fit_flags("learned, refit", "logit") == "--no-pool --step-head logit"
    with pytest.raises(RankerParamError, match="step_head"):
        step_head_flag("hazard")
    code = ("import sys\nfrom attrib.methods.ranker_names import step_head_flag, step_head_name\n"
            "step_head_flag(step_head_name('first-passage')); print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_random_state_none_is_refused_saying_why() -> None:
    """w5 #12: LearnedRanker(random_state=None).fit(...) was refused as "must be a whole number >= 0", though the
    README calls it scikit-learn-style and scikit-learn takes None. It is still refused (a ranker file records the
    int seed its folds came from, so a fit can be repeated), now with that reason."""
    import numpy as np
    import pytest

    from attrib.methods.ranker import LearnedRanker, RankerParamError

    for seed in (None, np.random.RandomState(0)):
        with pytest.raises(RankerParamError) as err:
            LearnedRanker(random_state=seed).fit(_chat())
        assert err.value.field == "random_state"
        assert "must be a whole number >= 0" in err.value.message
        assert "scikit-learn's None (a fresh seed each fit) or a RandomState" in err.value.message
        assert "so pass an int (default 0)" in err.value.message


def test_a_file_of_one_rankers_to_dict_is_refused_with_a_hint_to_fit_artifact(tmp_path: Path) -> None:
    """w5 #12: json.dump(ranker.to_dict()) was refused by --model with 'no "settings" object (its keys: params,
    features, ...)', which did not say how to write a ranker file."""
    from attrib.methods.ranker import LearnedRanker

    path = tmp_path / "lib_ranker.json"
    path.write_bytes(orjson.dumps(LearnedRanker(random_state=0).fit(_chat()).to_dict()))
    run = str(OWN / "chat" / "datadesk-q08-r1.json")
    r = runner.invoke(app, ["analyze", run, "--model", str(path)], env={"COLUMNS": "400"})
    line = " ".join(r.output.split())
    assert r.exit_code == 3 and "one LearnedRanker's to_dict(), not a ranker file" in line
    assert "attrib.methods.learned.fit_artifact(traces, trained_on) or `attrib fit`" in line
    r = runner.invoke(app, ["eval", "traces", str(OWN), "--model", str(path), "--no-pool"], env={"COLUMNS": "400"})
    assert r.exit_code == 3 and "one LearnedRanker's to_dict(), not a ranker file" in " ".join(r.output.split())


def test_eval_traces_json_has_per_run_rows_and_model_keeps_the_shipped_row_beside_it(tmp_path: Path) -> None:
    """w5 #12: `eval traces --json` had no per-run rows (which runs does the refit miss?), and with --model the
    shipped row vanished, so "mine against shipped" took two runs."""
    from attrib.methods.learned import fit_artifact

    model = tmp_path / "mine.json"
    model.write_bytes(orjson.dumps(fit_artifact(_chat(), "test")))  # tasks 1-7
    r = runner.invoke(app, ["eval", "traces", str(OWN), "--model", str(model), "--no-pool", "--json"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    rows = {x["method"]: x for x in out["rows"]}
    assert rows["learned (shipped)"]["protocol"] == "as shipped" and rows["learned (shipped)"]["n"] == 30
    assert rows["learned (your ranker)"]["protocol"] == f"model {model}, IN SAMPLE for 21"
    per = {x["trace_id"]: x for x in out["per_trace"]}
    assert len(per) == 30
    row = per["datadesk-q01-r1"]
    assert (row["true_step"], row["true_agent"], row["question_id"]) == (4, "researcher", "q01")
    assert row["file"].endswith("datadesk-q01-r1.json")
    assert set(row["verdicts"]) == {"always-step-1", "most-active-agent", "learned (shipped)", "learned (your ranker)",
                                    "learned, refit", "floor"}
    mine = row["verdicts"]["learned (your ranker)"]
    assert mine["in_sample"] == "run" and per["datadesk-q01-r3"]["verdicts"]["learned (your ranker)"]["in_sample"] \
        == "task" and per["datadesk-q09-r1"]["verdicts"]["learned (your ranker)"]["in_sample"] is None
    refit = row["verdicts"]["learned, refit"]
    assert refit["step_hit"] == (refit["step"] == 4) and set(refit) == {"step", "agent", "confidence", "step_hit",
                                                                       "agent_hit"}
    # the rows' accuracy is the per-run hits' mean
    hits = [x["verdicts"]["learned, refit"]["step_hit"] for x in out["per_trace"]]
    assert abs(100 * sum(hits) / len(hits) - rows["learned, refit"]["step_accuracy"]) < 1e-9


# --- 7. the README's own-system figures are what the command prints -------------------------------------------------


def test_the_readme_quotes_what_eval_traces_prints_on_the_own_system_fixture() -> None:
    """w5 #6: the README quoted 'use learned, refit ... +23.3 points (95% CI +3.3 to +43.3)' and a shipped ranker at
    23.3 % while the command printed 'keep learned (shipped)' and 26.7 %."""
    from attrib.cli.evaluate import advice_line
    from attrib.paths import REPO_ROOT

    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    r = runner.invoke(app, ["eval", "traces", str(OWN), "--json"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    step = {x["method"]: f"{x['step_accuracy']:.1f} %" for x in out["rows"]}
    assert f"*advice: {advice_line(out['advice'], ['tests/fixtures/own_system/runs/'])}*" in readme
    assert (f"refit alone scored {step['learned, refit']} step and pooled {step['learned, refit + Who&When']}, within "
            f"noise of each other on 30 runs, against the shipped ranker's {step['learned (shipped)']} (the floor: "
            f"{step['floor']})") in readme
    assert (f"the refit alone scores {step['learned, refit']} step against the shipped ranker's "
            f"{step['learned (shipped)']}") in readme


def test_advice_says_a_ranker_fitted_on_these_runs_or_their_tasks_cannot_be_paired(tmp_path: Path) -> None:
    """With every run in sample, some as other runs of a training task (by question id), the advice said the ranker
    "was fitted on every one of these runs", which was untrue of those."""
    from attrib.cli.evaluate import advice_line
    from attrib.evaluate.labelled import evaluate_labelled
    from attrib.methods.learned import fit_artifact

    model = tmp_path / "mine.json"
    model.write_bytes(orjson.dumps(fit_artifact(_chat(), "test")))
    r = evaluate_labelled(_chat() + _reruns_with_new_texts(), k=5, model_path=str(model), pool_who_and_when=False)
    assert r["advice"]["use"] is None
    assert (advice_line(r["advice"], ["runs/"]) or "").startswith(
        "none against 'learned (your ranker)': it was fitted on every one of these runs or on other runs of their "
        "tasks, so its row is in sample")
