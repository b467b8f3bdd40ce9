"""Scoring and fitting on a user's own labelled runs: ``evaluate_labelled``, ``attrib eval traces``, ``attrib fit``
and ``attrib analyze --model``, on real Who&When runs rewritten as attrib-JSON files of another "system"."""

from pathlib import Path

import msgspec
import orjson
import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import InputError
from attrib.evaluate.data import load_subset
from attrib.evaluate.labelled import evaluate_labelled
from attrib.store import open_store

runner = CliRunner()


def _own(tmp_path, n=24, labelled=True):
    """n Algorithm-Generated runs as the user's own files (new ids, attrib JSON; labels kept or dropped)."""
    d = tmp_path / "runs"
    d.mkdir(exist_ok=True)
    for t in load_subset("algorithm")[:n]:
        u = msgspec.structs.replace(t, id=f"mine-{t.id}", source_format="attrib",
                                    label=t.label if labelled else None)
        (d / f"{u.id}.json").write_bytes(u.to_json())
    return d


def test_evaluate_labelled_rows_and_out_of_sample_shipped_row(tmp_path):
    from attrib.readers import read_paths

    traces = read_paths([_own(tmp_path)])
    r = evaluate_labelled(traces, k=4, pool_who_and_when=False)
    rows = {x["method"]: x for x in r["rows"]}
    assert r["n"] == 24 and set(rows) >= {"learned (shipped)", "learned, refit", "floor", "random"}
    # the same logs under new ids and another format are still recognised as the shipped ranker's training data
    assert rows["learned (shipped)"]["protocol"] == "as shipped, IN SAMPLE for 24"
    # the shipped ranker beats the always-step-1 rule on these runs, and its top-5 contains its top-1
    assert rows["learned (shipped)"]["step_accuracy"] > rows["always-step-1"]["step_accuracy"]
    assert rows["learned (shipped)"]["step_top5"] >= rows["learned (shipped)"]["step_accuracy"]


def test_pooled_refit_never_trains_on_the_scored_logs():
    traces = list(load_subset("hand")[:12])
    r = evaluate_labelled(traces, k=4)
    # the 12 logs themselves and 8 Algorithm-Generated runs of the same GAIA questions
    assert any(n.startswith("20 Who&When logs are these traces or other runs of their tasks") for n in r["notes"])
    edited = [msgspec.structs.replace(t, steps=tuple(msgspec.structs.replace(st, content=st.content + " (edited)")
                                                     for st in t.steps)) for t in traces[:3]]
    r = evaluate_labelled(edited, k=5, pool_who_and_when=False)
    # edited, they are no longer the runs the shipped ranker was fitted on, but still runs of its tasks: the pooled
    # refit leaves every Who&When run of those tasks out too
    from attrib.evaluate.labelled import pool_extra, who_and_when_traces
    from attrib.trace import task_key

    extra = pool_extra(edited)
    assert len(extra) <= len(who_and_when_traces()) - 3
    assert not {task_key(t) for t in extra} & {task_key(t) for t in edited}
    assert r["rows"][3]["protocol"] == "as shipped, IN SAMPLE for 3"
    assert not any("are runs this ranker was fitted on" in n for n in r["notes"])
    assert any(n.startswith("3 of these traces are other runs of tasks") for n in r["notes"])


def test_evaluate_labelled_flags_in_sample_and_too_few(tmp_path):
    r = evaluate_labelled(list(load_subset("hand")[:6]), k=5)
    assert "IN SAMPLE for 6" in r["rows"][3]["protocol"] and any("in sample" in n for n in r["notes"])
    assert [x["method"] for x in r["rows"]][-1] == "learned (shipped)"  # too few to refit, said in a note
    assert any("too few to refit" in n for n in r["notes"])
    with pytest.raises(InputError, match="carries a label"):
        evaluate_labelled([t.unlabelled() for t in load_subset("hand")[:3]])


def test_cli_eval_fit_analyze_model(tmp_path):
    runs = _own(tmp_path, n=16)
    r = runner.invoke(app, ["eval", "traces", str(runs), "--folds", "4", "--no-pool", "--json"])
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.output)["n"] == 16
    model = tmp_path / "ranker.json"
    r = runner.invoke(app, ["fit", str(runs), "--out", str(model), "--no-pool"])
    assert r.exit_code == 0, r.output
    art = orjson.loads(model.read_bytes())
    assert art["n_train"] == 16 and set(art["settings"]) == {"with_gt", "without_gt"}
    trace = next(runs.iterdir())
    shipped = orjson.loads(runner.invoke(app, ["analyze", str(trace), "--json"]).output)
    r = runner.invoke(app, ["analyze", str(trace), "--json", "--model", str(model)])
    assert r.exit_code == 0, r.output
    mine = orjson.loads(r.output)
    assert mine["method"] == "learned" and mine["steps"] != shipped["steps"]  # other coefficients, other scores
    assert mine["evidence"]["ranker"].startswith(f"{model.resolve()} (sha256 ")  # the file, and its content
    assert shipped["evidence"]["ranker"].startswith("shipped")
    store = tmp_path / "s.duckdb"
    assert runner.invoke(app, ["ingest", str(trace), "--store", str(store), "-q"]).exit_code == 0
    batch = ["analyze", "--all", "--store", str(store), "--engine", "serial", "--json"]
    first = orjson.loads(runner.invoke(app, batch).output)  # the shipped ranker
    again = orjson.loads(runner.invoke(app, [*batch, "--model", str(model)]).output)
    assert (first["analyzed"], again["analyzed"], again["skipped"]) == (1, 1, 0)  # another ranker's verdict is redone
    assert orjson.loads(runner.invoke(app, [*batch, "--model", str(model)]).output)["skipped"] == 1
    with open_store(store, read_only=True) as st:
        assert [a.evidence["ranker"][:len(str(model.resolve()))]
                for a in st.get_attributions(st.trace_ids()[0], "learned")] == [str(model.resolve())]
    # scored on the runs it was fitted on, the ranker's row says so
    r = runner.invoke(app, ["eval", "traces", str(runs), "--folds", "4", "--no-pool", "--json", "--model", str(model)])
    row = next(x for x in orjson.loads(r.output)["rows"] if x["method"] == "learned (your ranker)")
    assert "IN SAMPLE for 16" in row["protocol"]
    assert art["settings"]["with_gt"]["params"]["step_head"] == "first_passage"


def test_cli_step_head_choice(tmp_path):
    runs = _own(tmp_path, n=16)
    model = tmp_path / "logit.json"
    r = runner.invoke(app, ["fit", str(runs), "--out", str(model), "--no-pool", "--step-head", "logit"])
    assert r.exit_code == 0, r.output
    art = orjson.loads(model.read_bytes())
    assert {s["params"]["step_head"] for s in art["settings"].values()} == {"logit"}
    assert "kind" not in art["settings"]["with_gt"]["step_model"]  # a plain conditional logit
    r = runner.invoke(app, ["analyze", str(next(runs.iterdir())), "--json", "--model", str(model)])
    assert r.exit_code == 0, r.output
    rows = {}
    for head in ("logit", "first-passage"):
        r = runner.invoke(app, ["eval", "traces", str(runs), "--folds", "4", "--no-pool", "--json", "--step-head", head])
        assert r.exit_code == 0, r.output
        rows[head] = next(x for x in orjson.loads(r.output)["rows"] if x["method"] == "learned, refit")
    assert rows["logit"] != rows["first-passage"]  # the option reaches the refit
    r = runner.invoke(app, ["fit", str(runs), "--out", str(model), "--step-head", "hazard"])
    assert r.exit_code == 2 and "first-passage, logit" in r.output


def test_cli_fit_and_model_bad_input(tmp_path):
    unl = _own(tmp_path, n=3, labelled=False)
    r = runner.invoke(app, ["eval", "traces", str(unl)])
    assert r.exit_code == 3 and "carries a label" in r.output
    r = runner.invoke(app, ["fit", str(unl), "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 3 and "fitting needs at least 8" in r.output and not (tmp_path / "m.json").exists()
    trace = str(next(unl.iterdir()))
    r = runner.invoke(app, ["analyze", trace, "--model", str(tmp_path / "missing.json")])
    assert r.exit_code == 4 and "no such ranker file" in r.output
    junk = tmp_path / "junk.json"
    junk.write_text('{"settings": {}}')
    r = runner.invoke(app, ["analyze", trace, "--model", str(junk)])
    assert r.exit_code == 3 and "not a ranker file" in r.output
    r = runner.invoke(app, ["analyze", trace, "--model", str(junk), "--method", "flow-graph"])
    assert r.exit_code == 2 and "--model" in r.output


def test_batch_model_is_checked_once_up_front(tmp_path):
    from attrib.store import open_store
    from attrib.store.api import ingest

    runs = _own(tmp_path, n=2)
    store = tmp_path / "s.duckdb"
    with open_store(store) as s:
        assert ingest([runs], store=s).ok
    r = runner.invoke(app, ["analyze", "--all", "--store", str(store), "--engine", "serial",
                            "--model", str(tmp_path / "missing.json")])
    assert r.exit_code == 4 and r.output.count("no such ranker file") == 1


def test_eval_and_fit_on_no_files(tmp_path):
    (tmp_path / "empty").mkdir()
    for cmd in (["eval", "traces", str(tmp_path / "empty")], ["fit", str(tmp_path / "empty"), "-o", str(tmp_path / "m")]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 3 and f"{tmp_path / 'empty'}: no trace files here" in r.output
    r = runner.invoke(app, ["eval", "traces", str(tmp_path / "missing.json")])
    assert r.exit_code == 3 and "no such file" in r.output


def test_fit_checks_its_output_before_fitting(tmp_path, monkeypatch):
    """--out a folder failed after reading and fitting, with the OS's bare "Is a directory"."""
    import attrib.methods.learned

    def no_fit(*_a, **_k):
        raise AssertionError("fitted before --out was checked")

    monkeypatch.setattr(attrib.methods.learned, "fit_artifact", no_fit)
    runs = _own(tmp_path, n=8)
    r = runner.invoke(app, ["fit", str(runs), "--out", str(tmp_path), "--no-pool"])
    assert r.exit_code == 1 and r.output.strip() == f"error: {tmp_path}: is a folder; give a file name", r.output


def test_attrib_ranker_environment_variable(tmp_path, monkeypatch):
    """$ATTRIB_RANKER points every analysis (CLI, app, Dask workers) at a fitted file."""
    from attrib.methods import analyze
    from attrib.methods.learned import fit_artifact

    traces = list(load_subset("algorithm")[:16])
    model = tmp_path / "mine.json"
    model.write_bytes(orjson.dumps(fit_artifact(traces, "test")))
    t = load_subset("hand")[0]
    shipped = analyze(t)
    monkeypatch.setenv("ATTRIB_RANKER", str(model))
    assert [s.probability for s in analyze(t).steps] != [s.probability for s in shipped.steps]
    monkeypatch.setenv("ATTRIB_RANKER", str(tmp_path / "gone.json"))
    r = runner.invoke(app, ["analyze", str(_own(tmp_path, n=1) / "mine-whowhen-algorithm-1.json")])
    assert r.exit_code == 4 and "gone.json (from $ATTRIB_RANKER): no such ranker file" in r.output



def test_few_tasks_duplicate_ids_and_copied_runs_are_handled_honestly():
    ag = list(load_subset("algorithm")[:30])
    # 30 runs of 3 tasks: enough runs, too few tasks to refit grouped by task (was a crash)
    three = [msgspec.structs.replace(t, metadata={**t.metadata, "question_id": f"task{i % 3}"})
             for i, t in enumerate(ag)]
    r = evaluate_labelled(three, k=5, pool_who_and_when=False)
    assert any("3 distinct tasks" in n for n in r["notes"])
    assert "learned, refit" not in {x["method"] for x in r["rows"]}
    with pytest.raises(InputError, match="appears twice"):
        evaluate_labelled(ag[:10] + ag[:1], k=5, pool_who_and_when=False)
    # the same 12 runs again under new ids and new tasks: copies share their original's task, so the refit never
    # scores a run with a model fitted on its copy
    copies = [msgspec.structs.replace(t, id=f"copy-{t.id}", metadata={**t.metadata, "question_id": f"new-{i}"})
              for i, t in enumerate(ag[:12])]
    r = evaluate_labelled(ag[:12] + copies, k=4, pool_who_and_when=False)
    assert any("12 run(s) repeat another run's steps" in n for n in r["notes"])


# --- one invented system's own labelled runs (tests/fixtures/own_system: chat JSON and OTLP JSON, 10 tasks x 3) ---

OWN = Path(__file__).parent / "fixtures" / "own_system"


def test_own_system_fixture_is_what_its_generator_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("own_system_generate", OWN / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.main(tmp_path / "runs")
    made = sorted(p.relative_to(tmp_path / "runs") for p in (tmp_path / "runs").rglob("*.json"))
    assert made == sorted(p.relative_to(OWN / "runs") for p in (OWN / "runs").rglob("*.json")) and len(made) == 30
    assert all((tmp_path / "runs" / f).read_bytes() == (OWN / "runs" / f).read_bytes() for f in made)


def test_own_system_runs_read_with_their_labels_and_otlp_reruns_group_by_task():
    """OTLP files carry no metadata.question_id, so the third run of each task (an OTLP file) was a task of its own:
    grouped folds could train on a task's re-run and score the task. Runs with the same task text now group."""
    from attrib.readers import read_paths

    traces = read_paths([OWN / "runs"])
    assert len(traces) == 30 and {t.source_format for t in traces} == {"chat", "otlp"}
    assert all(t.label is not None for t in traces)
    otlp = [t for t in traces if t.source_format == "otlp"]
    assert not any("question_id" in t.metadata for t in otlp)  # the reader gives OTLP runs none
    r = evaluate_labelled(traces, k=5, pool_who_and_when=False)
    assert r["n"] == 30 and r["n_tasks"] == 10
    assert any("10 run(s) have no metadata.question_id but the task text of another run" in n for n in r["notes"])
    rows = {x["method"]: x for x in r["rows"]}
    assert rows["learned (shipped)"]["protocol"] == "as shipped"  # not Who&When runs: out of sample
    # an explicit question id is never overridden by the task text
    odd = [msgspec.structs.replace(t, metadata={**t.metadata, "question_id": f"own-{t.id}"}) if t in otlp else t
           for t in traces]
    assert evaluate_labelled(odd, k=5, pool_who_and_when=False)["n_tasks"] == 20


def test_eval_traces_and_fit_name_both_files_of_a_duplicate_id(tmp_path):
    """Two runs with one id: `eval traces` said only "id: trace id ... appears twice" (no file), `attrib fit` trained
    on both. Both now stop with one line naming the two files, exit 3."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(OWN / "runs", runs)
    first = runs / "chat" / "datadesk-q01-r1.json"
    d = orjson.loads(first.read_bytes())
    d["messages"][1]["content"] += " (second attempt)"
    (runs / "chat" / "datadesk-q01-r1-again.json").write_bytes(orjson.dumps(d))
    for cmd in (["eval", "traces", str(runs), "--no-pool"], ["fit", str(runs), "-o", str(tmp_path / "m.json"), "--no-pool"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 3, r.output
        line = " ".join(r.output.split())
        assert r.output.count("error:") == 1 and "id: trace id 'datadesk-q01-r1' was already read from" in line
        assert "datadesk-q01-r1-again.json" in line and "datadesk-q01-r1.json" in line
    assert not (tmp_path / "m.json").exists()


def test_eval_traces_row_of_a_ranker_file_is_not_called_shipped(tmp_path, monkeypatch):
    """`--model r.json` (or $ATTRIB_RANKER) was scored in a row named "learned (shipped)"."""
    from attrib.methods.learned import fit_artifact
    from attrib.readers import read_paths

    model = tmp_path / "r.json"
    # fitted on both chat runs of tasks 1-7 only
    train = sorted((OWN / "runs" / "chat").glob("datadesk-q0[1-7]-*.json"))
    model.write_bytes(orjson.dumps(fit_artifact(read_paths(train), "test")))
    monkeypatch.setenv("ATTRIB_RANKER", str(model))
    r = runner.invoke(app, ["eval", "traces", str(OWN / "runs"), "--no-pool", "--json"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output)
    rows = {x["method"]: x for x in out["rows"]}
    # the shipped ranker's row is the shipped ranker's, kept beside the file's (w5 #12: one run compares them)
    assert rows["learned (shipped)"]["protocol"] == "as shipped"
    # in sample: its 14 training runs, and the third (OTLP) runs of those 7 tasks, which the task-grouped folds
    # would never score with a model fitted on their task's other runs either
    assert rows["learned (your ranker)"]["protocol"] == f"model {model} ($ATTRIB_RANKER), IN SAMPLE for 21"
    assert any(n.startswith("7 of these traces are other runs of tasks this ranker was fitted on") for n in out["notes"])
    # and, apart, on the 9 runs of tasks 8-10: a figure that is out of sample
    unseen = rows["learned (your ranker), unseen runs"]
    assert unseen["n"] == 9
    assert unseen["protocol"] == f"model {model} ($ATTRIB_RANKER), the 9 runs of tasks it was not fitted on"
    r = runner.invoke(app, ["eval", "traces", str(OWN / "runs"), "--no-pool"], env={"COLUMNS": "250"})
    assert "learned (your ranker)" in r.output and "ECE if calibrated %" in r.output
    assert "30 labelled traces of 10 tasks" in r.output


def test_batch_checks_attrib_ranker_once_up_front(tmp_path, monkeypatch):
    """$ATTRIB_RANKER naming a missing file failed every trace of `analyze --all` (one stored error each, exit 1);
    --model was checked up front. Now both are one error, exit 4, and nothing is recorded."""
    store = tmp_path / "s.duckdb"
    assert runner.invoke(app, ["ingest", str(OWN / "runs" / "otlp"), "--store", str(store), "-q"]).exit_code == 0
    monkeypatch.setenv("ATTRIB_RANKER", str(tmp_path / "gone.json"))
    r = runner.invoke(app, ["analyze", "--all", "--store", str(store), "--engine", "serial"])
    assert r.exit_code == 4 and r.output.count("no such ranker file") == 1, r.output
    assert "(from $ATTRIB_RANKER)" in r.output
    with open_store(store, read_only=True) as st:
        assert st.errors("learned") == [] and st.get_attributions(st.trace_ids()[0], "learned") == []


def test_a_ranker_file_missing_one_setting_fails_up_front(tmp_path) -> None:
    """`analyze --model` checked only the with-ground-truth setting, so a file without the other failed later,
    once per run that needed it."""
    import orjson
    from typer.testing import CliRunner

    from attrib.cli import app
    from attrib.methods.learned import ARTIFACT

    art = orjson.loads(ARTIFACT.read_bytes())
    del art["settings"]["without_gt"]
    bad = tmp_path / "half.json"
    bad.write_bytes(orjson.dumps(art))
    from attrib.paths import traces_dir

    demo = traces_dir() / "demo_whowhen.json"  # it carries its ground truth: the with_gt setting decides it
    r = CliRunner().invoke(app, ["analyze", str(demo), "--model", str(bad)])
    assert r.exit_code == 3 and "without_gt" in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_fit_artifact_keeps_re_runs_of_a_task_in_one_inner_fold_group(monkeypatch):
    """The library's fit_artifact grouped inner folds by question_id only, so an OTLP re-run (no question id) was a
    group of its own and could sit in an inner training fold while its task was scored; only the CLI regrouped."""
    from attrib.methods.learned import fit_artifact
    from attrib.methods.ranker import LearnedRanker
    from attrib.readers import read_paths

    seen: list[int] = []
    real_fit = LearnedRanker.fit

    def recording_fit(self, traces, groups=None, **kw):  # the real fit, with the groups it was given noted
        seen.append(len(set(groups)))
        return real_fit(self, traces, groups, **kw)

    monkeypatch.setattr(LearnedRanker, "fit", recording_fit)
    fit_artifact(read_paths([OWN / "runs"]), "test")
    assert seen == [10, 10]  # 30 runs of 10 tasks, both settings


def test_notes_print_a_ranker_path_with_brackets_as_written(tmp_path):
    """The notes under `eval traces` were printed as rich markup: a ranker file named r[v2].json lost "[v2]"."""
    from attrib.methods.learned import fit_artifact
    from attrib.readers import read_paths

    art = fit_artifact(read_paths([OWN / "runs" / "chat"]), "test")
    del art["tasks"]  # written by an older attrib fit: the note names the file
    model = tmp_path / "r[v2].json"
    model.write_bytes(orjson.dumps(art))
    r = runner.invoke(app, ["eval", "traces", str(OWN / "runs" / "otlp"), "--model", str(model), "--no-pool"],
                      env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert f"{model} lists the runs it was fitted on but not their tasks" in r.output


def test_eval_traces_advises_which_ranker_to_use_and_how_to_fit_it():
    """On 30 runs (10 tasks) of a system unlike Who&When the refit alone scores 20 points above the shipped ranker,
    but over the 10 tasks that gain's interval includes zero (it was paired over runs, +3.3 to +43.3, before the
    shipped ranker and the intervals changed): the advice keeps the shipped ranker and says why. Where a refit beats
    it beyond noise the advice names it and the command that writes it; where nothing beats it, or every run is in
    sample, it says so."""
    from attrib.evaluate.labelled import advice
    from attrib.evaluate.metrics import Verdict
    from attrib.paths import REPO_ROOT

    runs = REPO_ROOT / "tests" / "fixtures" / "own_system" / "runs"
    r = runner.invoke(app, ["eval", "traces", str(runs), "--no-pool", "--json"])
    adv = orjson.loads(r.output)["advice"]
    assert adv["best_refit"] == "learned, refit" and adv["step_gain"]["mean"] > 0
    assert adv["use"] == "learned (shipped)" and not adv["significant"] and adv["step_gain"]["ci_low"] <= 0
    out = " ".join(runner.invoke(app, ["eval", "traces", str(runs), "--no-pool"]).output.split())  # unwrapped
    assert f"advice: keep 'learned (shipped)': the best refit, 'learned, refit', differs by step " \
        f"+{adv['step_gain']['mean']:.1f}" in out and "an interval that includes zero" in out

    def v(tid: str, step: int) -> Verdict:
        return Verdict(trace_id=tid, step=step, agent="a", true_step=1, true_agent="a")

    better = {"learned (shipped)": [v(f"t{i}", 0) for i in range(12)],  # never right
              "learned, refit": [v(f"t{i}", 1) for i in range(12)]}  # always right
    from attrib.cli.evaluate import advice_line

    won = advice(better, "learned (shipped)", {f"t{i}" for i in range(12)})
    assert won is not None and won["use"] == "learned, refit" and won["significant"]
    assert (advice_line(won, ["runs/"]) or "").startswith("use 'learned, refit': it beats 'learned (shipped)' by step "
                                                          "+100.0 points")
    assert (advice_line(won, ["runs/"]) or "").endswith("Fit it with `attrib fit runs/ --no-pool --out my_ranker.json`")

    same = {"learned (shipped)": [v(f"t{i}", i % 3) for i in range(12)],
            "learned, refit": [v(f"t{i}", (i + 1) % 3) for i in range(12)]}

    kept = advice(same, "learned (shipped)", {f"t{i}" for i in range(12)})
    assert kept is not None and kept["use"] == "learned (shipped)" and not kept["significant"]
    assert "an interval that includes zero" in (advice_line(kept, ["runs/"]) or "")
    worse = {**same, "learned, refit": [v(f"t{i}", 0) for i in range(12)]}  # never right
    line = advice_line(advice(worse, "learned (shipped)", {f"t{i}" for i in range(12)}), ["runs/"])
    assert line is not None and line.startswith("keep 'learned (shipped)': the best refit, 'learned, refit', does worse")
    every = advice(same, "learned (shipped)", set())  # every run in sample: no fair comparison, said so
    assert every is not None and every["use"] is None
    assert (advice_line(every, ["runs/"]) or "").startswith("none against 'learned (shipped)': it was fitted on every")
