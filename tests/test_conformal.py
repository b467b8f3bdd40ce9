"""Conformal step sets: the finite-sample quantile, sets that cover at the promised rate on a synthetic case with
known probabilities, and, on Who&When out of sample, sets from the learned ranker that hold the decisive step
about as often as they promise."""

import numpy as np
import pytest

from attrib.methods.conformal import ConformalStepSet, conformal_threshold, set_score, step_set


def test_score_and_set_agree():
    p = np.array([0.1, 0.5, 0.3, 0.1])
    assert set_score(p, 1) == 0.0 and set_score(p, 2) == pytest.approx(0.5)
    assert set_score(p, 0) == pytest.approx(0.8) and set_score(p, 3) == pytest.approx(0.9)  # tie: the earlier first
    assert step_set(p, 0.0) == [1] and step_set(p, 0.5) == [1, 2] and step_set(p, 0.79) == [1, 2]
    assert step_set(p, 0.8) == [1, 2, 0] and step_set(p, 1.0) == [1, 2, 0, 3]
    for y in range(4):  # a step is in the set exactly when the threshold reaches its score
        assert y in step_set(p, set_score(p, y)) and (set_score(p, y) == 0 or y not in step_set(p, set_score(p, y) - 0.01))


def test_threshold_is_the_finite_sample_quantile():
    s = np.arange(1, 20) / 20  # 19 scores
    assert conformal_threshold(s, 0.9) == pytest.approx(0.9)  # ceil(20 * 0.9) = 18th smallest
    assert conformal_threshold(s[:5], 0.9) == 1.0  # too few to promise 90 %: the whole run
    with pytest.raises(ValueError, match="between 0 and 1"):
        ConformalStepSet(1.5)


def test_sets_cover_at_the_promised_rate_when_the_model_is_right():
    rng = np.random.default_rng(0)

    def draw(n):  # runs of 4-30 steps; the decisive step drawn from the model's own distribution
        ps = [rng.dirichlet(np.full(rng.integers(4, 31), 1.0)) for _ in range(n)]
        return ps, [int(rng.choice(len(p), p=p)) for p in ps]

    cal_p, cal_y = draw(400)
    test_p, test_y = draw(2000)
    for level in (0.6, 0.9):
        m = ConformalStepSet(level).fit(cal_p, cal_y)
        for group in (0, 1):  # short (<= 12 steps) and long runs: the coverage holds in each group
            hits = [y in m.predict(p) for p, y in zip(test_p, test_y, strict=True) if m.group(len(p)) == group]
            assert level - 0.05 < np.mean(hits) < level + 0.07, (level, group, np.mean(hits))
    m = ConformalStepSet(0.9).fit(cal_p, cal_y)
    p0 = test_p[0]
    assert m.threshold(len(p0), 0.6) < m.threshold(len(p0))
    assert m.predict(p0, 0.6) == m.predict(p0)[: len(m.predict(p0, 0.6))]  # a lower level: a prefix of the ranking
    assert m.group(12) == 0 and m.group(13) == 1
    few = ConformalStepSet(0.9).fit([p for p in cal_p if len(p) > 12][:5], [0] * 5)
    assert few.predict(np.full(20, 0.05)) == list(range(20))  # 5 long calibration runs cannot promise 90 %
    m2 = ConformalStepSet.from_dict(m.to_dict())
    assert m2.predict(test_p[1], 0.7) == m.predict(test_p[1], 0.7)


def test_learned_sets_cover_the_decisive_step_out_of_sample():
    from attrib.evaluate.data import load_subset
    from attrib.evaluate.harness import cross_validate, learned_fitter, mean_summary

    ag, hc = load_subset("algorithm"), load_subset("hand")
    m = mean_summary([cross_validate(hc, learned_fitter, 5, 0, extra=ag)])
    assert m["set_coverage"] >= 80.0  # 90 % promised per length group; measured 92.8 % (5 fold seeds)
    assert m["set_size"] < 0.9 * np.mean([t.n_steps for t in hc])  # and the set is shorter than the run


def test_a_length_group_with_too_few_runs_gets_the_whole_run_and_nine_sure_runs_a_single_step():
    """At 90 % the set needs ceil(0.9 (n + 1)) <= n calibration runs, i.e. n >= 9: with 8 it is the whole run. With 9
    or more runs that the ranker all ranked first (score 0), the top step alone is a legitimate 90 % set: a new
    exchangeable run is ranked first with probability >= n / (n + 1). A group with no runs (long ones) gets the
    whole run."""
    p = np.array([0.1, 0.25, 0.24, 0.18, 0.11, 0.12])
    sure = [np.eye(6)[i % 6] * 0.9 + 0.1 / 6 for i in range(12)]
    assert ConformalStepSet().fit(sure[:8], [i % 6 for i in range(8)]).predict(p) == [1, 2, 3, 5, 4, 0]
    fitted = ConformalStepSet().fit(sure[:9], [i % 6 for i in range(9)])
    assert fitted.predict(p) == [1]
    assert fitted.predict(np.full(20, 0.05)) == list(range(20))  # 20 steps: the long group, no calibration runs
