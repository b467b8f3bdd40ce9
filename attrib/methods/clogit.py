"""Conditional (listwise) logit: a softmax over the items of each group, fitted by L-BFGS.

Used twice by the learned ranker: over the steps of a trace (which step is decisive?) and over the
agents of a trace (which agent?). Unlike a per-step logistic regression it compares steps *within*
a trace, which is what arg-max evaluation asks. scikit-learn has no grouped softmax objective, so the
negative log-likelihood and its gradient are written here (vectorised, ~40 lines); scipy does the
optimisation. Follows the scikit-learn conventions: ``fit``/``predict_proba``, state in ``*_``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from attrib.errors import check_fitted


def segments(sizes: np.ndarray) -> np.ndarray:
    """Start offsets of consecutive groups of the given sizes."""
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def group_softmax(z: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Softmax of ``z`` within consecutive groups of the given sizes."""
    starts = segments(sizes)
    gid = np.repeat(np.arange(len(sizes)), sizes)
    zmax = np.maximum.reduceat(z, starts)
    e = np.exp(z - zmax[gid])
    return e / np.add.reduceat(e, starts)[gid]


def smoothed_targets(sizes: np.ndarray, ys: Sequence[int], smooth: float) -> np.ndarray:
    """Per-item target mass: 1 - ``smooth`` on the chosen item, ``smooth`` split over its in-group neighbours.

    Neighbour smoothing encodes that an annotated decisive step is fuzzy by one position (the step
    before or after often carries the same error), which regularises a model fitted on a few hundred
    groups. ``smooth=0`` is the plain conditional logit.
    """
    starts = segments(sizes)
    T = np.zeros(int(sizes.sum()))
    for s0, n, y in zip(starts, sizes, ys, strict=True):
        nb = [j for j in (y - 1, y + 1) if 0 <= j < n] if smooth > 0 else []
        T[s0 + y] = 1.0 - (smooth if nb else 0.0)
        for j in nb:
            T[s0 + j] += smooth / len(nb)
    return T


class ConditionalLogit:
    """Softmax-over-group model ``p(item) ∝ exp(x · w)`` with L2 penalty ``l2`` (on standardised x).

    ``smooth`` > 0 fits soft targets (see :func:`smoothed_targets`) instead of the one chosen item.
    """

    def __init__(self, l2: float = 1.0, random_state: int = 0, max_iter: int = 500, smooth: float = 0.0) -> None:
        self.l2 = l2
        self.random_state = random_state
        self.max_iter = max_iter
        self.smooth = smooth

    def fit(self, Xs: Sequence[np.ndarray], ys: Sequence[int], weights: ArrayLike | None = None):
        """``Xs[g]`` is group g's ``(n_items, d)`` matrix, ``ys[g]`` the index of its chosen item."""
        Z, sizes, gid, w_g, T = self._prepare(Xs, ys, weights)
        n = w_g.sum()

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            p = group_softmax(Z @ w, sizes)
            ll = T @ np.log(p + 1e-300)
            g = Z.T @ (p * w_g[gid] - T)  # targets sum to one per group
            return -ll / n + self.l2 * (w @ w) / 2, g / n + self.l2 * w

        self.coef_ = self._minimize(loss, Z.shape[1])
        return self

    def _prepare(self, Xs: Sequence[np.ndarray], ys: Sequence[int], weights: ArrayLike | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Standardise (setting ``mean_`` / ``scale_``); return Z, group sizes, group id per item, group weights
        and the weighted target mass per item."""
        X = np.vstack(Xs)
        sizes = np.array([len(x) for x in Xs])
        w_g = np.ones(len(Xs)) if weights is None else np.asarray(weights, dtype=float)
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 1e-9, sd, 1.0)
        gid = np.repeat(np.arange(len(sizes)), sizes)
        T = smoothed_targets(sizes, ys, self.smooth) * w_g[gid]
        return self._z(X), sizes, gid, w_g, T

    def _minimize(self, loss: Callable[[np.ndarray], tuple[float, np.ndarray]], size: int) -> np.ndarray:
        """L-BFGS from a small random start; sets ``n_iter_``."""
        from scipy.optimize import minimize
        from threadpoolctl import threadpool_limits

        w0 = np.random.default_rng(self.random_state).normal(scale=1e-3, size=size)
        # one BLAS thread: L-BFGS-B on ~100 parameters only spins a thread pool (5x the CPU on a busy machine)
        with threadpool_limits(1):
            res = minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter})
        self.n_iter_ = int(res.nit)
        return res.x

    def _z(self, X: np.ndarray) -> np.ndarray:
        """``X`` standardised as in fitting."""
        return (X - self.mean_) / self.scale_

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._z(X) @ self.coef_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities over the items of one group (rows of ``X``)."""
        check_fitted(self, "coef_")
        return group_softmax(self.decision_function(X), np.array([len(X)]))

    def to_dict(self) -> dict[str, Any]:
        return {"l2": self.l2, "smooth": self.smooth, "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "coef": self.coef_.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> ConditionalLogit:
        m = cls(l2=float(d["l2"]), smooth=float(d.get("smooth", 0.0)))
        m.mean_, m.scale_, m.coef_ = (np.asarray(d[k], dtype=float) for k in ("mean", "scale", "coef"))
        return m
