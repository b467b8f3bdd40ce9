"""The first-passage step head: its scores are the first-failure log-probabilities, its gradient is right, it
learns "the earliest of several suspicious steps" where the plain softmax cannot, and it round-trips."""

import numpy as np
from scipy.optimize import check_grad

from attrib.methods.clogit import ConditionalLogit, smoothed_targets
from attrib.methods.first_passage import FirstPassageLogit, first_passage_scores, neg_log_likelihood
from attrib.methods.ranker import LearnedRanker


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def test_scores_are_first_failure_log_probabilities():
    rng = np.random.default_rng(0)
    Z, w, v = rng.normal(size=(7, 3)), rng.normal(size=3), rng.normal(size=3)
    sizes = np.array([3, 4])
    s, a = first_passage_scores(Z, sizes, w, v, bias=-1.0)
    for lo, hi in ((0, 3), (3, 7)):
        h = _sigmoid(Z[lo:hi] @ v - 1.0)
        for i in range(hi - lo):
            first = h[i] * np.prod(1 - h[:i])  # survive every earlier step, fail at i
            assert np.isclose(s[lo + i], Z[lo + i] @ w + np.log(first))
    np.testing.assert_allclose(a, Z @ v - 1.0)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    sizes = np.array([3, 5, 2, 6])
    Z = rng.normal(size=(sizes.sum(), 4))
    w_g = np.array([1.0, 2.0, 0.5, 1.0])
    T = smoothed_targets(sizes, [1, 4, 0, 2], 0.2) * np.repeat(w_g, sizes)
    for bias in (0.0, -1.5):
        err = check_grad(lambda th, b=bias: neg_log_likelihood(th, Z, sizes, T, w_g, b)[0],
                         lambda th, b=bias: neg_log_likelihood(th, Z, sizes, T, w_g, b)[1], rng.normal(size=8))
        assert err < 1e-5


def _earliest_flagged(n_traces: int, seed: int) -> tuple[list[np.ndarray], list[int]]:
    """Traces with 2-3 steps flagged by feature 0 (plus a noise feature); the answer is the first flagged one."""
    rng = np.random.default_rng(seed)
    Xs, ys = [], []
    for _ in range(n_traces):
        n = int(rng.integers(6, 14))
        flagged = np.sort(rng.choice(n, size=int(rng.integers(2, 4)), replace=False))
        X = np.column_stack([np.zeros(n), rng.normal(size=n)])
        X[flagged, 0] = 1
        Xs.append(X)
        ys.append(int(flagged[0]))
    return Xs, ys


def _accuracy(model: ConditionalLogit, Xs: list[np.ndarray], ys: list[int]) -> float:
    return float(np.mean([int(np.argmax(model.predict_proba(X))) == y for X, y in zip(Xs, ys, strict=True)]))


def test_learns_earliest_of_several_suspicious_steps_where_softmax_cannot():
    Xs, ys = _earliest_flagged(300, 0)
    Xt, yt = _earliest_flagged(200, 1)
    fp = FirstPassageLogit(l2=0.01).fit(Xs, ys)
    plain = ConditionalLogit(l2=0.01).fit(Xs, ys)
    assert _accuracy(fp, Xt, yt) > 0.95
    assert _accuracy(plain, Xt, yt) < 0.6  # it can only pick one of the flagged steps at random
    p = fp.predict_proba(Xt[0])
    assert p.shape == (len(Xt[0]),) and abs(p.sum() - 1) < 1e-9


def test_round_trip_and_ranker_artifacts():
    Xs, ys = _earliest_flagged(40, 2)
    m = FirstPassageLogit(l2=0.1, smooth=0.2, bias=-1.0).fit(Xs, ys)
    again = FirstPassageLogit.from_dict(m.to_dict())
    assert again.bias == -1.0 and again.smooth == 0.2
    np.testing.assert_allclose(again.predict_proba(Xs[0]), m.predict_proba(Xs[0]))
    assert LearnedRanker()._step_model(1.0).__class__ is FirstPassageLogit
    assert LearnedRanker(step_head="logit")._step_model(1.0).__class__ is ConditionalLogit


def test_rankers_saved_before_the_first_passage_head_still_load():
    from attrib.evaluate.data import load_subset, question_id

    traces = load_subset("algorithm")[:24]
    old = LearnedRanker(step_head="logit", l2_step=1.0).fit(traces, [question_id(t) for t in traces])
    d = old.to_dict()
    for key in ("step_head", "hazard_bias"):
        del d["params"][key]  # what `attrib fit` wrote before this head existed
    loaded = LearnedRanker.from_dict(d)
    assert loaded.step_head == "logit" and type(loaded.step_model_) is ConditionalLogit
    t = traces[0].unlabelled()
    np.testing.assert_allclose(loaded.predict(t).step_probs, old.predict(t).step_probs)
    new = LearnedRanker(l2_step=1.0).fit(traces, [question_id(t) for t in traces])
    again = LearnedRanker.from_dict(new.to_dict())
    assert type(again.step_model_) is FirstPassageLogit
    np.testing.assert_allclose(again.predict(t).step_probs, new.predict(t).step_probs)


def test_the_verdict_shows_what_the_first_passage_head_saw_before_it():
    from attrib.methods import analyze
    from attrib.paths import traces_dir
    from attrib.readers import read_path
    from attrib.render import attribution_markdown

    (trace,) = read_path(traces_dir() / "demo_whowhen.json")
    a = analyze(trace)
    fp = a.evidence["first_passage"]
    assert a.step > 0 and 0 < fp["hazard"] < 1 and 0 <= fp["earlier_step"] < a.step
    assert fp["earlier_hazard"] < fp["hazard"]  # earlier steps looked cleaner than the one blamed
    assert abs(fp["clean_before"] - np.prod([1 - h for h in _hazards(a, trace)[: a.step]])) < 1e-9
    assert "earliest step to go wrong" in a.reason
    assert "**First to go wrong (hazard)**: hazard" in attribution_markdown(a, trace)
    # a ranker with the plain softmax head has no hazards to show
    from attrib.evaluate.data import load_subset, question_id
    from attrib.methods.learned import attribute

    train = load_subset("algorithm")[:24]
    plain = LearnedRanker(step_head="logit", l2_step=1.0).fit(train, [question_id(t) for t in train])
    b = attribute(trace, model=plain)
    assert "first_passage" not in b.evidence and "earliest step" not in b.reason


def _hazards(a, trace):
    from attrib.methods.learned import default_model, setting_of
    from attrib.methods.ranker import featurize

    return default_model(setting_of(trace)).step_model_.hazards(featurize(trace))
