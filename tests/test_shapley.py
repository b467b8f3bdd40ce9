"""Shapley estimator: known answers, efficiency, exact vs sampled within CI, agreement with shap."""

import numpy as np
import pytest

from attrib.methods.shapley import agent_blame, exact_shapley, noisy_or_game, sampled_shapley, shapley


def test_quadratic_game_known_answer_and_efficiency():
    w = np.array([1.0, 2.0, 3.0, 0.5])
    res = exact_shapley(len(w), lambda s: sum(w[i] for i in s) ** 2)
    np.testing.assert_allclose(res.values, w * w.sum())  # phi_i = w_i * W for v(S) = (sum_S w)^2
    assert res.values.sum() == pytest.approx(w.sum() ** 2)
    assert res.n_evaluations == 2 ** len(w)


def test_sampled_agrees_with_exact_within_ci_beyond_ten_players():
    rng = np.random.default_rng(1)
    w = rng.uniform(0.1, 1.0, size=12)
    game = lambda s: float(np.sqrt(sum(w[i] for i in s)))  # noqa: E731  concave: players interact
    exact = exact_shapley(12, game).values
    res = shapley(12, game, max_exact=10, n_permutations=400, random_state=3)
    assert not res.exact
    inside = (res.ci_low <= exact) & (exact <= res.ci_high)
    assert inside.mean() >= 0.8  # 95% intervals: nearly all of 12 contain the exact value
    assert np.all(res.ci_high > res.ci_low)
    assert res.values.sum() == pytest.approx(np.sqrt(w.sum()))  # efficiency holds per permutation


def test_antithetic_pairs_are_exact_on_quadratic_games():
    w = np.array([0.3, 1.2, 0.7, 2.0, 0.1, 0.9, 1.5, 0.4, 0.8, 1.1, 0.6])
    res = sampled_shapley(11, lambda s: sum(w[i] for i in s) ** 2, 10, random_state=0)
    np.testing.assert_allclose(res.values, w * w.sum())  # a permutation and its reverse cancel the noise


def test_noisy_or_game_efficiency_and_ordering():
    owners = [0, 1, 0, 2, 1]
    risk = [0.6, 0.05, 0.1, 0.0, 0.05]
    v = noisy_or_game(owners, risk)
    res = exact_shapley(3, v)
    assert res.values.sum() == pytest.approx(v(frozenset({0, 1, 2})))
    assert res.values.argmax() == 0 and res.values[2] == pytest.approx(0.0)
    blame, f = agent_blame(["a", "b", "c"], ["a", "b", "a", "c", "b"], risk)
    np.testing.assert_allclose(blame.values, res.values)
    assert f == pytest.approx(1 - 0.4 * 0.95 * 0.9 * 1.0 * 0.95)


@pytest.mark.slow  # importing shap (numba) takes ~10-40 s on a busy 2-core box
def test_exact_matches_shap_exact_explainer_on_additive_model():
    shap = pytest.importorskip("shap")
    beta = np.array([0.5, -1.0, 2.0])
    x = np.array([[1.0, 2.0, 3.0]])
    background = np.zeros((1, 3))
    explainer = shap.explainers.Exact(lambda X: X @ beta, background)
    ref = explainer(x).values[0]
    ours = exact_shapley(3, lambda s: float(sum(beta[i] * x[0, i] for i in s))).values
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_antithetic_sampling_is_reproducible():
    g = lambda s: float(len(s) ** 1.5)  # noqa: E731
    a = sampled_shapley(5, g, 50, random_state=7)
    b = sampled_shapley(5, g, 50, random_state=7)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.values.sum() == pytest.approx(5**1.5)


def test_step_blame_is_the_exact_shapley_value_of_the_step_game() -> None:
    """Shapley blame over steps (every step a player): the closed form equals exact enumeration on small games,
    satisfies efficiency on a 130-step run, and gives a step that does not reach the failure nothing."""
    from attrib.methods.shapley import step_blame

    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 9):
        risk = rng.uniform(0, 0.9, n)
        reaches = rng.uniform(size=n) > 0.2
        v = noisy_or_game(list(range(n)), risk, reaches)
        np.testing.assert_allclose(step_blame(risk, reaches), exact_shapley(n, v).values, atol=1e-12)
    risk = rng.uniform(0, 0.2, 130)
    phi = step_blame(risk)
    assert phi.sum() == pytest.approx(1 - np.prod(1 - risk), abs=1e-12)  # efficiency: F(∅)
    assert step_blame([0.5, 0.5], [True, False])[1] == 0.0 and step_blame([]).size == 0


def test_step_blame_on_long_runs_matches_the_exact_rule_and_stays_small():
    """Past EXACT_NODES_MAX steps the composite rule replaces the exact one (whose n/2 nodes cost an O(n^3)
    eigen-solve and an n/2 x n array: 89 s and 5 GB on a 20,000-step run); it must agree with it."""
    from attrib.methods import shapley

    rng = np.random.default_rng(3)
    n = shapley.EXACT_NODES_MAX + 88
    for r in (rng.uniform(0, 1, n), np.full(n, 0.9), np.where(rng.uniform(size=n) < 0.02, 0.95, 1e-3),
              np.exp(z := rng.normal(0, 3, n)) / np.exp(z).sum()):
        x, w = np.polynomial.legendre.leggauss(n // 2 + 1)
        t, w = (x + 1) / 2, w / 2
        log_f = np.log1p(-np.outer(1 - t, r))
        exact = r * (w @ np.exp(log_f.sum(axis=1, keepdims=True) - log_f))
        got = shapley.step_blame(r)
        assert np.allclose(got, exact, rtol=1e-9, atol=1e-15)
        assert got.sum() == pytest.approx(1 - np.prod(1 - r), abs=1e-12)  # efficiency
    big = shapley.step_blame(rng.uniform(0, 1e-3, 100_000))
    assert big.shape == (100_000,) and np.all(big >= 0)
