"""The Streamlit inspector, page by page, with AppTest on a real store built from bundled and Who&When traces.

Expected values (verdicts, filters, errors) are computed independently through the library, never read back
from the app. The store holds real traces; verdicts come from the offline ``flow-graph`` method.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from _shown import shown  # noqa: E402
from _store_lock import hold_write_lock  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from attrib.errors import InputError  # noqa: E402
from attrib.methods import analyze  # noqa: E402
from attrib.paths import REPO_ROOT, traces_dir, who_and_when_dir  # noqa: E402
from attrib.readers import read_path  # noqa: E402
from attrib.store import StoreLockedError, open_store  # noqa: E402
from attrib.store.api import ingest  # noqa: E402
from attrib.trace import ActivationRef  # noqa: E402

APPS = REPO_ROOT / "apps"
sys.path.insert(0, str(APPS))
import inspector_data as data  # noqa: E402
import inspector_figures as figs  # noqa: E402

APP = str(APPS / "inspector.py")
METHOD = "flow-graph"
WW = [who_and_when_dir("algorithm") / f"{i}.json" for i in (1, 2, 3)] + [who_and_when_dir("hand") / "1.json"]
ACT_TRACE = "whowhen-algorithm-3"


H, Q, L = 4, 3, 3  # heads, answer positions, layers of the hand-made activation files


def _segment_file(path: Path) -> dict[str, object]:
    """A step in the recorder's layout: ``blocks.{l}.attn.hook_pattern:segment_mass`` [H, Q, S] + its layout."""
    from attrib.activations import save_step

    rng = np.random.default_rng(0)
    tensors = {}
    for layer in range(L):
        m = rng.random((H, Q, 5))
        tensors[f"blocks.{layer}.attn.hook_pattern:segment_mass"] = (m / m.sum(-1, keepdims=True)).astype(np.float32)
    save_step(path, tensors)
    return {"segments": ["sink", "rule", "conflict", "prompt", "response"],
            "spans": {"sink": [0, 1], "rule": [1, 3], "conflict": [4, 6]}, "n_prompt": 8, "n_tokens": 8 + Q}


def _pattern_file(path: Path, t: int = 7) -> dict[str, object]:
    """Full causal attention patterns [H, T, T] per layer (npz), with a layout giving spans and prompt length."""
    rng = np.random.default_rng(2)
    arrays = {}
    for layer in range(L):
        p = np.tril(rng.random((H, t, t))) + 1e-3 * np.tril(np.ones((t, t)))
        arrays[f"blocks.{layer}.attn.hook_pattern"] = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    np.savez(path, **arrays)
    return {"spans": {"sink": [0, 1], "rule": [1, 3]}, "n_prompt": 5, "n_tokens": t}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store with 4 Who&When traces + the bundled OTLP trace, flow-graph verdicts saved; result files."""
    d = tmp_path_factory.mktemp("inspector")
    store_path = d / "store.duckdb"
    files = [*WW, traces_dir() / "otlp_agents.json"]
    with open_store(store_path) as s:
        report = ingest(files, store=s)
        assert report.ok, [f.error for f in report.failed]
        # steps with recorded activations: step 1 in the recorder's layout, step 2 with full patterns
        t = s.get_trace(ACT_TRACE)
        steps = list(t.steps)
        lay1 = _segment_file(d / "step1.safetensors")
        md1 = {"activation_layout": lay1, "response_tokens": ["The", " answer", " is"],
               "token_attributions": {"tokens": ["The", " answer", " is"], "weights": [0.5, -0.2, 0.1]}}
        steps[1] = msgspec.structs.replace(steps[1], metadata=md1,
                                           activation=ActivationRef(path=str(d / "step1.safetensors")))
        lay2 = _pattern_file(d / "step2.npz")
        steps[2] = msgspec.structs.replace(steps[2], metadata={"activation_layout": lay2},
                                           activation=ActivationRef(path=str(d / "step2.npz"), format="npz"))
        s.upsert_trace(msgspec.structs.replace(t, steps=tuple(steps)))
        verdicts = {}
        for tid in s.trace_ids():
            a = analyze(s.get_trace(tid), METHOD)
            s.save_attribution(a)
            verdicts[tid] = a
        labels = {r["trace_id"]: (r["mistake_agent"], r["mistake_step"]) for r in s.list_traces()}
    results = d / "results"
    results.mkdir()
    from attrib.evaluate.harness import evaluate

    res = evaluate(subsets=["algorithm"], methods=[METHOD], cross_subset=False)
    (results / "who_and_when.json").write_text(json.dumps(res, default=float))
    _heads_json(results / "heads.json")
    return {"store": store_path, "verdicts": verdicts, "labels": labels, "results": results, "eval": res}


def _heads_json(path: Path) -> None:
    """A head-localization result written by the real serializer (HeadLocalization.save) from drift scores."""
    from attrib.heads import HeadLocalization, drift

    rng = np.random.default_rng(1)
    per_pair = [{k: rng.normal(size=(5, 3)) for k in ("magnitude", "direction", "js", "sink_clean", "sink_conflict")}
                for _ in range(3)]
    sc = drift.combine(per_pair)
    heads = drift.top_heads(sc.score, 2)
    HeadLocalization(model="test-model", n_layers=5, n_heads=3, top_k=2, scores=sc.score, magnitude=sc.magnitude,
                     direction=sc.direction, js=sc.js, sink_clean=sc.sink_clean, sink_conflict=sc.sink_conflict,
                     focal_heads=heads, focal_layers=drift.focal_layers(heads, sc.score), family_compliance={},
                     n_pairs=3, pair_selection="all").save(path)


def _app_factory(monkeypatch: pytest.MonkeyPatch, store: object, results: object | None = None):
    """``make(page=..., trace=...)``: the inspector on ``store``, run once in a fresh session."""
    monkeypatch.setenv("ATTRIB_STORE", str(store))
    if results is not None:
        monkeypatch.setenv("ATTRIB_RESULTS_DIR", str(results))
    monkeypatch.setattr(sys, "argv", ["inspector.py"])

    def make(**query: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update({"method": METHOD, **query})
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


@pytest.fixture
def app(env: dict[str, object], monkeypatch: pytest.MonkeyPatch):
    """An AppTest factory: ``app(page=..., trace=...)`` runs the inspector on the test store."""
    return _app_factory(monkeypatch, env["store"], env["results"])


@pytest.fixture
def run_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same on an empty store of its own, ``tmp_path/store.duckdb``, for tests that grow it."""
    return _app_factory(monkeypatch, tmp_path / "store.duckdb")


def texts(at: AppTest, kind: str) -> list[str]:
    """What each element of ``kind`` shows: a code block its text, a Markdown element its source less the escapes
    that keep a run's text as written."""
    return [str(e.value) if kind == "code" else shown(str(e.value)) for e in at.get(kind)]


def test_trace_list_filters_and_pages(app, env) -> None:
    at = app(page="Traces")
    assert at.dataframe[0].value.shape[0] == 5
    # verdict vs annotation filter, checked against verdicts computed here
    at.selectbox(key="f_agree").set_value("agrees").run()
    agree = {t for t, a in env["verdicts"].items() if env["labels"][t] == (a.agent, a.step)}
    assert agree, "the fixture should hold at least one trace where flow-graph matches the annotation"
    assert set(at.dataframe[0].value["trace_id"]) == agree
    at.selectbox(key="f_agree").set_value("disagrees").run()
    assert set(at.dataframe[0].value["trace_id"]) == set(env["verdicts"]) - agree
    at.selectbox(key="f_agree").set_value("(any)").run()
    at.selectbox(key="f_source").set_value("hand").run()
    assert list(at.dataframe[0].value["trace_id"]) == ["whowhen-hand-1"]
    assert at.dataframe[0].value["truth_agent"][0] == env["labels"]["whowhen-hand-1"][0]
    # open a trace: the button switches to its timeline
    at.button(key="list_open_btn").click().run()
    assert at.session_state["page"] == "Timeline" and at.session_state["trace_id"] == "whowhen-hand-1"


def test_paging_stays_in_the_database(env) -> None:
    with data.open_ro(env["store"]) as s:
        rows, total = data.query_page(s, data.ListFilter(method=METHOD), page=1, page_size=2)
        all_ids = s.trace_ids()
    assert total == 5 and [r["trace_id"] for r in rows] == all_ids[2:4]
    with data.open_ro(env["store"]) as s:
        rows, total = data.query_page(s, data.ListFilter(method=METHOD, verdict_agent="FlightSearcher"))
    expect = sorted(t for t, a in env["verdicts"].items() if a.agent == "FlightSearcher")
    assert total == len(expect) and [r["trace_id"] for r in rows] == expect


def test_timeline_shows_the_learned_step_set(app) -> None:
    at = app(page="Timeline", trace="whowhen-algorithm-1", method="learned")
    a = analyze(read_path(WW[0])[0])
    steps = ", ".join(map(str, sorted(a.evidence["step_set"]["steps"])))
    assert any(x.startswith("Step set (conformal): ") and "≥ 90% of runs like those it was calibrated on" in x
               and steps in x for x in texts(at, "info"))


def test_timeline_shows_the_decisive_step(app, env) -> None:
    tid = "whowhen-algorithm-1"
    at = app(page="Timeline", trace=tid)
    a = env["verdicts"][tid]
    trace = read_path(WW[0])[0]
    assert f"Decisive step {a.step} — {a.agent}" in texts(at, "subheader")
    assert trace.steps[a.step].content in texts(at, "code")
    assert (a.confidence < 0.3) == any(w.startswith("Low confidence") for w in texts(at, "warning"))
    info = " ".join(texts(at, "info"))
    assert f"**{trace.label.mistake_agent}**, step **{trace.label.mistake_step}**" in info
    assert ("step_set" in a.evidence) == ("Step set (conformal): " in info and "≥ 90% of runs like those" in info)
    assert len(at.get("plotly_chart")) == 2  # blame inset + timeline
    at.number_input(key="read_step").set_value(2).run()
    assert trace.steps[2].content in texts(at, "code")


def test_timeline_and_blame_word_the_confidence_as_the_reports_do(app, env) -> None:
    """The verdict box prints a calibrated confidence as every report does (54%, not 0.54) and a method's score as
    0.43; the Blame page's steps have the ranker's probability column only for the learned ranker (flow-graph's
    read a column of None)."""
    from attrib.render import RANKER_P, confidence_figure

    tid = "whowhen-algorithm-1"
    a = analyze(read_path(WW[0])[0])
    at = app(page="Timeline", trace=tid, method="learned")
    caption = " ".join(texts(at, "caption"))
    assert f"confidence {a.confidence:.0%}" in caption and f"confidence {a.confidence:.2f}" not in caption, caption
    assert f"agent confidence {confidence_figure(a, a.agent_confidence)}" in caption, caption
    b = env["verdicts"][tid]
    at = app(page="Timeline", trace=tid)
    assert f"score {b.confidence:.2f}" in " ".join(texts(at, "caption"))
    steps = app(page="Blame", trace=tid, method="learned").dataframe[-1].value
    assert RANKER_P in steps.columns and list(steps["step"][:1]) == [a.top_steps(1)[0].step]
    steps = app(page="Blame", trace=tid).dataframe[-1].value
    assert RANKER_P not in steps.columns and "score" in steps.columns


def test_timeline_figure_marks_decisive_and_annotated_steps(env) -> None:
    trace = read_path(WW[1])[0]
    a = env["verdicts"][trace.id]
    fig = figs.timeline_figure(trace, a)
    star = [t for t in fig.data if t.name and t.name.startswith("decisive")][0]
    assert list(star.x) == [a.step] and list(star.y) == [trace.steps[a.step].agent]
    ring = [t for t in fig.data if t.name and t.name.startswith("annotated")][0]
    assert list(ring.x) == [trace.label.mistake_step]
    scores = figs.step_scores(trace, a)
    assert max(scores) == 1.0 and scores[max(a.steps, key=lambda s: s.score).step] == 1.0


def test_blame_page_and_confidence_intervals(app, env) -> None:
    tid = "whowhen-algorithm-2"
    at = app(page="Blame", trace=tid)
    a = env["verdicts"][tid]
    agents = at.dataframe[0].value
    assert list(agents["agent"]) == [b.agent for b in sorted(a.agents, key=lambda b: -b.score)]
    assert len(at.get("plotly_chart")) == 1
    # bars carry asymmetric CIs when the method gives them
    ci = msgspec.structs.replace(a, agents=tuple(msgspec.structs.replace(b, ci_low=b.score - 0.1, ci_high=b.score + 0.2)
                                                 for b in a.agents))
    err = figs.blame_figure(ci).data[0].error_x
    assert np.allclose(err.array, 0.2) and np.allclose(err.arrayminus, 0.1)
    assert figs.blame_figure(a).data[0].error_x.array is None


def test_flow_graph_page_highlights_the_blame_path(app, env) -> None:
    tid = "whowhen-algorithm-2"
    at = app(page="Flow graph", trace=tid)
    a = env["verdicts"][tid]
    path, hops = a.evidence["graph_path"], a.evidence["graph_path_hops"]
    from inspector_views import path_line

    line = path_line(read_path(WW[1])[0], path, a.evidence["failure_step"], hops=hops)  # what each hop carries
    assert all(f"→({h}) " in line for h in hops) and any(line in m for m in texts(at, "markdown"))
    fig = figs.flow_figure(read_path(WW[1])[0], *data.flow_edges(read_path(WW[1])[0])[:1], a, path)
    hl = [t for t in fig.data if t.name == "blame path to the failure"]
    assert (len(hl) == 1) == (len(path) > 1)


def test_inside_the_model_page(app, env) -> None:
    at = app(page="Inside the model", trace=ACT_TRACE)
    charts = at.get("plotly_chart")
    # heads heatmap + step 1 head map + step 1 token weights
    assert len(charts) == 3, texts(at, "info") + texts(at, "error")
    assert "focal heads" in [m.label for m in at.metric]
    html = " ".join(str(h.proto.body) for h in at.get("html"))
    assert "answer" in html and "rgba(214,39,40,1.00)" in html  # largest positive weight fully red
    assert at.selectbox(key="act_stat").options == ["rule - conflict", "rule", "conflict", "sink"]
    # heads.json is for a 5-layer x 3-head model, the step for 4 heads: no focal outline, all-head token weights
    captions = " ".join(texts(at, "caption") + texts(at, "markdown"))
    assert "focal heads of the head-localization result outlined" not in captions
    assert "mean over all heads" in captions
    at.selectbox(key="act_step").set_value(2).run()
    assert at.selectbox(key="act_stat").options == ["rule", "sink"]  # no conflict span in step 2
    assert len(at.get("plotly_chart")) == 3 and not texts(at, "error")


def test_inside_the_model_with_the_benchmark_file(app, env, tmp_path) -> None:
    """bench/heads/run.py's file lists only the top heads: a sparse heatmap, its patching summaries, and focal heads
    that fit the recorded step's model (3 layers x 4 heads) outline the step map and weight its tokens."""
    bench = {"benchmark": "heads", "model": "tiny", "focal_heads": [[0, 1], [2, 3]], "focal_layers": [0, 2],
             "top_heads": [[0, 1, 2.5], [2, 3, 2.1], [1, 0, 1.2]], "layer_profile": [1, 0, 1],
             "patching_train": {"summary": "patching 2 heads on 4 pairs: recovered +0.5 = 3.1x: causal"},
             "family_compliance_train": {"secret": {"plain": 1.0, "conflict": 0.25}}}
    f = tmp_path / "heads_bench.json"
    f.write_text(json.dumps(bench))
    at = app(page="Inside the model", trace=ACT_TRACE)
    at.text_input(key="heads_file").set_value(str(f)).run()
    assert not texts(at, "error")
    captions = " ".join(texts(at, "caption"))
    assert "only the 3 top-ranked heads" in captions and "focal heads of the head-localization result outlined" in captions
    md = " ".join(texts(at, "markdown"))
    assert "recovered +0.5 = 3.1x: causal" in md and "mean over the 2 focal heads" in md
    z = [c for c in at.get("plotly_chart")][0].proto.spec
    assert '"z":[[null,2.5' in z.replace(" ", "")  # layer 0: head 0 empty, head 1 = 2.5


def test_step_head_maps_match_numpy(env) -> None:
    """The page's numbers, recomputed here with plain numpy from the files."""
    from inspector_model import head_stats, segment_stack, token_weights

    from attrib.activations import load_step

    with open_store(env["store"], read_only=True) as s:
        trace = s.get_trace(ACT_TRACE)
    s1 = trace.steps[1]
    masses, layers = segment_stack(load_step(s1), s1.metadata["activation_layout"])
    raw = np.stack([load_step(s1)[f"blocks.{la}.attn.hook_pattern:segment_mass"] for la in range(L)]).astype(float)
    clean = raw / (1 - raw[..., :1])  # sink removed
    m, _ = head_stats(masses, s1.metadata["activation_layout"])["rule - conflict"]
    assert layers == [0, 1, 2] and m.shape == (L, H)
    assert np.allclose(m, (clean[..., 1] - clean[..., 2]).mean(-1), atol=1e-6)
    w, how = token_weights(masses, layers, [(0, 1), (2, 3), (9, 0)])  # (9, 0) is not in this model: ignored
    assert "2 focal heads" in how and np.allclose(w, (clean[0, 1, :, 1] + clean[2, 3, :, 1]) / 2, atol=1e-6)

    s2 = trace.steps[2]
    masses, _ = segment_stack(load_step(s2), s2.metadata["activation_layout"])
    pats = np.stack([load_step(s2)[f"blocks.{la}.attn.hook_pattern"] for la in range(L)]).astype(float)
    rows = pats[:, :, 4:6, :]  # answer positions n_prompt-1 .. T-2
    assert masses.shape == (L, H, 2, 5)
    assert np.allclose(masses[..., 0], rows[..., 0:1].sum(-1)) and np.allclose(masses[..., 1], rows[..., 1:3].sum(-1))
    assert np.allclose(masses[..., 4], rows[..., 5:].sum(-1))  # response tokens


def test_compare_two_methods(app, env) -> None:
    from attrib.errors import AttribError
    from attrib.methods import DEFAULT_METHOD

    tid = "whowhen-algorithm-2"
    at = app(page="Compare methods", trace=tid)
    at.selectbox(key="cmp_a").set_value(DEFAULT_METHOD).run()  # one widget per run, as in the browser
    at.selectbox(key="cmp_b").set_value(METHOD).run()
    trace = read_path(WW[1])[0]
    b = env["verdicts"][tid]
    md = texts(at, "markdown")
    assert any(f"**{METHOD}** → **{b.agent}**, step **{b.step}**" in x for x in md), md
    # flow-graph's number is a score: it read "(confidence 0.43)", as if a probability
    assert any(f"(score {b.confidence:.2f})" in x for x in md) and not any("(confidence 0." in x for x in md), md
    try:
        a = analyze(trace)
    except AttribError as e:  # the default method cannot run here: its side shows the error line, B still shows
        assert f"{DEFAULT_METHOD}: {e}" in texts(at, "error")
        return
    assert any(f"**{DEFAULT_METHOD}** → **{a.agent}**, step **{a.step}**" in x for x in md), md
    word = "agree" if (a.agent, a.step) == (b.agent, b.step) else (
        "agree on the agent, not the step" if a.agent == b.agent else "disagree")
    assert any(f"The two methods **{word}**" in x for x in md)
    assert len(at.get("plotly_chart")) >= 2


def test_evaluation_page(app, env) -> None:
    at = app(page="Evaluation")
    shown = at.dataframe[0].value if not env["eval"]["subsets"] else at.dataframe[1].value
    rows = [r for r in env["eval"]["rows"] if r["subset"] == "algorithm"]
    assert list(shown["method"]) == [r["method"] for r in rows]
    assert np.allclose(shown["step_accuracy"], [r["step_accuracy"] for r in rows])


def test_eval_rows_read_both_result_layouts(env) -> None:
    """``evaluate()`` output (rows at the top) and the benchmark file (rows per setting) give the same rows."""
    res = json.loads(json.dumps(env["eval"], default=float))
    nested = {"settings": {res["setting"]: {"rows": res["rows"]}}, "subsets": {"algorithm": {"step_accuracy": 1.0}}}
    assert data.eval_rows(res) == data.eval_rows(nested) and len(data.eval_rows(res)) == len(res["rows"])
    assert data.eval_table(nested) == [{"subset": "algorithm", "setting": "with_gt", "step_accuracy": 1.0}]


def test_eval_rows_write_intervals_as_text() -> None:
    """95 % intervals and paired gains (lists / dicts in the JSON) reach the tables as short text, not dropped."""
    res = {"rows": [{"method": "learned", "step_accuracy": 46.0, "step_accuracy_ci": [37.3, 54.8]}],
           "subsets": {"hand": {"step_accuracy": 32.8, "step_gain_vs_floor": {"mean": 8.6, "ci_low": -1.7,
                                                                             "ci_high": 19.0}}}}
    assert data.eval_rows(res)[0]["step_accuracy_ci"] == "37-55"
    assert data.eval_table(res)[0]["step_gain_vs_floor"] == "+8.6 (-1.7 to +19.0)"


def test_eval_misses_list_wrong_verdicts_most_confident_first() -> None:
    per = [{"trace_id": "a", "true_step": 3, "true_agent": "X", "steps": [3], "step_hit": 1.0, "confidence": 0.9},
           {"trace_id": "b", "true_step": 1, "true_agent": "Y", "steps": [4], "step_hit": 0.0, "confidence": 0.3},
           {"trace_id": "c", "true_step": 2, "true_agent": "X", "steps": [0], "step_hit": 0.0, "confidence": 0.7}]
    misses = data.eval_misses({"subsets": {"hand": {"per_trace": per}}})
    assert [m["trace_id"] for m in misses] == ["c", "b"] and misses[0]["annotated"] == "X @ 2"


def test_evaluation_page_without_results(app, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ATTRIB_RESULTS_DIR", str(tmp_path))
    at = app(page="Evaluation")
    assert "No benchmark run yet" in texts(at, "info")[0]


def test_export_page_and_report(app, env) -> None:
    tid = "whowhen-algorithm-1"
    at = app(page="Export", trace=tid)
    assert [b.label for b in at.get("download_button")] == ["Download Markdown", "Download JSON"]
    a = env["verdicts"][tid]
    trace = read_path(WW[0])[0]
    assert data.report(a, trace, "json") == a.to_json()
    md = data.report(a, trace, "markdown").decode()
    assert md == a.to_markdown(trace) and a.agent in md  # the renderer `attrib analyze --markdown` uses
    assert md.strip() in [c.strip() for c in texts(at, "code")]  # the preview is the downloaded report, as is


def test_upload_reads_like_the_cli(app, tmp_path) -> None:
    at = app(page="Upload")
    raw = (traces_dir() / "otlp_agents.json").read_bytes()
    at.file_uploader(key="up_file").set_value(("otlp_agents.json", raw, "application/json")).run()
    expected = read_path(traces_dir() / "otlp_agents.json")
    assert texts(at, "success")[0].startswith(f"Read {len(expected)} trace(s): {expected[0].id}")
    at.button(key=f"open_up_{expected[0].id}").click().run()
    assert at.session_state["page"] == "Timeline"
    assert any(m.startswith("Decisive step") for m in texts(at, "subheader"))

    bad = json.loads(WW[0].read_text())
    del bad["history"]
    p = tmp_path / "broken.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(InputError) as cli:
        read_path(p)
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value(("broken.json", p.read_bytes(), "application/json")).run()
    assert texts(at, "error") == [str(cli.value).replace(str(p), "broken.json")]
    assert texts(at, "error")[0].startswith("broken.json: history: ")


def test_without_a_store(app, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ATTRIB_STORE", str(tmp_path / "missing.duckdb"))
    at = app(page="Traces")
    assert "no store here" in at.sidebar.warning[0].value
    # the page says what to do instead, without repeating the sidebar's line (it said it twice)
    assert "no store here" not in texts(at, "info")[0] and "Upload page" in texts(at, "info")[0]
    at = app(page="Timeline")
    assert "No trace to show" in texts(at, "info")[0]


def test_unknown_trace_id_shows_the_store_error(app, env) -> None:
    at = app(page="Timeline", trace="no-such-trace")
    with open_store(env["store"], read_only=True) as s, pytest.raises(Exception) as e:
        s.get_trace("no-such-trace")
    assert texts(at, "error") == [str(e.value)]


def test_store_argument_parsing() -> None:
    assert data.store_arg(["--store", "x.duckdb"]) == "x.duckdb"
    assert data.store_arg(["--store=y.duckdb"]) == "y.duckdb"
    assert data.store_arg([]) is None


def test_cli_app_command(env) -> None:
    from typer.testing import CliRunner

    from attrib.cli import app as cli

    r = CliRunner().invoke(cli, ["app", "--store", str(env["store"]), "--port", "8765", "--print"])
    assert r.exit_code == 0, r.output
    assert "streamlit run" in r.output and str(Path(APP)) in r.output and "8765" in r.output
    r = CliRunner().invoke(cli, ["app", "--store", str(env["store"]) + ".missing", "--print"])
    assert r.exit_code == 4 and "no store here" in r.output


def test_shares_survive_float16_sinks() -> None:
    """A head that parks all attention on the sink (1.0 after float16 rounding) gives NaN, not a huge share."""
    from inspector_model import head_stats, shares

    m = np.zeros((1, 2, 2, 5), dtype=np.float16)
    m[0, 0, :, :] = [0.5, 0.25, 0.25, 0.0, 0.0]
    m[0, 1, :, :] = [1.0, 0.0002, 0.0, 0.0, 0.0]  # sink rounds to 1, a sliver left on the rule
    s = shares(m)
    assert np.allclose(s[0, 0, :, 1:3], 0.5) and np.isnan(s[0, 1, :, 1:]).all()  # the sink entry itself is 0
    rule, _ = head_stats(m, {"spans": {"conflict": [3, 4]}})["rule"]
    assert rule[0, 0] == pytest.approx(0.5) and np.isnan(rule[0, 1])


RECORDED = sorted((REPO_ROOT / "traces" / "recorded").glob("*.json"))


@pytest.mark.skipif(not RECORDED, reason="no recorded SmolLM2 traces under traces/recorded (python -m attrib.demo_agents)")
def test_inside_the_model_on_recorded_smollm2_steps(app, monkeypatch, tmp_path) -> None:
    """Real activations recorded from SmolLM2 by attrib.record: every recorded step renders a finite head map."""
    from inspector_model import head_stats, segment_stack

    from attrib.activations import load_step

    store = tmp_path / "rec.duckdb"
    with open_store(store) as s:
        assert ingest(RECORDED[:1], store=s).ok
        trace = s.get_trace(s.trace_ids()[0])
    monkeypatch.setenv("ATTRIB_STORE", str(store))
    at = app(page="Inside the model", trace=trace.id)
    assert not texts(at, "error") and len(at.get("plotly_chart")) >= 2
    for step in (s for s in trace.steps if s.activation is not None):
        layout = step.metadata["activation_layout"]
        masses, layers = segment_stack(load_step(step), layout)
        assert masses.shape[:2] == (len(layers), 9)  # SmolLM2-135M: 9 query heads per layer
        rule, _ = head_stats(masses, layout)["rule"]
        assert np.isfinite(rule[~np.isnan(rule)]).all() and np.nanmax(rule) <= 1 + 1e-6


def test_every_page_renders_an_otlp_trace(app, env) -> None:
    """The OTLP trace (tool calls, parent links) through every page in one session: no exception, no error box."""
    import inspector_pages

    tid = read_path(traces_dir() / "otlp_agents.json")[0].id
    at = app(page="Traces", trace=tid)
    for page in inspector_pages.PAGES:
        at.sidebar.radio[0].set_value(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not texts(at, "error"), (page, texts(at, "error"))


# ------------------------------------------------------------------------- walk-through bugs (one test per report)
COMMITTED_EVAL = sorted((REPO_ROOT / "bench" / "results").glob("who_and_when*.json"))


def _methods_in(result: dict) -> set[tuple[str, str]]:
    """(subset, method) pairs a result file holds numbers for, found by walking its JSON here (not by the app)."""
    found = set()
    for r in result.get("rows") or []:
        found.add((r["subset"], r["method"]))
    for body in (result.get("settings") or {}).values():
        for r in body.get("rows") or []:
            found.add((r["subset"], r["method"]))
    for key in ("subsets", "subsets_without_gt"):
        for subset, body in (result.get(key) or {}).items():
            for m, v in body.items():
                if isinstance(v, dict) and "step_accuracy" in v:
                    found.add((subset, m))
    return found


@pytest.mark.parametrize("path", COMMITTED_EVAL, ids=lambda p: p.name)
def test_eval_rows_cover_every_method_of_each_committed_result(path: Path) -> None:
    """Every committed who_and_when*.json (three layouts): each method's numbers reach the per-method table."""
    res = json.loads(path.read_text())
    rows = data.eval_rows(res)
    assert {(r["subset"], r["method"]) for r in rows} == _methods_in(res)
    assert all(isinstance(r.get("step_accuracy"), float | int) for r in rows if r["method"] != "floor")
    assert all(set(r) - {"subset", "setting"} for r in data.eval_table(res))  # no row of labels alone


def test_evaluation_page_shows_the_judge_benchmark(app, monkeypatch, tmp_path) -> None:
    """bench/results/who_and_when_judge.json (subsets.<subset>.<method>): every method's numbers, no empty
    "Default method (?)" table."""
    src = REPO_ROOT / "bench" / "results" / "who_and_when_judge.json"
    if not src.exists():
        pytest.skip("bench/results/who_and_when_judge.json is not in this checkout")
    (tmp_path / src.name).write_bytes(src.read_bytes())
    monkeypatch.setenv("ATTRIB_RESULTS_DIR", str(tmp_path))
    judge = json.loads(src.read_text())
    at = app(page="Evaluation")
    assert not any(h.startswith("Default method") for h in texts(at, "subheader"))
    assert "Every method and baseline" in texts(at, "subheader")
    for subset, by_method in judge["subsets"].items():
        at.selectbox(key="eval_subset").set_value(subset).run()
        shown = at.dataframe[0].value
        assert list(shown["method"]) == list(by_method)
        assert np.allclose(shown["step_accuracy"], [v["step_accuracy"] for v in by_method.values()])
        assert np.allclose(shown["agent_accuracy"], [v["agent_accuracy"] for v in by_method.values()])
    assert judge["model"] in " ".join(texts(at, "caption"))


def test_uploaded_recorded_trace_says_its_activations_stay_behind(app) -> None:
    """An upload brings no activation files: Inside the model says so (and how to get them), no 'file not found'
    under a deleted temporary folder, and the rest of the trace still shows."""
    f = REPO_ROOT / "traces" / "recorded" / "demo-french-only.json"
    if not f.exists():
        pytest.skip("traces/recorded/demo-french-only.json is not in this checkout")
    trace = read_path(f)[0]
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value((f.name, f.read_bytes(), "application/json")).run()
    assert any("cannot bring those along" in w for w in texts(at, "warning"))
    at.button(key=f"open_up_{trace.id}").click().run()
    assert any(m.startswith("Decisive step") for m in texts(at, "subheader"))  # the timeline still works
    at.sidebar.radio[0].set_value("Inside the model").run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    warning = " ".join(texts(at, "warning"))
    n = sum(s.activation is not None for s in trace.steps)
    assert f"{f.name}: {n} recorded step(s) keep their activations in `french-only/`" in warning
    assert f"attrib ingest {f.name} --store PATH" in warning and "attrib-upload-" not in warning
    assert len(at.get("plotly_chart")) == 1  # the head-localization heatmap still shows


def test_heads_result_box_says_what_is_wrong(app, env, tmp_path) -> None:
    """Malformed content: one line naming the file and the field; empty box: the default file; missing: no such
    file; a folder: says so."""
    at = app(page="Inside the model", trace=ACT_TRACE)
    bad = tmp_path / "heads_bad.json"
    bad.write_text(json.dumps({"top_heads": [[0, "x", 1.0]]}))
    at.text_input(key="heads_file").set_value(str(bad)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert texts(at, "error") == [f"{bad}: top_heads[0][1]: expected a non-negative integer, got 'x'"]
    bad.write_text(json.dumps({"focal_heads": [[1, None]], "scores": [[1.0, 2.0]]}))
    at.text_input(key="heads_file").set_value(str(bad)).run()
    assert texts(at, "error") == [f"{bad}: focal_heads[0][1]: expected a non-negative integer, got None"]

    at.text_input(key="heads_file").set_value("").run()  # the default file, bench results' heads.json
    assert not texts(at, "error") and "focal heads" in [m.label for m in at.metric]
    assert len(at.get("plotly_chart")) == 3

    missing = tmp_path / "no_such_heads.json"
    at.text_input(key="heads_file").set_value(str(missing)).run()
    assert texts(at, "error") == [f"{missing}: no such file"]
    assert not any("No head-localization result yet" in i for i in texts(at, "info"))
    at.text_input(key="heads_file").set_value(str(tmp_path)).run()
    assert texts(at, "error") == [f"{tmp_path}: is a folder: give a head-localization result JSON file"]


def test_llm_errors_name_the_environment_variables(app, monkeypatch) -> None:
    """`attrib app` has no --llm-* flags: an LLM judge's errors say which environment variable to set."""
    import os

    for k in list(os.environ):
        if k.startswith(("ATTRIB_LLM_", "OPENAI_")):
            monkeypatch.delenv(k)
    at = app(page="Timeline", trace="whowhen-algorithm-1", method="judge-all")
    err = " ".join(texts(at, "error"))
    assert err.startswith("judge-all: no LLM endpoint configured: set ATTRIB_LLM_BASE_URL") and "--llm" not in err
    assert "ATTRIB_LLM_MODEL" in err and "before starting the app" in err

    import socket

    with socket.socket() as s:  # a port nothing listens on: the client cannot connect
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ATTRIB_LLM_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("ATTRIB_LLM_MODEL", "m")
    monkeypatch.setenv("ATTRIB_LLM_MAX_RETRIES", "0")
    at = app(page="Timeline", trace="whowhen-algorithm-2", method="judge-all")
    err = " ".join(texts(at, "error"))
    assert "cannot connect" in err and "ATTRIB_LLM_BASE_URL right?" in err and "--llm" not in err


def test_locked_store_says_it_is_locked(app, env, monkeypatch, tmp_path) -> None:
    import shutil

    store = tmp_path / "locked.duckdb"
    shutil.copy(env["store"], store)
    monkeypatch.setenv("ATTRIB_STORE", str(store))
    proc = hold_write_lock(store)
    try:
        at = app(page="Timeline", trace="whowhen-algorithm-1")
        err = texts(at, "error")
        assert len(err) == 1 and "locked by another process" in err[0] and f"(PID {proc.pid})" in err[0], err
        assert "there is no store" not in err[0]
        assert "locked by another process" in at.sidebar.warning[0].value
    finally:
        proc.kill()
        proc.wait()
    at = app(page="Timeline", trace="whowhen-algorithm-1")  # lock gone: the trace shows again
    assert not texts(at, "error") and any(m.startswith("Decisive step") for m in texts(at, "subheader"))


def test_empty_store_says_to_ingest(app, monkeypatch, tmp_path) -> None:
    store = tmp_path / "empty.duckdb"
    with open_store(store):
        pass
    monkeypatch.setenv("ATTRIB_STORE", str(store))
    at = app(page="Traces")
    assert texts(at, "info") == [f"The store `{store}` is empty: run `attrib ingest PATH --store {store}` to add "
                                 "traces (or upload one on the Upload page)."]


def test_cli_app_refuses_a_port_in_use() -> None:
    """A taken port is a bad --port (exit 2, one line), found before the URL is printed or streamlit starts."""
    import socket

    from typer.testing import CliRunner

    from attrib.cli import app as cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(cli, ["app", "--port", str(port), "--headless"])
    assert r.exit_code == 2, r.output
    assert f"port {port} on 127.0.0.1 is already in use" in r.output and "attrib inspector on" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_app_stops_its_server_on_sigterm(tmp_path) -> None:
    """SIGTERM to `attrib app` (a service manager, `kill`) stops the streamlit server it started, not just itself."""
    import contextlib
    import os
    import shutil
    import signal
    import time
    import urllib.request

    import inspector_browser as browser

    children = Path("/proc/self/task")
    attrib = shutil.which("attrib", path=str(Path(sys.executable).parent))
    if not children.exists() or attrib is None or not hasattr(os, "killpg"):
        pytest.skip("needs Linux /proc and the attrib console script beside this Python")
    port = browser.free_port()
    proc = subprocess.Popen([attrib, "app", "--port", str(port), "--headless"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            browser._wait_healthy(url, proc, 60)
        except (RuntimeError, TimeoutError) as e:
            pytest.skip(f"the app could not start here: {e}")
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert kids, "attrib app should run streamlit as its child"
        os.kill(proc.pid, signal.SIGTERM)  # attrib alone, as `kill PID` does
        proc.wait(timeout=15)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{k}").exists() for k in kids):
            time.sleep(0.1)
        assert not any(Path(f"/proc/{k}").exists() for k in kids), "streamlit outlived attrib app"
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
        assert proc.returncode == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of this test's own process group, if anything
        proc.wait()


def test_attrib_app_serves_on_a_first_run_with_no_terminal(tmp_path: Path) -> None:
    """`attrib app` as the quickstart writes it (no --headless), for a user with no ~/.streamlit and no terminal on
    stdin: it passed --server.headless false, so Streamlit asked for an email first and, reading EOF, exited 255
    before serving (walkthrough w6 #3)."""
    import contextlib
    import os
    import shutil
    import signal

    import inspector_browser as browser

    attrib = shutil.which("attrib", path=str(Path(sys.executable).parent))
    if attrib is None or not hasattr(os, "killpg"):
        pytest.skip("needs the attrib console script beside this Python")
    port = browser.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["HOME"] = str(tmp_path)  # a first run: no ~/.streamlit/credentials.toml
    proc = subprocess.Popen([attrib, "app", "--port", str(port)], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        browser._wait_healthy(f"http://127.0.0.1:{port}", proc, 60)
        assert not (tmp_path / ".streamlit" / "credentials.toml").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert "Email" not in out, out


# ------------------------------------------------------------------- second walk-through (one test per fix)
def test_eval_readers_share_one_walk_over_subsets() -> None:
    """eval_table, eval_rows and eval_misses read the same per-subset sections with the same settings: ``subsets``
    under the file's setting, ``subsets_without_gt`` as without_gt, anything that is not a mapping skipped."""
    per = [{"trace_id": "t1", "true_agent": "A", "true_step": 2, "steps": [0], "step_hit": 0.0, "confidence": 0.4}]
    res = {"setting": "with_gt",
           "subsets": {"hand": {"step_accuracy": 40.0, "per_trace": per}, "broken": None, "odd": [1, 2]},
           "subsets_without_gt": {"hand": {"learned": {"step_accuracy": 30.0, "agent_accuracy": 50.0}},
                                  "algorithm": {"step_accuracy": 20.0, "per_trace": per}}}
    assert [(r["subset"], r["setting"]) for r in data.eval_table(res)] == [("hand", "with_gt"),
                                                                          ("algorithm", "without_gt")]
    assert [(r["subset"], r["setting"], r["method"]) for r in data.eval_rows(res)] == [("hand", "without_gt",
                                                                                        "learned")]
    assert sorted((r["subset"], r["setting"]) for r in data.eval_misses(res)) == [("algorithm", "without_gt"),
                                                                                  ("hand", "with_gt")]
    assert data.eval_table({"subsets": [1], "subsets_without_gt": "x"}) == []
    assert data.eval_misses({"subsets": {"hand": {"per_trace": "not a list"}}}) == []


def _open_while_another_process_holds(src: Path, store: Path) -> tuple[StoreLockedError, int]:
    """The error the app's read-only open gets while a second process holds a copy of ``src`` read-write."""
    import shutil

    shutil.copy(src, store)
    proc = hold_write_lock(store)
    try:
        with pytest.raises(StoreLockedError) as held:
            data.open_ro(store)
    finally:
        proc.kill()
        proc.wait()
    return held.value, proc.pid


def test_lock_is_told_by_duckdb_io_error_not_by_any_text(env, tmp_path) -> None:
    """A second process holding the store read-write: the read-only open fails with DuckDB's IOException, which the
    store tells as a lock where it opens the file (its StoreLockedError, an InputError, keeps DuckDB's error as context)
    and its line, which the app shows, names the lock and the PID. Other DuckDB I/O errors, and an error that only
    quotes DuckDB's words, are not called a lock."""
    import duckdb

    store = tmp_path / "held.duckdb"
    held, pid = _open_while_another_process_holds(env["store"], store)
    assert isinstance(held, InputError) and isinstance(held.__context__, duckdb.IOException)
    assert held.pid == pid
    assert data.error_line(held).startswith(f"{store}: the store is locked by another process (PID {pid})")

    with pytest.raises(duckdb.IOException) as missing:  # same class as the lock, another cause
        duckdb.connect(str(tmp_path / "nothing.duckdb"), read_only=True)
    assert "locked" not in data.error_line(missing.value)
    quoted = InputError(store, None, "Could not set lock on file: Conflicting lock is held (PID 1)")
    assert "locked by another process" not in data.error_line(quoted)


def test_empty_store_pages_say_it_is_empty(app, monkeypatch, tmp_path) -> None:
    """An empty store: the trace pages say to ingest (not "pick a trace on the Traces page", which has none), and
    the Traces page shows no filters or page box that could only ever match nothing."""
    store = tmp_path / "empty.duckdb"
    with open_store(store):
        pass
    monkeypatch.setenv("ATTRIB_STORE", str(store))
    empty = (f"The store `{store}` is empty: run `attrib ingest PATH --store {store}` to add traces (or upload one "
             "on the Upload page).")
    for page in ("Timeline", "Blame", "Flow graph", "Compare methods", "Export"):
        at = app(page=page)
        assert texts(at, "info") == [empty], page
    at = app(page="Traces")
    assert texts(at, "info") == [empty]
    assert not [s.key for s in at.selectbox if (s.key or "").startswith("f_")] and not at.number_input


def test_verdict_filters_wait_for_stored_verdicts(app, env, monkeypatch, tmp_path) -> None:
    """Without any stored verdict, "Verdict agent" and "Verdict vs annotation" could only empty the list: they are
    disabled and say what to run; with stored verdicts (the env store) they work."""
    store = tmp_path / "no_verdicts.duckdb"
    with open_store(store) as s:
        assert ingest(WW[:2], store=s).ok
    monkeypatch.setenv("ATTRIB_STORE", str(store))
    at = app(page="Traces")
    for key in ("f_verdict", "f_agree"):
        box = at.selectbox(key=key)
        assert box.disabled and f"attrib analyze --all --store {store}" in box.help, key
    assert not at.selectbox(key="f_source").disabled
    assert at.dataframe[0].value.shape[0] == 2
    monkeypatch.setenv("ATTRIB_STORE", str(env["store"]))
    at = app(page="Traces")
    assert not at.selectbox(key="f_verdict").disabled and not at.selectbox(key="f_agree").disabled


def test_trace_id_with_spaces_around_it_opens(app) -> None:
    """An id pasted with a space or newline around it opens the trace instead of 'no trace with id ...'."""
    at = app(page="Timeline")
    at.sidebar.text_input(key="trace_id").set_value("  whowhen-algorithm-1\n").run()
    assert not texts(at, "error"), texts(at, "error")
    assert "Trace whowhen-algorithm-1" in texts(at, "header")


def test_compare_never_compares_a_method_with_itself(app) -> None:
    """Setting Method A to what B shows moves B to another method: the page never reports a method agreeing with
    itself."""
    at = app(page="Compare methods", trace="whowhen-algorithm-2")
    a, b = at.selectbox(key="cmp_a"), at.selectbox(key="cmp_b")
    assert a.value not in b.options and a.value != b.value
    at.selectbox(key="cmp_a").set_value(b.value).run()
    a, b = at.selectbox(key="cmp_a"), at.selectbox(key="cmp_b")
    assert a.value != b.value and a.value not in b.options
    heads = [m for m in texts(at, "markdown") if " → **" in m]
    assert len(heads) == 2 and heads[0] != heads[1]


def test_upload_of_an_unknown_format_points_to_the_format_box(app) -> None:
    """The page shows the library's line: what the file holds and what each format looks for (the page's Format box
    names one), no CLI flag."""
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value(("mystery.json", b'{"a": 1}', "application/json")).run()
    err = texts(at, "error")
    assert len(err) == 1 and err[0].startswith("mystery.json: unknown format: it has the keys a; attrib reads")
    assert err[0].endswith("name one (whowhen, otlp, chat, attrib) to see what it lacks")
    at.selectbox(key="up_format").set_value("whowhen").run()
    assert texts(at, "error") == ["mystery.json: history: missing required field (a list of {role, name, content})"]


class _Click:
    """What st.plotly_chart returns after a click: ``event.selection.points``."""

    def __init__(self, *points: dict) -> None:
        self.selection = type("Selection", (), {"points": list(points)})()


def test_clicking_an_edge_midpoint_opens_no_step(env) -> None:
    """The flow graph's edge midpoints are clickable markers at x halfway between two steps; a click there used to
    open the step at int(x), which is not on the edge. Only step markers (customdata = step) open a step."""
    from inspector_views import clicked_step

    trace = read_path(WW[1])[0]
    edges, failure, _ = data.flow_edges(trace)
    a = env["verdicts"][trace.id]
    fig = figs.flow_figure(trace, edges, a, a.evidence.get("graph_path", []), failure)
    nodes = [t for t in fig.data if t.name and t.name.startswith("step")][0]
    assert list(nodes.customdata) == list(range(trace.n_steps))
    mid = [t for t in fig.data if t.hovertext and "→" in str(t.hovertext[0])][0]
    assert mid.customdata is None
    i, j = next((i, j) for i, j, _, _ in edges if j - i >= 2)
    assert clicked_step(_Click({"x": (i + j) / 2, "y": 0.5, "curve_number": 1}), trace.n_steps) is None
    assert clicked_step(_Click({"x": j, "y": 1, "customdata": j}), trace.n_steps) == j
    assert clicked_step(_Click({"x": j, "y": 1, "customdata": [j]}), trace.n_steps) == j
    assert clicked_step(_Click({"x": 2, "customdata": trace.n_steps}), trace.n_steps) is None
    tl = figs.timeline_figure(trace, a)
    steps = [t for t in tl.data if t.name == "step (colour = blame)"][0]
    star = [t for t in tl.data if t.name and t.name.startswith("decisive")][0]
    assert list(steps.customdata) == list(range(trace.n_steps)) and list(star.customdata) == [a.step]


def _long_trace_file(path: Path, n: int = 130) -> Path:
    """A Who&When run of ``n`` steps (four agents taking turns), labelled at step 77."""
    base = json.loads((traces_dir() / "demo_whowhen.json").read_text())
    agents = ["Planner", "Coder", "Computer_terminal", "Verifier"]
    history = [{"content": f"Step {i} by {agents[i % 4]}: " + ("the total is 42. " if i == 77 else "working. ") * 5,
                "role": "assistant", "name": agents[i % 4]} for i in range(n)]
    path.write_text(json.dumps({**base, "history": history, "question_ID": f"long-{n}", "mistake_agent": "Coder",
                                "mistake_step": "77"}))
    return path


def test_a_130_step_trace_on_every_page(app, tmp_path) -> None:
    """A long run: every page renders; step markers shrink so 130 squares do not overlap; the blame path line keeps
    its ends and counts the steps between instead of listing a hundred hops."""
    import inspector_pages
    from inspector_views import path_line

    f = _long_trace_file(tmp_path / "long130.json")
    trace = read_path(f)[0]
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value((f.name, f.read_bytes(), "application/json")).run()
    at.button(key=f"open_up_{trace.id}").click().run()
    for page in inspector_pages.PAGES:
        at.sidebar.radio[0].set_value(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not texts(at, "error"), (page, texts(at, "error"))
    at.sidebar.radio[0].set_value("Flow graph").run()
    a = analyze(trace, METHOD)
    edges, failure, _ = data.flow_edges(trace)
    path = data.blame_path(trace, a, edges, failure)
    line = [m for m in texts(at, "markdown") if m.startswith("**Blame path**")]
    assert len(line) == 1 and line[0].endswith(path_line(trace, path, failure, hops=a.evidence["graph_path_hops"]))
    long_path = list(range(3, 130))
    shown = path_line(trace, long_path)
    assert shown.startswith("3 (Verifier) → 4 (Planner) → 5 (Coder) → 6 (Computer_terminal) → … (119 steps)")
    assert shown.endswith("→ 129 (Coder)") and shown.count("→") == 8  # 4 + the count + 4
    assert path_line(trace, list(range(5))).count("→") == 4  # short paths in full
    size = [t for t in figs.timeline_figure(trace, a).data if t.name == "step (colour = blame)"][0].marker.size
    assert size <= 8 and figs.marker_size(10, 16) == 16
    nodes = [t for t in figs.flow_figure(trace, edges, a, path, failure).data if (t.name or "").startswith("step")][0]
    assert nodes.marker.size <= 8 and nodes.mode == "markers"


def test_a_trace_without_label_on_every_page(app, tmp_path) -> None:
    """A run nobody annotated: no annotation box, no "annotation:" in the comparison, and no error anywhere."""
    import inspector_pages

    raw = json.loads((traces_dir() / "demo_whowhen.json").read_text())
    for k in ("mistake_agent", "mistake_step", "mistake_reason"):
        raw.pop(k, None)
    f = tmp_path / "unlabelled.json"
    f.write_text(json.dumps({**raw, "question_ID": "unlabelled"}))
    trace = read_path(f)[0]
    assert trace.label is None
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value((f.name, f.read_bytes(), "application/json")).run()
    at.button(key=f"open_up_{trace.id}").click().run()
    for page in inspector_pages.PAGES:
        at.sidebar.radio[0].set_value(page).run()
        assert not at.exception and not texts(at, "error"), (page, texts(at, "error"))
        assert not any(i.startswith("Annotated mistake") for i in texts(at, "info")), page
        assert not any("annotation:" in m for m in texts(at, "markdown")), page


def test_pages_keep_their_widgets_after_a_visit_elsewhere(app, env, tmp_path) -> None:
    """Streamlit drops a widget's value on a run that does not draw it. Coming back to the Timeline used to raise
    KeyError('read_step'); the Traces filters and page, the step being read and a typed heads file are now kept."""
    at = app(page="Timeline", trace="whowhen-algorithm-1")
    at.number_input(key="read_step").set_value(2).run()
    at.sidebar.radio[0].set_value("Blame").run()
    at.sidebar.radio[0].set_value("Timeline").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="read_step").value == 2
    assert read_path(WW[0])[0].steps[2].content in texts(at, "code")

    at.sidebar.radio[0].set_value("Traces").run()
    at.selectbox(key="f_source").set_value("hand").run()
    assert list(at.dataframe[0].value["trace_id"]) == ["whowhen-hand-1"]
    at.button(key="list_open_btn").click().run()  # open it: the Timeline
    assert at.session_state["page"] == "Timeline" and not at.exception
    at.sidebar.radio[0].set_value("Traces").run()  # and back: still filtered
    assert at.selectbox(key="f_source").value == "hand"
    assert list(at.dataframe[0].value["trace_id"]) == ["whowhen-hand-1"]

    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"focal_heads": [[0, 1]], "scores": [[1.0, 2.0], [0.5, 0.1]]}))
    at.sidebar.radio[0].set_value("Inside the model").run()
    at.text_input(key="heads_file").set_value(str(f)).run()
    at.sidebar.radio[0].set_value("Blame").run()
    at.sidebar.radio[0].set_value("Inside the model").run()
    assert at.text_input(key="heads_file").value == str(f) and not texts(at, "error")


def test_flow_graph_of_a_successful_run_names_no_failure(app) -> None:
    """A run recorded as successful has no failure: its flow graph leads to the final answer and says so."""
    trace = msgspec.structs.replace(read_path(WW[1])[0], id="was-fine", outcome="succeeded")
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value(("was-fine.json", trace.to_json(), "application/json")).run()
    at.button(key="open_up_was-fine").click().run()
    at.sidebar.radio[0].set_value("Flow graph").run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    line = [m for m in texts(at, "markdown") if m.startswith("**Blame path**")]
    assert len(line) == 1 and "failure shows" not in line[0]
    assert "to the final answer (the run is recorded as successful" in line[0]
    edges, failure, _ = data.flow_edges(trace)
    a = analyze(trace, METHOD)
    names = [t.name for t in figs.flow_figure(trace, edges, a, data.blame_path(trace, a, edges, failure), failure).data]
    assert f"final answer (step {failure}; the run succeeded)" in names and not any("failure" in (n or "") for n in names)


def test_upload_of_many_traces_opens_every_one(app) -> None:
    """A file of 12 traces: the message counts the ones it does not name, and each of the 12 can be opened (there
    used to be buttons for the first ten only)."""
    base = read_path(WW[0])[0]
    many = [msgspec.structs.replace(base, id=f"run-{k:02d}") for k in range(12)]
    raw = b"[" + b",".join(t.to_json() for t in many) + b"]"
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value(("many.json", raw, "application/json")).run()
    ok = texts(at, "success")
    assert len(ok) == 1 and ok[0].startswith("Read 12 trace(s): run-00") and ok[0].endswith(", and 2 more")
    assert at.selectbox(key="up_open_any").options == [t.id for t in many]
    at.selectbox(key="up_open_any").set_value("run-11").run()
    at.button(key="up_open_any_btn").click().run()
    assert at.session_state["page"] == "Timeline" and "Trace run-11" in texts(at, "header")


# ------------------------------------------------------------------- third walk-through (one test per fix)
def test_the_url_carries_only_what_the_page_uses(app) -> None:
    """Leaving a trace page drops trace (and method, where the page has no verdict) from the URL; coming back puts
    them back. A link never carries a trace or method the view does not show."""
    import inspector_pages as pages

    tid = "whowhen-algorithm-1"
    at = app(page="Timeline", trace=tid)
    assert at.query_params == {"page": "Timeline", "trace": tid, "method": METHOD}
    at.sidebar.radio[0].set_value("Evaluation").run()
    assert at.query_params == {"page": "Evaluation"}
    at.sidebar.radio[0].set_value("Traces").run()
    assert at.query_params == {"page": "Traces", "method": METHOD}
    at.sidebar.radio[0].set_value("Inside the model").run()
    assert at.query_params == {"page": "Inside the model", "trace": tid}
    at.sidebar.radio[0].set_value("Blame").run()
    assert at.query_params == {"page": "Blame", "trace": tid, "method": METHOD}
    at = app(page="Upload", trace=tid)  # a shared link with a trace the page does not use: dropped at once
    assert at.query_params == {"page": "Upload"}
    assert pages.url_params("Timeline", None, "") == {"page": "Timeline"}


def test_an_upload_with_a_stored_id_never_hides_the_stored_copy(app, env) -> None:
    """A file with a trace whose id the store holds too: the page says which copy shows, the sidebar switches to the
    other, and the Traces page opens the stored copy (the upload used to hide it for the rest of the session)."""
    stored = read_path(WW[0])[0]
    mine = msgspec.structs.replace(stored, steps=stored.steps[:4])  # an edited copy: 4 of the 6 steps
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value(("mine.json", mine.to_json(), "application/json")).run()
    at.button(key=f"open_up_{stored.id}").click().run()

    def caption() -> str:
        return [c for c in texts(at, "caption") if " steps · agents: " in c][0]

    def copy_notes() -> list[str]:  # which copy shows: said once, in the sidebar beside the switch
        notes = [m for m in texts(at, "info") + texts(at, "caption") if "copy** of" in m]
        assert notes == [str(x.value) for x in at.sidebar.info if "copy** of" in str(x.value)]
        return notes

    assert "4 steps" in caption() and copy_notes() == [
        f"Showing the **uploaded copy** of `{stored.id}` (from `mine.json`); the store holds a trace with this id "
        "too, with its stored verdicts."]
    at.sidebar.button(key="copy_store").click().run()
    assert f"{stored.n_steps} steps" in caption() and copy_notes()[0].startswith("Showing the **stored copy**")
    v = env["verdicts"][stored.id]  # the stored copy comes with its stored verdict
    assert any(s.startswith(f"Decisive step {v.step} — {v.agent}") for s in texts(at, "subheader"))
    at.sidebar.button(key="copy_upload").click().run()
    assert "4 steps" in caption()

    at.sidebar.radio[0].set_value("Traces").run()
    at.selectbox(key="list_open").set_value(stored.id).run()
    at.button(key="list_open_btn").click().run()
    assert at.session_state["page"] == "Timeline" and f"{stored.n_steps} steps" in caption()
    at.sidebar.radio[0].set_value("Upload").run()  # the Upload page opens its copy again
    at.file_uploader(key="up_file").set_value(("mine.json", mine.to_json(), "application/json")).run()
    at.button(key=f"open_up_{stored.id}").click().run()
    assert "4 steps" in caption()
    at.sidebar.radio[0].set_value("Export").run()
    assert copy_notes()[0].startswith(f"Showing the **uploaded copy** of `{stored.id}` (from `mine.json`)")


def test_timeline_names_the_decisive_span_of_an_otlp_run(app, env) -> None:
    """The reports name the decisive step's span (to find it in a trace viewer); the Timeline's caption too."""
    tid = next(t for t in env["verdicts"] if t not in {read_path(p)[0].id for p in WW})
    a = env["verdicts"][tid]
    span = a.evidence["decisive_span"]
    at = app(page="Timeline", trace=tid)
    assert any(f"span {span['span_name']!r} ({span['span_id']})" in c for c in texts(at, "caption")), \
        texts(at, "caption")


def test_compare_says_when_the_decisive_step_is_another_agents(app, env, monkeypatch, tmp_path) -> None:
    """As the Timeline does: a verdict blaming another agent than the one who wrote its decisive step says whose
    step it is in the Compare header."""
    import shutil

    tid = "whowhen-algorithm-2"
    trace = read_path(WW[1])[0]
    v = env["verdicts"][tid]
    other = next(a for a in trace.agents if a != trace.steps[v.step].agent)
    store = tmp_path / "owner.duckdb"
    shutil.copy(env["store"], store)
    with open_store(store) as s:
        s.save_attribution(msgspec.structs.replace(v, agent=other))
    monkeypatch.setenv("ATTRIB_STORE", str(store))
    note = f"(the step is {trace.steps[v.step].agent}'s)"
    at = app(page="Compare methods", trace=tid)
    assert at.selectbox(key="cmp_a").value == METHOD
    heads = [m for m in texts(at, "markdown") if m.startswith(f"**{METHOD}** → ")]
    assert heads == [f"**{METHOD}** → **{other}**, step **{v.step}** {note} (score {v.confidence:.2f})"], heads
    at = app(page="Timeline", trace=tid)
    assert f"Decisive step {v.step} — {other} {note}" in texts(at, "subheader")


def test_out_of_sample_is_said_only_where_the_file_records_folds(app, monkeypatch, tmp_path) -> None:
    """The harness's files record their k folds: "out of sample". The judge benchmark's layout (model, fold_seed,
    per-method subsets, no folds) makes no such claim."""
    judge = {"model": "tiny-judge", "fold_seed": 0, "subsets": {"hand": {
        "judge-all": {"n": 3, "step_accuracy": 33.3, "agent_accuracy": 66.7},
        "learned": {"n": 3, "step_accuracy": 66.7, "agent_accuracy": 66.7}}}}
    (tmp_path / "who_and_when_judge.json").write_text(json.dumps(judge))
    monkeypatch.setenv("ATTRIB_RESULTS_DIR", str(tmp_path))
    at = app(page="Evaluation")
    cap = [c for c in texts(at, "caption") if "top-1 exact match" in c]
    assert cap == ["model: tiny-judge · fold_seed: 0 · top-1 exact match in %"], cap
    assert not data.out_of_sample(judge) and not data.out_of_sample({"folds": True})
    assert data.out_of_sample({"folds": 5}) and not data.out_of_sample({"folds": 1}) and not data.out_of_sample([])

    (tmp_path / "who_and_when.json").write_text(json.dumps({"default_method": "learned", "folds": 5,
                                                           "subsets": {"hand": {"step_accuracy": 30.0}}}))
    at = app(page="Evaluation")
    assert at.selectbox(key="eval_file").value == "who_and_when.json"
    cap = [c for c in texts(at, "caption") if "top-1 exact match" in c]
    assert cap == ["default_method: learned · folds: 5 · top-1 exact match in %, out of sample"], cap


def test_runs_the_default_gets_wrong_open_from_the_evaluation_page(app, env, monkeypatch, tmp_path) -> None:
    """The wrong runs the store holds can be opened as on the Traces page (the others are marked not in store)."""
    per = [{"trace_id": "whowhen-algorithm-2", "true_agent": "Verification_Expert", "true_step": 2, "steps": [0],
            "step_hit": 0.0, "agent_hit": 0.0, "confidence": 0.9},
           {"trace_id": "whowhen-algorithm-999", "true_agent": "X", "true_step": 1, "steps": [3],
            "step_hit": 0.0, "agent_hit": 1.0, "confidence": 0.5}]
    (tmp_path / "who_and_when.json").write_text(json.dumps({"folds": 5, "subsets": {"algorithm": {
        "step_accuracy": 10.0, "per_trace": per}}}))
    monkeypatch.setenv("ATTRIB_RESULTS_DIR", str(tmp_path))
    at = app(page="Evaluation")
    table = next(d.value for d in at.dataframe if "in store" in d.value.columns)
    assert list(table["trace_id"]) == ["whowhen-algorithm-2", "whowhen-algorithm-999"]
    assert list(table["in store"]) == [True, False]
    assert at.selectbox(key="eval_open").options == ["whowhen-algorithm-2"]
    at.button(key="eval_open_btn").click().run()
    assert at.session_state["page"] == "Timeline" and "Trace whowhen-algorithm-2" in texts(at, "header")

    (tmp_path / "who_and_when.json").write_text(json.dumps({"folds": 5, "subsets": {"algorithm": {
        "step_accuracy": 10.0, "per_trace": per[1:]}}}))
    at = app(page="Evaluation")
    assert not [s for s in at.selectbox if s.key == "eval_open"]
    assert any("None of these runs is in the store" in i for i in texts(at, "info"))


# ------------------------------------------------------------------- fourth walk-through (one test per fix)
def test_uploads_survive_a_visit_to_another_page(app) -> None:
    """The file box forgets its file when another page is shown; the Upload page used to come back empty. The files
    read in this session stay listed (the latest first) with their open buttons, and the Format box keeps its value."""
    otlp = traces_dir() / "otlp_agents.json"
    first = read_path(otlp)[0]
    base = read_path(WW[0])[0]
    many = [msgspec.structs.replace(base, id=f"run-{k:02d}") for k in range(12)]
    at = app(page="Upload")
    at.selectbox(key="up_format").set_value("otlp").run()
    at.file_uploader(key="up_file").set_value((otlp.name, otlp.read_bytes(), "application/json")).run()
    at.selectbox(key="up_format").set_value("auto-detect").run()
    raw = b"[" + b",".join(t.to_json() for t in many) + b"]"
    at.file_uploader(key="up_file").set_value(("many.json", raw, "application/json")).run()
    assert len(texts(at, "success")) == 1 and texts(at, "success")[0].startswith("Read 12 trace(s): run-00")
    at.selectbox(key="up_format").set_value("whowhen").run()

    at.sidebar.radio[0].set_value("Traces").run()
    at.sidebar.radio[0].set_value("Upload").run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    assert at.file_uploader(key="up_file").value is None  # the box is empty again, as in the browser
    assert at.selectbox(key="up_format").value == "whowhen"
    assert "Uploaded in this session" in texts(at, "subheader")
    md = texts(at, "markdown")
    assert any(m.startswith("`many.json`: 12 trace(s): run-00") for m in md), md
    assert any(m.startswith(f"`{otlp.name}`: 1 trace(s): {first.id}") for m in md), md
    assert at.selectbox(key="up_open_any").options == [t.id for t in many]  # the latest file first
    at.button(key=f"open_up_{first.id}").click().run()
    assert at.session_state["page"] == "Timeline" and f"Trace {first.id}" in texts(at, "header")
    notes = [str(x.value) for x in at.sidebar.info]
    assert any(n.startswith(f"Showing the **uploaded copy** of `{first.id}` (from `{otlp.name}`)") for n in notes)


def test_step_text_boxes_fit_short_steps(app, monkeypatch) -> None:
    """A step's text box was always 260 / 320 px high, so a one-line step sat in a mostly empty box; now it is as
    tall as its text and only a long text gets the fixed, scrolling height."""
    import streamlit as st

    heights: dict[str, object] = {}
    real = st.code

    def code(body: str, *args: object, **kw: object) -> object:
        heights[body] = kw.get("height")
        return real(body, *args, **kw)

    monkeypatch.setattr(st, "code", code)
    trace = read_path(WW[0])[0]
    at = app(page="Timeline", trace=trace.id)
    short = next(s for s in trace.steps if s.content and "\n" not in s.content and len(s.content) < 40)
    long = max(trace.steps, key=lambda s: len(s.content))
    assert len(long.content) > 2000
    at.number_input(key="read_step").set_value(short.index).run()
    assert heights[short.content] == "content"
    at.number_input(key="read_step").set_value(long.index).run()
    assert heights[long.content] == 320


def test_open_buttons_sit_level_with_their_box(app) -> None:
    """The "Open timeline" button stood level with the box's label, above the box it opens; its column is now
    aligned to the bottom, as the box is."""
    at = app(page="Traces")
    col = next(c for c in at.columns if any(getattr(e, "key", None) == "list_open_btn" for e in c.button))
    assert col.proto.vertical_alignment == col.proto.VerticalAlignment.BOTTOM


def test_step_axes_tick_whole_steps(app, tmp_path) -> None:
    """The flow graph's and the comparison's step axes read 0, 0.5, 1, 1.5, ... on a short run; like the timeline's,
    they now tick each step (up to 40 steps)."""
    trace = read_path(traces_dir() / "chat_langgraph.json")[0]
    a = analyze(trace, METHOD)
    edges, failure, _ = data.flow_edges(trace)
    assert figs.flow_figure(trace, edges, a, [], failure).layout.xaxis.dtick == 1
    assert figs.timeline_figure(trace, a).layout.xaxis.dtick == 1
    at = app(page="Compare methods", trace="whowhen-algorithm-2")
    steps = json.loads([c for c in at.get("plotly_chart") if "each scaled to its maximum" in c.proto.spec][0].proto.spec)
    assert steps["layout"]["xaxis"]["dtick"] == 1
    long = read_path(_long_trace_file(tmp_path / "long130.json"))[0]
    assert figs.flow_figure(long, data.flow_edges(long)[0], None, [], None).layout.xaxis.dtick is None


def test_evaluation_tables_show_one_decimal(app, env) -> None:
    """Accuracies came with four decimals (46.8254) in a table captioned "in %"; they show one, as the CLI prints
    them, and whole-number columns (n) keep their format."""
    at = app(page="Evaluation")
    table = next(d for d in at.dataframe if "method" in d.value.columns)
    cols = json.loads(table.proto.columns)
    assert cols["step_accuracy"]["type_config"]["format"] == "%.1f"
    assert "n" not in cols and "method" not in cols
    assert np.allclose(table.value["step_accuracy"],  # the numbers themselves are untouched
                       [r["step_accuracy"] for r in env["eval"]["rows"] if r["subset"] == "algorithm"])


def test_the_uploads_of_a_session_can_be_forgotten(app) -> None:
    """Uploads stayed for the whole browser session with no way to drop them; a button forgets them."""
    otlp = traces_dir() / "otlp_agents.json"
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value((otlp.name, otlp.read_bytes(), "application/json")).run()
    at.sidebar.radio[0].set_value("Traces").run()
    at.sidebar.radio[0].set_value("Upload").run()
    assert "Uploaded in this session" in texts(at, "subheader")
    at.button(key="up_forget").click().run()
    assert not at.exception and "Uploaded in this session" not in texts(at, "subheader")
    assert not any(m.startswith(f"`{otlp.name}`") for m in texts(at, "markdown"))


# --- the trace the app opens when none is asked for: the one ingested or analyzed last, not the first id ---


def _ingest(store: Path, *names: tuple[str, int]) -> None:
    files = [who_and_when_dir(subset) / f"{i}.json" for subset, i in names]
    assert ingest(files, store=str(store), progress=False).ok


def _opened(at: AppTest) -> str:
    return str(at.session_state["trace_id"])


def test_the_app_opens_the_run_ingested_or_analyzed_last(run_app, tmp_path: Path) -> None:
    """It opened the first id in sorted order whatever the store held (whowhen-algorithm-1 here throughout)."""
    store = tmp_path / "store.duckdb"
    _ingest(store, ("algorithm", 1), ("algorithm", 2))
    _ingest(store, ("hand", 1))  # the run just added
    assert _opened(run_app(page="Traces")) == "whowhen-hand-1"
    at = run_app(page="Timeline")
    assert "Trace whowhen-hand-1" in [str(h.value) for h in at.header]

    with open_store(store) as s:  # the run just analyzed (`attrib analyze ID --save`, the batch engine)
        s.save_attribution(analyze(s.get_trace("whowhen-algorithm-2"), METHOD))
    assert _opened(run_app(page="Traces")) == "whowhen-algorithm-2"

    _ingest(store, ("algorithm", 3))  # a run ingested after that verdict is newer still
    assert _opened(run_app(page="Traces")) == "whowhen-algorithm-3"


def test_a_batch_of_verdicts_opens_one_of_them_and_ties_go_to_the_smallest_id(run_app, tmp_path: Path) -> None:
    """Verdicts written in one transaction share a timestamp: of those, the smallest id (the same on every run)."""
    store = tmp_path / "store.duckdb"
    _ingest(store, ("algorithm", 1), ("algorithm", 2), ("algorithm", 3), ("hand", 1))
    with open_store(store) as s:
        s.save_attributions([analyze(s.get_trace(t), METHOD) for t in ("whowhen-hand-1", "whowhen-algorithm-3")])
    assert _opened(run_app(page="Traces")) == "whowhen-algorithm-3"


def test_a_trace_in_the_url_or_chosen_in_the_session_wins(run_app, tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    _ingest(store, ("algorithm", 1), ("algorithm", 2))
    _ingest(store, ("hand", 1))
    at = run_app(page="Timeline", trace="whowhen-algorithm-2")  # a shared link
    assert _opened(at) == "whowhen-algorithm-2" and at.query_params["trace"] == "whowhen-algorithm-2"
    at.sidebar.text_input(key="trace_id").set_value("whowhen-algorithm-1").run()  # typed in the sidebar
    _ingest(store, ("algorithm", 3))  # the store changes meanwhile: the choice stays
    at.sidebar.radio[0].set_value("Blame").run()
    assert _opened(at) == "whowhen-algorithm-1" and "Trace whowhen-algorithm-1" in [str(h.value) for h in at.header]


def test_an_empty_store_opens_no_trace(run_app, tmp_path: Path) -> None:
    with open_store(tmp_path / "store.duckdb"):
        pass
    at = run_app(page="Timeline")
    assert not at.session_state["trace_id"]


def test_stored_verdicts_name_their_ranker_and_a_fresh_one_says_when_it_differs(run_app, tmp_path, monkeypatch
                                                                                ) -> None:
    """Verdicts stored by `attrib analyze --all --model my_ranker.json` showed as plain `learned`, no ranker named
    (their evidence.ranker holds it), while the app analyses with the shipped one. The Traces page, Timeline and
    Blame now name the ranker of a stored verdict; an uploaded copy of a stored run, analysed now with another
    ranker, says so and names the stored verdict's."""
    import orjson

    from attrib.engine import analyze_many
    from attrib.methods.learned import fit_artifact
    from attrib.readers import read_paths

    monkeypatch.delenv("ATTRIB_RANKER", raising=False)  # the app analyses with the shipped ranker
    own = REPO_ROOT / "tests" / "fixtures" / "own_system" / "runs"
    model = tmp_path / "my_ranker.json"
    model.write_bytes(orjson.dumps(fit_artifact(read_paths([own / "chat"]), "test")))
    store = tmp_path / "store.duckdb"
    files = sorted((own / "otlp").glob("*.json"))[:3]
    assert ingest(files, store=str(store), progress=False).ok
    report = analyze_many(store, engine="serial", options={"model_path": str(model)})  # as --all --model does
    assert report.analyzed == 3
    with open_store(store, read_only=True) as s:
        ids = s.trace_ids()
        stored = {tid: s.get_attributions(tid, "learned")[0] for tid in ids}
    assert {a.evidence["ranker"].split(" (sha256")[0] for a in stored.values()} == {str(model.resolve())}

    at = run_app(page="Traces", method="learned")
    assert any("verdicts from stored `learned` runs (ranker `my_ranker.json`)" in m for m in texts(at, "markdown"))
    table = at.dataframe[0].value
    assert list(table["ranker"]) == ["my_ranker.json"] * 3

    tid = ids[0]
    v = stored[tid]
    at = run_app(page="Timeline", trace=tid, method="learned")
    assert any(s.startswith(f"Decisive step {v.step} — {v.agent}") for s in texts(at, "subheader"))
    assert any(c.startswith("method `learned` · stored verdict · ranker `my_ranker.json` · confidence")
               for c in texts(at, "caption")), texts(at, "caption")
    assert not any("analysed now" in w for w in texts(at, "warning"))
    at = run_app(page="Blame", trace=tid, method="learned")
    assert "method `learned` · stored verdict · ranker `my_ranker.json`" in texts(at, "caption")

    # an uploaded copy of the stored run is analysed now, with the app's (shipped) ranker: said, with the stored one
    trace = read_path(files[0])[0]
    assert trace.id == tid
    fresh = analyze(trace, "learned")
    at = run_app(page="Upload", method="learned")
    at.file_uploader(key="up_file").set_value(("mine.json", trace.to_json(), "application/json")).run()
    at.button(key=f"open_up_{tid}").click().run()
    assert at.session_state["page"] == "Timeline"
    assert any(c.startswith("method `learned` · analysed now · ranker `shipped` · confidence")
               for c in texts(at, "caption")), texts(at, "caption")
    assert [w for w in texts(at, "warning") if "analysed now" in w] == [
        "This verdict was analysed now with ranker `shipped`; the store's `learned` verdict on its stored copy of "
        f"this trace came from ranker `my_ranker.json` (step {v.step}, {v.agent}), so the two can differ."]
    assert any(s.startswith(f"Decisive step {fresh.step} — {fresh.agent}") for s in texts(at, "subheader"))
