"""Confidence calibration (Platt or isotonic) and expected calibration error.

Fitting uses SciPy (Platt) or scikit-learn (isotonic), imported inside :meth:`Calibrator.fit`; applying a fitted
calibrator is pure numpy so that the shipped model scores a trace without importing either. The
calibrator maps a raw top-1 probability to the probability that the verdict is right.

Few calibration runs (a ranker fitted on a user's dozen runs) must not yield near-certain confidences: the targets are
Platt's smoothed ones, and the Platt map is pulled towards the identity (the ranker's own probability), so that
where the calibration runs say little, the confidence stays near what the ranker's distribution says.

Platt scaling optionally takes one covariate (the learned ranker passes the log of the trace length):
the same top-1 probability is worth less on a 100-step run than on a 10-step one, and a single
sigmoid over the probability alone over-states confidence on long runs (Hand-Crafted ECE 11 % -> see README).
"""

from __future__ import annotations

import numpy as np

from attrib.errors import check_fitted


def ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins (fraction, not percent)."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if len(confidence) == 0:
        return float("nan")
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.sum() * abs(confidence[m].mean() - correct[m].mean())
    return float(total / len(confidence))


def ece_if_calibrated(
    confidence: np.ndarray, n_bins: int = 10, n_sim: int = 2000, random_state: int = 0
) -> tuple[float, float]:
    """ECE a *perfectly* calibrated predictor would show with these confidences: (mean, 95th percentile).

    Binned ECE is biased upwards on small samples: each outcome is drawn as Bernoulli(confidence) and
    the ECE recomputed. On Who&When's 58 Hand-Crafted logs this floor is ~11 %, so an observed ECE
    below its 95th percentile is no evidence of miscalibration.
    """
    c = np.asarray(confidence, dtype=float)
    if len(c) == 0:
        return float("nan"), float("nan")
    # all simulations at once: the bins depend only on the confidences, so only per-bin hit counts vary
    hits = np.random.default_rng(random_state).random((n_sim, len(c))) < c
    bins = np.minimum((c * n_bins).astype(int), n_bins - 1)
    onehot = np.eye(n_bins)[bins]  # [n, bins]
    count = onehot.sum(0)
    used = count > 0
    gap = np.abs(c @ onehot - hits @ onehot)[:, used]  # |sum conf - sum hits| per bin = count * |mean gap|
    sims = gap.sum(1) / len(c)
    return float(sims.mean()), float(np.quantile(sims, 0.95))


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Per-bin (mean confidence, accuracy, count): the data of a reliability diagram."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        m = bins == b
        if m.any():
            out.append({"bin": b, "confidence": float(confidence[m].mean()), "accuracy": float(correct[m].mean()),
                        "count": int(m.sum())})
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def smoothed_targets(correct: np.ndarray) -> np.ndarray:
    """Platt's (1999) targets for few samples: ``(N+ + 1) / (N+ + 2)`` for a right verdict, ``1 / (N- + 2)`` for a
    wrong one (N+, N-: how many were right, wrong). A 0/1 target lets the fit push the sigmoid to 0 or 1 on a handful
    of runs; these are Laplace's rule of succession, so 12 right out of 12 means 13/14, not certainty."""
    correct = np.asarray(correct, dtype=int)
    n_pos = int(correct.sum())
    n_neg = len(correct) - n_pos
    return np.where(correct == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))


#: Strength of the prior on the Platt map: ``||(a, b, c) - (1, 0, 0)||^2 / (2 C)`` is added to the (smoothed-target)
#: log loss, as scikit-learn's ``C``. The prior is the identity map (the ranker's own probability), not scikit-learn's
#: zero slope: with no or uninformative calibration data a zero slope says the ranker's probability does not matter,
#: which turned p = 0.25 into 99 % after 12 runs that all came out right. Chosen on the ranker's out-of-fold
#: Who&When predictions (log loss on held-out runs, fits on 12, 24, 48 runs and 5-fold on all): 0.3 beat 1, 3, 10
#: and the old scikit-learn fit (C = 10, zero prior) at every size; 0.1 did a little better still, but gives the
#: calibration runs less say on a system where the ranker's own probability is off.
PRIOR_C = 0.3


def _fit_platt(z: np.ndarray, target: np.ndarray, covariate: np.ndarray | None) -> tuple[float, float, float]:
    """``(a, b, c)`` of ``sigmoid(a z + b + c covariate)`` fitted to soft ``target`` under the identity prior."""
    from scipy.optimize import minimize
    from scipy.special import expit

    x = np.zeros_like(z) if covariate is None else covariate
    prior = np.array([1.0, 0.0, 0.0])
    free = np.array([1.0, 1.0, 0.0 if covariate is None else 1.0])  # no covariate: c stays 0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        u = w[0] * z + w[1] + w[2] * x
        err = expit(u) - target
        d = w - prior
        grad = np.array([err @ z, err.sum(), err @ x]) + d / PRIOR_C
        return float(np.sum(np.logaddexp(0.0, u) - target * u) + d @ d / (2 * PRIOR_C)), grad * free

    w = minimize(loss, prior, jac=True, method="L-BFGS-B").x
    return float(w[0]), float(w[1]), float(w[2]) if covariate is not None else 0.0


#: The kinds of :class:`Calibrator` ("none": the raw confidence as it is).
KINDS = ("platt", "isotonic", "none")


class Calibrator:
    """Maps raw confidences to calibrated probabilities. ``kind`` is one of :data:`KINDS`: 'platt' (default),
    'isotonic' or 'none' (the raw confidence as it is)."""

    def __init__(self, kind: str = "platt") -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown calibration {kind!r}")
        self.kind = kind

    def fit(self, raw: np.ndarray, correct: np.ndarray, covariate: np.ndarray | None = None) -> Calibrator:
        """Fit on raw confidences and 0/1 correctness; ``covariate`` (Platt only) enters the sigmoid linearly.

        Both kinds fit Platt's smoothed targets (:func:`smoothed_targets`), so that a few calibration runs that all
        came out right (or wrong) do not make every later verdict near-certain (or near-hopeless); and the fitted map
        is kept within ``[1 / (n + 2), (n + 1) / (n + 2)]`` for ``n`` calibration samples (``n_``), the most that n
        outcomes can support: without it, the ranker's own p = 0.99 would stay 0.98 after 12 runs.
        """
        raw = np.asarray(raw, dtype=float)
        correct = np.asarray(correct, dtype=int)
        target = smoothed_targets(correct)
        self.c_ = 0.0
        self.n_: int | None = len(correct)
        if self.kind == "platt":
            cov = None if covariate is None else np.asarray(covariate, dtype=float)
            self.a_, self.b_, self.c_ = _fit_platt(_logit(raw), target, cov)
        elif self.kind == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, target)
            self.x_, self.y_ = iso.X_thresholds_.astype(float), iso.y_thresholds_.astype(float)
        return self

    def predict(self, raw: np.ndarray | float, covariate: np.ndarray | float = 0.0) -> np.ndarray:
        """Calibrated confidences for raw ones (and the covariate Platt was fitted with)."""
        raw = np.asarray(raw, dtype=float)
        if self.kind in ("platt", "isotonic"):
            check_fitted(self, "a_" if self.kind == "platt" else "x_")
        if self.kind == "platt":
            z = self.a_ * _logit(raw) + self.b_ + self.c_ * np.asarray(covariate, dtype=float)
            return self._bound(1.0 / (1.0 + np.exp(-z)))
        if self.kind == "isotonic":
            return self._bound(np.interp(raw, self.x_, self.y_))
        return raw

    def _bound(self, p: np.ndarray) -> np.ndarray:
        """``p`` within what ``n_`` calibration samples support (no bound: none, or unknown in older files)."""
        n = getattr(self, "n_", None)
        return p if not n else np.clip(p, 1 / (n + 2), (n + 1) / (n + 2))

    def to_dict(self) -> dict:
        """The fitted map as plain values, for a ranker file (:meth:`from_dict` reads it back)."""
        if self.kind == "platt":
            return {"kind": "platt", "a": self.a_, "b": self.b_, "c": self.c_, "n": self.n_}
        if self.kind == "isotonic":
            return {"kind": "isotonic", "x": self.x_.tolist(), "y": self.y_.tolist(), "n": self.n_}
        return {"kind": "none"}

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        c = cls(d["kind"])
        c.c_ = 0.0
        c.n_ = None if d.get("n") is None else int(d["n"])  # files from before it was kept: unbounded, as fitted
        if c.kind == "platt":
            c.a_, c.b_, c.c_ = float(d["a"]), float(d["b"]), float(d.get("c", 0.0))
        elif c.kind == "isotonic":
            c.x_, c.y_ = np.asarray(d["x"], dtype=float), np.asarray(d["y"], dtype=float)
        return c
