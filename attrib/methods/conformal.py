"""Conformal step sets: "the decisive step is among these", with a coverage guarantee instead of a fixed top-k.

A top-1 verdict on Who&When is right about half the time, and a fixed top-5 is too long on a 6-step run
and too short on a 90-step one. Split conformal prediction turns the ranker's step distribution into a
set that holds the decisive step with probability at least ``level`` on runs exchangeable with the
calibration runs: the set is the highest-probability steps, taken in order while the mass ranked above
the next one stays within a threshold fitted on out-of-fold predictions (a non-randomised form of the
"adaptive prediction sets" of Romano, Sesia & Candès, 2020; the score of a run is the mass the ranker put
above its decisive step). Sure verdicts get short sets, unsure ones long sets. Without randomisation
the sets over-cover when the top step alone is right more often than ``level`` asks.

Written here because it is a quantile and a cumulative sum over numpy arrays; the conformal libraries
(MAPIE, crepes) wrap scikit-learn estimators of a fixed number of classes, not a softmax over a
variable number of steps. The guarantee is marginal and assumes exchangeability: on a system unlike
the calibration runs the coverage can fall short, which is why the evaluation reports it out of sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: The coverage the shipped ranker's step sets aim at.
LEVEL = 0.9


def _order(p: np.ndarray) -> np.ndarray:
    """Steps by decreasing probability; ties: the earlier step first."""
    return np.argsort(-np.asarray(p, dtype=float), kind="stable")


def set_score(p: np.ndarray, y: int) -> float:
    """The probability mass of the steps ranked above ``y``: the smallest threshold whose set contains ``y``."""
    o = _order(p)
    rank = int(np.flatnonzero(o == y)[0])
    return float(np.asarray(p, dtype=float)[o[:rank]].sum())


def conformal_threshold(scores: Sequence[float], level: float = LEVEL) -> float:
    """The ``ceil((n + 1) level) / n`` empirical quantile of calibration ``scores`` (1.0 when n is too small)."""
    s = np.sort(np.asarray(scores, dtype=float))
    n = len(s)
    k = math.ceil((n + 1) * level)
    return 1.0 if n == 0 or k > n else float(s[k - 1])


def step_set(p: np.ndarray, threshold: float) -> list[int]:
    """The most probable steps, in order, while the mass ranked above each is at most ``threshold`` (the top step
    always: its mass above is 0)."""
    p = np.asarray(p, dtype=float)
    o = _order(p)
    above = np.concatenate([[0.0], np.cumsum(p[o])[:-1]])
    return [int(i) for i in o[above <= threshold + 1e-12]]  # 1e-12: float noise in the cumulative sums


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"the set level must be between 0 and 1 (e.g. 0.9), got {level}")
    return float(level)


class ConformalStepSet:
    """Split-conformal step sets (``fit`` on out-of-fold step distributions and the true steps; ``predict``).

    The calibration scores are kept (``scores_``), so a set can be asked at any level after fitting.
    """

    def __init__(self, level: float = LEVEL) -> None:
        self.level = _check_level(level)

    def fit(self, probs: Sequence[np.ndarray], ys: Sequence[int]) -> ConformalStepSet:
        self.scores_ = np.sort([set_score(p, y) for p, y in zip(probs, ys, strict=True)])
        self.threshold_ = conformal_threshold(self.scores_, self.level)
        return self

    def threshold(self, level: float | None = None) -> float:
        """The mass threshold for ``level`` (default: the level it was fitted at)."""
        return self.threshold_ if level is None else conformal_threshold(self.scores_, _check_level(level))

    def predict(self, p: np.ndarray, level: float | None = None) -> list[int]:
        """The steps that hold the decisive one with probability >= ``level`` (default: ``self.level``)."""
        return step_set(p, self.threshold(level))

    def to_dict(self) -> dict[str, float | list[float]]:
        return {"level": self.level, "threshold": self.threshold_, "scores": [round(float(x), 6) for x in self.scores_]}

    @classmethod
    def from_dict(cls, d: dict) -> ConformalStepSet:
        m = cls(float(d["level"]))
        m.scores_ = np.asarray(d["scores"], dtype=float)
        m.threshold_ = float(d["threshold"])
        return m
