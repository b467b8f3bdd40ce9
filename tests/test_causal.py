"""Causal discovery (PC + temporal tiers) finds a planted root-cause step in synthetic traces."""
import numpy as np
import pytest

from attrib.methods.causal import SIGNALS, CausalStepModel, attribute
from attrib.trace import Step, Trace

ROOT = 2


def synthetic(n: int = 300, seed: int = 0) -> list[Trace]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        root = rng.random() < 0.5
        fail = rng.random() < (0.9 if root else 0.1)
        contents = []
        for i in range(6):
            bits = ["working on it"]
            if i == ROOT and root:
                bits.append("there is an error in the units")  # the planted cause
            if i == 4 and root and rng.random() < 0.7:
                bits.append("error propagated")  # a downstream symptom (mediator)
            if rng.random() < 0.3:
                bits.append("I assume the default")  # noise, unrelated to failure
            if rng.random() < 0.3:
                bits.append("sorry, cannot open it")  # noise
            contents.append(". ".join(bits))
        steps = tuple(Step(index=i, agent=f"agent{i}", content=c) for i, c in enumerate(contents))
        out.append(Trace(id=f"s{k}", source_format="attrib", steps=steps, outcome="failed" if fail else "succeeded"))
    return out


def test_pc_recovers_planted_root_cause():
    traces = synthetic()
    m = CausalStepModel(n_tiers=6).fit(traces)
    assert m.outcome_ == "outcome"
    E = m.effects_.reshape(6, len(SIGNALS))
    err = SIGNALS.index("kw_error")
    assert E[ROOT, err] > 0.3  # large effect of the planted error on failure
    assert abs(E[:, SIGNALS.index("kw_hedge")]).max() < 0.1  # noise has none
    # no edge points backwards in time
    tier = lambda name: 99 if name == "failure" else int(name.split("@")[1])  # noqa: E731
    assert all(tier(a) <= tier(b) for a, b in m.graph_edges_)
    hits = [attribute(t, model=m).step == ROOT for t in traces if t.outcome == "failed" and "units" in t.steps[ROOT].content]
    assert np.mean(hits) > 0.9  # earliest wins: the root beats its downstream symptom


def test_all_failed_falls_back_to_symptom_outcome():
    traces = [Trace(id=t.id, source_format="attrib", steps=t.steps, outcome="failed") for t in synthetic(60, 1)]
    m = CausalStepModel().fit(traces)
    assert m.outcome_ == "symptom"


def test_the_shipped_model_needs_no_benchmark_files(monkeypatch, tmp_path) -> None:
    """`--method causal` used to fit PC on ../shared's Who&When logs at every call (3 s), and failed (exit 4) where
    they are absent, as on a pip install."""
    from attrib.methods import causal
    from attrib.paths import traces_dir
    from attrib.readers import load_trace

    demo = load_trace(traces_dir() / "demo_whowhen.json")
    monkeypatch.setenv("ATTRIB_WHO_AND_WHEN", str(tmp_path / "absent"))
    a = attribute(demo)
    assert a.method == "causal" and a.evidence["model"] == "shipped (fitted on Who&When all 184 logs)"
    shipped = causal.default_model()
    assert CausalStepModel.from_dict(shipped.to_dict()).step_scores(demo).tolist() == shipped.step_scores(demo).tolist()


def test_the_shipped_model_is_a_fresh_fit_on_who_and_when(whowhen_dir) -> None:
    """Else regenerate it: bench/who_and_when/fit_default.py (PC on all 184 logs, a few seconds)."""
    from attrib.evaluate.data import SUBSETS, load_subset
    from attrib.methods import causal

    fresh = CausalStepModel().fit([t for s in SUBSETS for t in load_subset(s)])
    assert causal.default_model().to_dict() == fresh.to_dict()


def test_a_damaged_shipped_causal_model_is_one_line_naming_the_file(monkeypatch, tmp_path) -> None:
    from attrib.errors import InputError
    from attrib.methods import causal

    bad = tmp_path / "causal.json"
    bad.write_text('{"signals": ["kw_error"]}')
    monkeypatch.setattr(causal, "ARTIFACT", bad)
    causal.default_model.cache_clear()
    try:
        with pytest.raises(InputError, match="causal.json.*damaged causal model"):
            causal.default_model()
    finally:
        causal.default_model.cache_clear()
