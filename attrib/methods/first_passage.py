"""First-passage step head: "the decisive step is the *earliest* step that goes wrong", as a listwise model.

Who&When defines the decisive step as the earliest one whose fix would have saved the run, so a
suspicious step that comes after an earlier suspicious step is less likely to be the answer. A plain
softmax over steps (:mod:`.clogit`) cannot say "earliest of several": it scores each step alone. Here
each step also gets a hazard ``h_i = sigmoid(x_i · v + bias)`` (how likely the run goes wrong *at* i)
and its score adds the log-probability of going wrong first at i:

    s_i = x_i · w + log h_i + sum_{j < i} log(1 - h_j),      p(i) = softmax_i(s)

``bias`` is fixed, not fitted: fitted freely it runs to -inf (the hazard term vanishes and the model
falls back to the plain softmax, which has the higher in-sample likelihood), yet the fixed prior is
what generalises. It was chosen on grouped cross-validation over Who&When (see the README's attribution
section). The likelihood and its gradient are written here for the same reason as in :mod:`.clogit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from attrib.methods.clogit import ConditionalLogit, group_softmax, segments

#: The fixed hazard bias: sigmoid(-1.5) ~ 0.18, the prior chance that an average step is the first mistake.
BIAS = -1.5


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def first_passage_scores(Z: np.ndarray, sizes: np.ndarray, w: np.ndarray, v: np.ndarray, bias: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per-item scores ``s`` (see the module docstring) and the hazard logits ``a`` for groups of ``sizes``."""
    a = Z @ v + bias
    log_h, log_not_h = -np.logaddexp(0.0, -a), -np.logaddexp(0.0, a)
    cs = np.cumsum(log_not_h)
    gid = np.repeat(np.arange(len(sizes)), sizes)
    before = np.concatenate([[0.0], cs])[segments(sizes)][gid]
    return Z @ w + log_h + (cs - log_not_h - before), a


def neg_log_likelihood(theta: np.ndarray, Z: np.ndarray, sizes: np.ndarray, T: np.ndarray, w_g: np.ndarray,
                       bias: float) -> tuple[float, np.ndarray]:
    """-sum_i T_i log p(i) and its gradient in ``theta = [w, v]``; ``T`` holds each item's (weighted) target mass
    and ``w_g`` each group's weight (the targets of group g sum to ``w_g[g]``)."""
    d = Z.shape[1]
    s, a = first_passage_scores(Z, sizes, theta[:d], theta[d:], bias)
    p = group_softmax(s, sizes)
    gid = np.repeat(np.arange(len(sizes)), sizes)
    r = p * w_g[gid] - T  # d(nll)/ds
    h = _sigmoid(a)
    cs = np.cumsum(r)
    later = cs[segments(sizes) + sizes - 1][gid] - cs  # sum of r over the later items of the same group
    ga = r * (1.0 - h) - h * later  # d(nll)/da: a raises log h_i, lowers every later step's survival
    return float(-(T @ np.log(p + 1e-300))), np.concatenate([Z.T @ r, Z.T @ ga])


class FirstPassageLogit(ConditionalLogit):
    """Softmax over steps of ``x · w`` plus the log-probability that step i is the first failure (``fit`` /
    ``predict_proba`` as :class:`~attrib.methods.clogit.ConditionalLogit`; L2 ``l2`` on both ``w`` and ``v``).

    ``coef_`` is ``w + v``, the scores' local linearisation, used to explain a verdict by feature.
    """

    def __init__(self, l2: float = 1.0, random_state: int = 0, max_iter: int = 500, smooth: float = 0.0,
                 bias: float = BIAS) -> None:
        super().__init__(l2=l2, random_state=random_state, max_iter=max_iter, smooth=smooth)
        self.bias = bias

    def fit(self, Xs: Sequence[np.ndarray], ys: Sequence[int], weights: ArrayLike | None = None):
        Z, sizes, _, w_g, T = self._prepare(Xs, ys, weights)
        n = w_g.sum()

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            nll, grad = neg_log_likelihood(theta, Z, sizes, T, w_g, self.bias)
            return nll / n + self.l2 * (theta @ theta) / 2, grad / n + self.l2 * theta

        theta = self._minimize(loss, 2 * Z.shape[1])
        self.w_, self.v_ = np.split(theta, 2)
        self.coef_ = self.w_ + self.v_
        return self

    def hazards(self, X: np.ndarray) -> np.ndarray:
        """Each step's hazard ``h_i``: how likely the run goes wrong *at* that step, given it had not before."""
        return _sigmoid(self._z(X) @ self.v_ + self.bias)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return first_passage_scores(self._z(X), np.array([len(X)]), self.w_, self.v_, self.bias)[0]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "first_passage", "l2": self.l2, "smooth": self.smooth, "bias": self.bias,
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(), "w": self.w_.tolist(),
                "v": self.v_.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> FirstPassageLogit:
        m = cls(l2=float(d["l2"]), smooth=float(d.get("smooth", 0.0)), bias=float(d["bias"]))
        m.mean_, m.scale_, m.w_, m.v_ = (np.asarray(d[k], dtype=float) for k in ("mean", "scale", "w", "v"))
        m.coef_ = m.w_ + m.v_
        return m
