"""Accuracy at step tolerances, agent accuracy and calibration error over a list of verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from attrib.methods.calibration import ece, ece_if_calibrated


@dataclass(frozen=True)
class Verdict:
    """One method's answer on one labelled trace (what the metrics need, nothing more)."""

    trace_id: str
    step: int
    agent: str
    true_step: int
    true_agent: str
    confidence: float | None = None
    agent_confidence: float | None = None
    expected_step_acc: float | None = None  # for analytic baselines (random): P(exact hit)
    expected_agent_acc: float | None = None
    ranking: tuple[int, ...] = ()  # steps in the method's order of blame, when it ranks them (top-k hit rates)


def ranking_of(scores: np.ndarray, k: int = 5) -> tuple[int, ...]:
    """The ``k`` highest-scoring steps, best first (ties: the earlier step first)."""
    return tuple(int(i) for i in np.argsort(-np.asarray(scores), kind="stable")[:k])


def summarize(verdicts: Sequence[Verdict]) -> dict[str, float | None]:
    """Percentages: step exact / ±1 / ±3, top-3 / top-5 hit rates, agent; ECE (10 bins) of step and agent confidences.

    ``step_top3`` / ``step_top5``: how often the decisive step is among the method's first 3 / 5 ranked steps
    (what a user reading ``attrib analyze``'s candidate table gets); None unless every verdict has a ranking.

    ``ece_null`` is the ECE a perfectly calibrated predictor would show with the same confidences on
    this many traces (its mean; ``ece_null_q95`` its 95th percentile): the noise floor to read ECE against.
    """
    if not verdicts:
        return {}
    st = np.array([v.step for v in verdicts])
    ts = np.array([v.true_step for v in verdicts])
    d = np.abs(st - ts)
    exact = np.array([v.expected_step_acc if v.expected_step_acc is not None else float(x == 0)
                      for v, x in zip(verdicts, d, strict=True)])
    agent = np.array([v.expected_agent_acc if v.expected_agent_acc is not None else float(v.agent == v.true_agent)
                      for v in verdicts])
    out: dict[str, float | None] = {
        "n": len(verdicts),
        "step_accuracy": 100 * exact.mean(),
        "step_accuracy_pm1": 100 * (d <= 1).mean(),
        "step_accuracy_pm3": 100 * (d <= 3).mean(),
        "step_top3": None,
        "step_top5": None,
        "agent_accuracy": 100 * agent.mean(),
        "ece": None,
        "agent_ece": None,
        "ece_null": None,
        "ece_null_q95": None,
    }
    if any(v.expected_step_acc is not None for v in verdicts):  # analytic baselines: ±k is undefined
        out["step_accuracy_pm1"] = out["step_accuracy_pm3"] = None
    if all(v.ranking for v in verdicts):
        for k in (3, 5):
            out[f"step_top{k}"] = 100 * float(np.mean([v.true_step in v.ranking[:k] for v in verdicts]))
    if all(v.confidence is not None for v in verdicts):
        conf = np.array([v.confidence for v in verdicts])
        out["ece"] = ece(conf, (d == 0).astype(float))
        out["ece_null"], out["ece_null_q95"] = ece_if_calibrated(conf)
    if all(v.agent_confidence is not None for v in verdicts):
        out["agent_ece"] = ece(np.array([v.agent_confidence for v in verdicts]),
                               np.array([v.agent == v.true_agent for v in verdicts], dtype=float))
    return out
