"""Shapley blame over agents (or any players), exact or sampled, with a confidence interval on every score.

**Value function.** For a set ``S`` of agents, ``v(S)`` is how much failure disappears when the steps
of the agents in ``S`` are *repaired* (counterfactually neutralised: they introduce no error of their
own)::

    F(R)  = 1 - prod_{i not in steps(R), i reaches the failure} (1 - r_i)      (noisy-OR failure model)
    v(S)  = F(∅) - F(S)

where ``r_i`` is step ``i``'s risk from a pluggable failure model (by default the learned ranker's
step probabilities) and "reaches the failure" means an information-flow path from ``i`` to the step
where the failure shows. ``v(∅) = 0`` and ``v(N) = F(∅)``, so by efficiency the agents' blames add up
to the failure score. The noisy-OR makes the game non-additive: two agents that both could have
caused the failure share it.

**Estimators.** ``<= max_exact`` players (10): exact enumeration of all ``2^n`` coalitions with a
cache (each ``v(S)`` is computed once); the CI is then the point value. More players: permutation
sampling with antithetic pairs (a permutation and its reverse), a normal CI from the pair means.

We write the estimator rather than call shap: shap explains a model's prediction over a background
dataset by masking input features, while this is a set function over agents; shap's import also
costs seconds, over the < 1 s budget for analysing a trace. The tests check our exact values against
``shap.explainers.Exact`` on a game where both apply, and the efficiency axiom.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

ValueFn = Callable[[frozenset[int]], float]


@dataclass(frozen=True)
class ShapleyResult:
    """Shapley values with a confidence interval per player (``exact``: the CI is the point value)."""

    values: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    exact: bool
    n_evaluations: int


class _Cached:
    def __init__(self, fn: ValueFn) -> None:
        self.fn = fn
        self.cache: dict[frozenset[int], float] = {}

    def __call__(self, s: frozenset[int]) -> float:
        v = self.cache.get(s)
        if v is None:
            v = self.cache[s] = float(self.fn(s))
        return v


def exact_shapley(n: int, value: ValueFn) -> ShapleyResult:
    """Exact Shapley values by enumerating every coalition (use for n <= ~12)."""
    v = _Cached(value)
    phi = np.zeros(n)
    fact = [math.factorial(k) for k in range(n + 1)]
    players = range(n)
    for i in players:
        others = [j for j in players if j != i]
        for k in range(n):
            w = fact[k] * fact[n - k - 1] / fact[n]
            for s in combinations(others, k):
                fs = frozenset(s)
                phi[i] += w * (v(fs | {i}) - v(fs))
    return ShapleyResult(phi, phi.copy(), phi.copy(), True, len(v.cache))


def sampled_shapley(
    n: int, value: ValueFn, n_permutations: int = 200, random_state: int | None = 0, z: float = 1.96
) -> ShapleyResult:
    """Permutation-sampling Shapley with antithetic pairs; CI = mean ± z·SE over pair means."""
    v = _Cached(value)
    rng = np.random.default_rng(random_state)
    n_pairs = max(2, n_permutations // 2)
    samples = np.zeros((n_pairs, n))
    for p in range(n_pairs):
        perm = rng.permutation(n)
        for order in (perm, perm[::-1]):
            s: frozenset[int] = frozenset()
            prev = v(s)
            for i in order:
                s = s | {int(i)}
                cur = v(s)
                samples[p, i] += (cur - prev) / 2.0
                prev = cur
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(n_pairs)
    return ShapleyResult(mean, mean - z * se, mean + z * se, False, len(v.cache))


def shapley(n: int, value: ValueFn, max_exact: int = 10, **kw: Any) -> ShapleyResult:
    """Exact for ``n <= max_exact`` players, antithetic permutation sampling beyond."""
    return exact_shapley(n, value) if n <= max_exact else sampled_shapley(n, value, **kw)


def _risk(risk: ArrayLike, reaches: Sequence[bool] | None) -> np.ndarray:
    """The game's step risks: in [0, 1) (a certain failure would make repairing the others worth nothing), and 0
    for a step whose output does not reach the failure; shared by the agent and the step game."""
    r = np.clip(np.asarray(risk, dtype=float), 0.0, 1.0 - 1e-12)
    return r if reaches is None else np.where(np.asarray(reaches, dtype=bool), r, 0.0)


def noisy_or_game(
    owners: Sequence[int], risk: ArrayLike, reaches: Sequence[bool] | None = None
) -> ValueFn:
    """The documented ``v(S)``: failure removed by repairing the steps owned by players in ``S``.

    ``owners[i]`` is the player (agent) owning step ``i``; ``risk[i]`` its failure risk in [0, 1];
    ``reaches[i]`` whether step ``i``'s output reaches the failure (default: all do).
    """
    owners_a = np.asarray(owners)
    r = _risk(risk, reaches)
    n_players = int(owners_a.max()) + 1 if len(owners_a) else 0
    # log-survival per player: F(R) = 1 - exp(sum over unrepaired players of log-survival)
    log_surv = np.array([np.log1p(-r[owners_a == k]).sum() for k in range(n_players)])
    total = log_surv.sum()
    f_none = 1.0 - math.exp(total)

    def v(s: frozenset[int]) -> float:
        return f_none - (1.0 - math.exp(total - sum(log_surv[k] for k in s)))

    return v


def step_blame(risk: ArrayLike, reaches: Sequence[bool] | None = None) -> np.ndarray:
    """Exact Shapley blame of every *step* (each step a player) under :func:`noisy_or_game`, in O(n^2).

    Sampling permutations of a 130-step run would be slow and noisy, but this game has a closed form. Repairing
    step ``i`` removes ``r_i * prod(1 - r_j)`` over the steps ``j`` not yet repaired, and ``j`` precedes ``i`` in a
    random order with probability ``t``, uniform over [0, 1]::

        phi_i = r_i * integral_0^1 prod_{j != i} (t + (1 - t)(1 - r_j)) dt

    The integrand is a polynomial of degree n - 1 in ``t``, so Gauss-Legendre quadrature with n/2 + 1 nodes is
    exact; that costs O(n^2) time and memory plus an O(n^3) eigen-solve for the nodes, so past
    :data:`EXACT_NODES_MAX` steps the integral is taken by composite Gauss-Legendre over intervals graded
    geometrically towards t = 1, where the integrand concentrates when the risks add up to much: O(n) memory per
    block and to machine precision (tested against the exact rule). Efficiency holds: the values add up to ``F(∅)``.
    A step whose output does not reach the failure gets 0.
    """
    r = _risk(risk, reaches)
    if r.size == 0:
        return r
    t, w = _nodes(min(r.size, EXACT_NODES_MAX + 1))  # past the exact rule's range one composite rule serves all
    out = np.zeros_like(r)
    for k in range(0, t.size, _BLOCK):  # blocks of nodes bound the [node, step] arrays' memory
        log_f = np.log1p(-np.outer(1 - t[k:k + _BLOCK], r))  # [node, step]: log(t + (1 - t)(1 - r_j))
        out += w[k:k + _BLOCK] @ np.exp(log_f.sum(axis=1, keepdims=True) - log_f)  # prod over j != i, per node
    return r * out


#: Up to this many steps :func:`step_blame` uses the exact Gauss-Legendre rule (n/2 + 1 nodes).
EXACT_NODES_MAX = 512
_BLOCK = 64


@lru_cache(maxsize=64)
def _nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights on [0, 1] for a product of ``n - 1`` linear factors (see :func:`step_blame`)."""
    if n <= EXACT_NODES_MAX:
        x, w = np.polynomial.legendre.leggauss(n // 2 + 1)
        return (x + 1) / 2, w / 2
    # composite rule on s = 1 - t over [0, 2^-40], [2^-40, 2^-39], ..., [1/2, 1]: 24 nodes a piece
    x, w = np.polynomial.legendre.leggauss(24)
    edges = np.concatenate([[0.0], 2.0 ** np.arange(-40, 1)])
    lo, hi = edges[:-1, None], edges[1:, None]
    s = (lo + (hi - lo) * (x + 1) / 2).ravel()
    return 1 - s, ((hi - lo) * w / 2).ravel()


def agent_blame(
    agents: Sequence[str], step_agents: Sequence[str], risk: ArrayLike, reaches: Sequence[bool] | None = None,
    max_exact: int = 10, random_state: int | None = 0,
) -> tuple[ShapleyResult, float]:
    """Shapley blame of each agent in ``agents`` under :func:`noisy_or_game`; also returns ``F(∅)``."""
    idx = {a: k for k, a in enumerate(agents)}
    owners = [idx[a] for a in step_agents]
    v = noisy_or_game(owners, risk, reaches)
    res = shapley(len(agents), v, max_exact=max_exact, random_state=random_state)
    return res, v(frozenset(range(len(agents))))
