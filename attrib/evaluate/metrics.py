"""Accuracy at step tolerances, agent accuracy and calibration error over a list of verdicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    step_set: tuple[int, ...] = ()  # the method's conformal step set, when it gives one (coverage and size)


def ranking_of(scores: np.ndarray, k: int = 5) -> tuple[int, ...]:
    """The ``k`` highest-scoring steps, best first (ties: the earlier step first)."""
    return tuple(int(i) for i in np.argsort(-np.asarray(scores), kind="stable")[:k])


def step_hit(v: Verdict) -> float:
    """1 for the annotated step, 0 otherwise; a random-choice baseline gives its expected hit rate instead."""
    return v.expected_step_acc if v.expected_step_acc is not None else float(v.step == v.true_step)


def agent_hit(v: Verdict) -> float:
    """The same for the agent."""
    return v.expected_agent_acc if v.expected_agent_acc is not None else float(v.agent == v.true_agent)


def per_trace_hits(runs: Sequence[Sequence[Verdict]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Trace ids and each trace's step / agent hit rate averaged over ``runs`` (fold seeds; matched by trace id)."""
    ids = [v.trace_id for v in runs[0]]
    step = {i: 0.0 for i in ids}
    agent = {i: 0.0 for i in ids}
    for run in runs:
        for v in run:
            step[v.trace_id] += step_hit(v)
            agent[v.trace_id] += agent_hit(v)
    n = len(runs)
    return ids, np.array([step[i] / n for i in ids]), np.array([agent[i] / n for i in ids])


def per_trace_table(runs: Sequence[Sequence[Verdict]]) -> list[dict[str, Any]]:
    """One row per trace: the annotation, each run's (fold seed's) verdict, hit rates and mean confidence; for
    error analysis (which runs does the method miss, and how sure was it?)."""
    by: dict[str, list[Verdict]] = {}
    for run in runs:
        for v in run:
            by.setdefault(v.trace_id, []).append(v)
    ids, step, agent = per_trace_hits(runs)
    rows = []
    for tid, s_hit, a_hit in zip(ids, step, agent, strict=True):
        vs = by[tid]
        conf = [v.confidence for v in vs if v.confidence is not None]
        rows.append({"trace_id": tid, "true_step": vs[0].true_step, "true_agent": vs[0].true_agent,
                     "steps": [v.step for v in vs], "agents": [v.agent for v in vs], "step_hit": float(s_hit),
                     "agent_hit": float(a_hit), "confidence": float(np.mean(conf)) if conf else None})
    return rows


def _clusters(groups: Sequence[str] | None, n: int) -> np.ndarray | None:
    """Each value's cluster (0..G-1, in order of first appearance) when ``groups`` puts some values together, else
    None: every value its own cluster, the plain bootstrap."""
    if groups is None:
        return None
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} values (one per value)")
    first: dict[str, int] = {}
    codes = np.array([first.setdefault(str(g), len(first)) for g in groups], dtype=int)
    return codes if len(first) < n else None


def repeats_tasks(ids: Sequence[str], groups: Mapping[str, str] | None) -> bool:
    """Whether ``groups`` (trace id -> task, e.g. :func:`attrib.trace.question_id`) puts two of ``ids`` in one task:
    then :func:`bootstrap_ci` resamples tasks, not traces."""
    return groups is not None and _clusters([groups.get(i, i) for i in ids], len(ids)) is not None


def bootstrap_ci(values: np.ndarray, level: float = 0.95, n_boot: int = 2000, random_state: int = 0,
                 groups: Sequence[str] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling traces), in the units of ``values``.

    ``groups`` (one per value: its task, e.g. ``metadata.question_id``): where some task has several runs, whole tasks
    are resampled (a cluster bootstrap; each draw's mean is its runs' mean), since re-runs of one task are not
    independent draws: resampling runs made the interval too narrow when a task's re-runs fail alike. With one run
    per task (Who&When) it is the plain bootstrap, draw for draw.

    With 58-126 logs a subset, one log is 0.8-1.7 points and the interval is about +-9-12 points wide: read
    any accuracy, and any difference between methods, against it.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(random_state)
    codes = _clusters(groups, x.size)
    if codes is None:
        means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    else:
        n_groups = int(codes.max()) + 1
        sums, sizes = np.bincount(codes, weights=x, minlength=n_groups), np.bincount(codes, minlength=n_groups)
        draw = rng.integers(0, n_groups, size=(n_boot, n_groups))
        means = sums[draw].sum(axis=1) / sizes[draw].sum(axis=1)
    a = (1.0 - level) / 2
    return (float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a)))


def paired_gain(a: np.ndarray, b: np.ndarray, level: float = 0.95, random_state: int = 0,
                groups: Sequence[str] | None = None) -> dict[str, float]:
    """Mean of ``a - b`` over the same traces (per-trace hit rates, percent) with a paired bootstrap interval
    (over tasks where ``groups`` repeats one: :func:`bootstrap_ci`)."""
    d = 100 * (np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    lo, hi = bootstrap_ci(d, level, random_state=random_state, groups=groups)
    return {"mean": float(d.mean()), "ci_low": lo, "ci_high": hi}


def paired_gains(a_runs: Sequence[Sequence[Verdict]], b_runs: Sequence[Sequence[Verdict]],
                 groups: Mapping[str, str] | None = None) -> dict[str, dict[str, float]]:
    """Step and agent :func:`paired_gain` of method ``a`` over ``b`` on the traces of ``a_runs`` (lists of verdicts per
    fold seed; ``b_runs`` must cover those traces), matched by trace id. ``groups``: trace id -> task (a trace not in
    it is a task of its own); the interval resamples tasks where runs repeat one."""
    ids, a_step, a_agent = per_trace_hits(a_runs)
    b_ids, b_step, b_agent = per_trace_hits(b_runs)
    pos = {tid: j for j, tid in enumerate(b_ids)}
    at = [pos[i] for i in ids]  # b's rows in a's order
    g = [groups.get(i, i) for i in ids] if groups is not None else None
    return {"step": paired_gain(a_step, b_step[at], groups=g), "agent": paired_gain(a_agent, b_agent[at], groups=g)}


def summarize(verdicts: Sequence[Verdict]) -> dict[str, float | None]:
    """Percentages: step exact / ±1 / ±3, top-3 / top-5 hit rates, agent; ECE (10 bins) of step and agent confidences.

    ``step_top3`` / ``step_top5``: how often the decisive step is among the method's first 3 / 5 ranked steps
    (what a user reading ``attrib analyze``'s candidate table gets); None unless every verdict has a ranking.

    ``set_coverage`` / ``set_size``: how often the method's conformal step set holds the decisive step, and its
    mean length (None unless every verdict has a set).

    ``ece_null`` is the ECE a perfectly calibrated predictor would show with the same confidences on
    this many traces (its mean; ``ece_null_q95`` its 95th percentile): the noise floor to read ECE against;
    ``agent_ece_null`` the same for the agent confidences.
    """
    if not verdicts:
        return {}
    st = np.array([v.step for v in verdicts])
    ts = np.array([v.true_step for v in verdicts])
    d = np.abs(st - ts)
    exact = np.array([step_hit(v) for v in verdicts])
    agent = np.array([agent_hit(v) for v in verdicts])
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
        "agent_ece_null": None,
        "set_coverage": None,
        "set_size": None,
    }
    if any(v.expected_step_acc is not None for v in verdicts):  # analytic baselines: ±k is undefined
        out["step_accuracy_pm1"] = out["step_accuracy_pm3"] = None
    if all(v.ranking for v in verdicts):
        for k in (3, 5):
            out[f"step_top{k}"] = 100 * float(np.mean([v.true_step in v.ranking[:k] for v in verdicts]))
    if all(v.step_set for v in verdicts):
        out["set_coverage"] = 100 * float(np.mean([v.true_step in v.step_set for v in verdicts]))
        out["set_size"] = float(np.mean([len(v.step_set) for v in verdicts]))
    if all(v.confidence is not None for v in verdicts):
        conf = np.array([v.confidence for v in verdicts])
        out["ece"] = ece(conf, (d == 0).astype(float))
        out["ece_null"], out["ece_null_q95"] = ece_if_calibrated(conf)
    if all(v.agent_confidence is not None for v in verdicts):
        aconf = np.array([v.agent_confidence for v in verdicts])
        out["agent_ece"] = ece(aconf, np.array([v.agent == v.true_agent for v in verdicts], dtype=float))
        out["agent_ece_null"] = ece_if_calibrated(aconf)[0]
    return out
