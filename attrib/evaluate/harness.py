"""The Who&When harness: every method, baseline and the floor, strictly out of sample.

* within a subset: k-fold grouped by ``question_ID`` (no question in both train and test);
* pooled (how the shipped default is trained): the test fold's subset minus the fold, plus all of the
  other subset except traces of the same questions;
* cross-subset: fit on one subset, test on the other.

Nothing is ever scored by a model, rule or threshold fitted on it. Unfitted methods (flow-graph and the
baselines) use rules fixed by hand before evaluation; they are applied to every trace directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from attrib.errors import NotFoundError, NoVerdictError, UsageError
from attrib.evaluate.baselines import BASELINES
from attrib.evaluate.data import SUBSETS, load_subset, question_id
from attrib.evaluate.metrics import (
    Verdict,
    bootstrap_ci,
    paired_gains,
    per_trace_hits,
    per_trace_table,
    ranking_of,
    repeats_tasks,
    summarize,
)
from attrib.trace import Attribution, Trace

#: Published top-1 numbers from issue 10 (agent %, step %), per subset where given.
PUBLISHED: dict[str, dict[str, tuple[float | None, float]]] = {
    "Who&When best LLM judge (paper; subsets not split)": {"algorithm": (53.5, 14.2), "hand": (53.5, 14.2)},
    "CDC-MAS": {"algorithm": (48.5, 36.2), "hand": (56.8, 18.2)},
    "A2P": {"algorithm": (None, 47.5), "hand": (None, 29.3)},
    "AgenTracer-8B": {"hand": (69.1, 20.7)},
    "CHIEF (2026)": {"algorithm": (76.8, 52.0), "hand": (77.6, 29.3)},
}

DEFAULT_METHOD = "learned"
Predictor = Callable[[Trace], Verdict]
Fitter = Callable[[Sequence[Trace]], Predictor]


def learned_fitter(train: Sequence[Trace], step_head: str | None = None) -> Predictor:
    """Fit the learned ranker on ``train`` (inner folds grouped by question; ``step_head``: the ranker's default
    unless given); return its verdict function."""
    from attrib.methods.ranker import DEFAULT_STEP_HEAD, LearnedRanker

    m = LearnedRanker(step_head=step_head or DEFAULT_STEP_HEAD).fit(train, [question_id(t) for t in train])

    return lambda t: ranker_verdict(t, m)


def ranker_verdict(t: Trace, model: Any) -> Verdict:
    """A fitted :class:`~attrib.methods.ranker.LearnedRanker`'s verdict on labelled ``t`` (it sees it unlabelled)."""
    p = model.predict(t.unlabelled())
    assert t.label is not None
    return Verdict(t.id, p.step, p.agent, t.label.mistake_step, t.label.mistake_agent,
                   confidence=p.step_confidence, agent_confidence=p.agent_confidence, ranking=ranking_of(p.step_probs),
                   step_set=tuple(p.step_set or ()))


def attribution_verdict(t: Trace, a: Attribution) -> Verdict:
    """A method's Attribution as a Verdict; its ranking starts with the verdict, then its other top-scored steps."""
    assert t.label is not None
    rest = tuple(s.step for s in a.top_steps(6) if s.step != a.step)
    return Verdict(t.id, a.step, a.agent, t.label.mistake_step, t.label.mistake_agent, confidence=a.confidence,
                   agent_confidence=a.agent_confidence, ranking=((a.step,) + rest)[:5],
                   step_set=tuple((a.evidence.get("step_set") or {}).get("steps", ())))


def floor_fitter(train: Sequence[Trace]) -> Predictor:
    """Fit the logistic floor on ``train``; return its verdict function."""
    from attrib.evaluate.floor import LogisticFloor

    return LogisticFloor().fit(train).predict


def causal_fitter(train: Sequence[Trace]) -> Predictor:
    """Fit the causal step model on ``train``; return its verdict function."""
    from attrib.methods.causal import CausalStepModel, attribute

    m = CausalStepModel().fit(train)

    def predict(t: Trace) -> Verdict:
        return attribution_verdict(t, attribute(t.unlabelled(), model=m))

    return predict


def _unfitted(method: str, misses: list[str] | None = None) -> Predictor:
    """A registered method's verdict function. With ``misses``, a log the method gives no verdict for (an LLM
    judge with no usable answer after its retries: :class:`NoVerdictError`) is scored as a miss at step -1 and its
    id appended, as bench/who_and_when/judge.py does; an endpoint error (:class:`LLMError`: unreachable,
    refused, context overflow) still stops the run, since every later log would fail the same way."""
    from attrib.llm import LLMError
    from attrib.methods import analyze

    def predict(t: Trace) -> Verdict:
        try:
            return attribution_verdict(t, analyze(t, method))
        except LLMError:  # the endpoint, not the answer (some LLM errors are NoVerdictErrors too)
            raise
        except NoVerdictError:
            if misses is None:
                raise
            misses.append(t.id)
            return miss_verdict(t)

    return predict


def miss_verdict(t: Trace) -> Verdict:
    """A labelled log a method gave no verdict for (a judge with no usable answer), scored as a miss at step -1."""
    assert t.label is not None
    return Verdict(t.id, -1, "", t.label.mistake_step, t.label.mistake_agent)


#: What the numbers in a result JSON are measured in (rows keep ECE as a fraction; the per-subset summaries,
#: whose keys the issue fixed, give it in percent).
ROW_UNITS = {"accuracy": "percent", "set_coverage": "percent",
             "rows[].ece, agent_ece, ece_null, ece_null_q95, agent_ece_null, ece_sd": "fraction (0-1)"}
UNITS = {**ROW_UNITS, "subsets.*.ece, agent_ece, ece_null, ece_null_q95, agent_ece_null, ece_sd": "percent"}

FITTED: dict[str, Fitter] = {"learned": learned_fitter, "floor": floor_fitter, "causal": causal_fitter}
UNFITTED = ("flow-graph",)


def grouped_folds(traces: Sequence[Trace], k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """k folds of trace indices, grouped by question id (a question never straddles train and test)."""
    groups = [question_id(t) for t in traces]
    uniq = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {uniq[j]: r % k for r, j in enumerate(order)}
    g = np.array([fold_of[q] for q in groups])
    return [np.flatnonzero(g == f) for f in range(k)]


def cross_validate(
    traces: Sequence[Trace], fitter: Fitter, k: int = 5, seed: int = 0, extra: Sequence[Trace] = ()
) -> list[Verdict]:
    """Out-of-fold verdicts; ``extra`` traces join every training fold unless they share a test question."""
    out: list[Verdict] = []
    for te in grouped_folds(traces, k, seed):
        test_q = {question_id(traces[i]) for i in te}
        train = [traces[i] for i in range(len(traces)) if i not in set(te.tolist())]
        train += [t for t in extra if question_id(t) not in test_q]
        predict = fitter(train)
        out += [predict(traces[i]) for i in te]
    return out


def mean_summary(runs: Sequence[Sequence[Verdict]], groups: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Metrics averaged over runs (fold seeds), with the across-run SD of step/agent accuracy and ECE, and 95 %
    bootstrap intervals over traces (``*_ci``: [low, high]) of step and agent accuracy. ``groups`` (trace id -> task,
    :func:`question_id`): where traces repeat a task the intervals resample tasks (``ci_over``: "tasks"), as re-runs
    of one task are not independent (:func:`~attrib.evaluate.metrics.bootstrap_ci`)."""
    sums = [summarize(v) for v in runs]
    out: dict[str, Any] = {}
    for key, v0 in sums[0].items():
        vals = [s[key] for s in sums]
        out[key] = None if v0 is None or any(v is None for v in vals) else float(np.mean(np.asarray(vals, float)))
    for key in ("step_accuracy", "agent_accuracy", "ece"):
        vals = [s[key] for s in sums]
        out[f"{key}_sd"] = None if any(v is None for v in vals) else float(np.std(np.asarray(vals, float)))
    analytic = any(v.expected_step_acc is not None for v in runs[0]) if runs else True  # random: no sampling
    if not analytic:  # 95 % bootstrap intervals over traces, of the per-trace hit rate averaged over seeds
        ids, step, agent = per_trace_hits(runs)
        g = [groups.get(i, i) for i in ids] if groups is not None else None
        out["step_accuracy_ci"] = [100 * x for x in bootstrap_ci(step, groups=g)]
        out["agent_accuracy_ci"] = [100 * x for x in bootstrap_ci(agent, groups=g)]
        if repeats_tasks(ids, groups):  # said only where it differs from the plain bootstrap over traces
            out["ci_over"] = "tasks"
    out["n"] = sums[0]["n"]
    out["n_seeds"] = len(runs)
    if len(runs) > 1:
        out["per_seed"] = [{k2: s[k2] for k2 in ("step_accuracy", "agent_accuracy", "ece")} for s in sums]
    return out


def _setting(traces: Sequence[Trace], with_gt: bool) -> list[Trace]:
    return list(traces) if with_gt else [t.without_ground_truth() for t in traces]


def evaluate(
    subsets: Sequence[str] = SUBSETS,
    with_gt: bool = True,
    methods: Sequence[str] | None = None,
    k: int = 5,
    seed: int = 0,
    cross_subset: bool = True,
    progress: Callable[[str], None] | None = None,
    n_seeds: int = 1,
) -> dict[str, Any]:
    """Run the benchmark; returns ``{"rows": [...], "subsets": {s: default-method metrics}, ...}``.

    k-fold rows are averaged over ``n_seeds`` fold assignments (seeds ``seed .. seed+n_seeds-1``), with the
    standard deviation across them in ``*_sd`` keys: with 58-126 logs per subset one log moves accuracy by
    0.8-1.7 points, and the fold assignment alone moves it by a few.

    BLAS is held to one thread: the fits are thousands of tiny L-BFGS steps, where OpenBLAS's thread
    pool only spins (5x the CPU time on a busy 2-core machine, measured).
    """
    if isinstance(subsets, str):
        subsets = (subsets,)
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise NotFoundError(f"unknown Who&When subset {unknown[0]!r} (known: {', '.join(SUBSETS)})")
    if methods is not None:
        if isinstance(methods, str):
            methods = (methods,)
        from attrib.methods import METHODS

        known = list(dict.fromkeys(["learned", "learned-subset", *FITTED, *UNFITTED, *METHODS]))
        for m in methods:
            if m not in known:
                raise UsageError(None, "method", f"unknown method {m!r} (known: {', '.join(known)})")
    import scipy.optimize  # noqa: F401  (load its BLAS before limiting threads: limits bind to loaded libraries)
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _evaluate(subsets, with_gt, methods, k, seed, cross_subset, progress, n_seeds)


def _evaluate(
    subsets: Sequence[str],
    with_gt: bool,
    methods: Sequence[str] | None,
    k: int,
    seed: int,
    cross_subset: bool,
    progress: Callable[[str], None] | None,
    n_seeds: int = 1,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    c0 = time.process_time()
    say = progress or (lambda _m: None)
    methods = list(methods) if methods else ["learned", "learned-subset", "floor", "flow-graph", "causal"]
    data = {s: _setting(load_subset(s), with_gt) for s in SUBSETS}
    # each trace's question: intervals and paired gains resample questions where a subset repeats one (it has not:
    # one log per question, so these are the plain bootstrap over logs)
    groups = {t.id: question_id(t) for s in SUBSETS for t in data[s]}
    rows: list[dict[str, Any]] = []
    kept: dict[tuple[str, str], list[list[Verdict]]] = {}  # (method, subset) -> runs, for paired comparisons

    seeds = list(range(seed, seed + max(1, n_seeds)))

    def add(name: str, subset: str, protocol: str, verdicts: list[Verdict] | list[list[Verdict]], fitted: bool) -> None:
        runs = cast(list[list[Verdict]], verdicts if verdicts and isinstance(verdicts[0], list) else [verdicts])
        if protocol.startswith(f"{k}-fold"):
            kept[(name, subset)] = runs
        rows.append({"method": name, "subset": subset, "protocol": protocol, "fitted": fitted,
                     "setting": "with_gt" if with_gt else "without_gt", **mean_summary(runs, groups)})

    def cv(traces: Sequence[Trace], fitter: Fitter, extra: Sequence[Trace] = ()) -> list[list[Verdict]]:
        return [cross_validate(traces, fitter, k, sd, extra) for sd in seeds]

    for s in subsets:
        traces = data[s]
        other = [o for o in SUBSETS if o != s][0]
        for name, fn in BASELINES.items():
            add(name, s, "rule", [fn(t) for t in traces], False)
        for name in methods:
            say(f"{s}: {name}")
            if name == "learned":
                add("learned", s, f"{k}-fold pooled", cv(traces, learned_fitter, data[other]), True)
            elif name == "learned-subset":
                add("learned-subset", s, f"{k}-fold", cv(traces, learned_fitter), True)
            elif name in FITTED:
                add(name, s, f"{k}-fold", cv(traces, FITTED[name]), True)
            elif name in UNFITTED:
                add(name, s, "rule", [_unfitted(name)(t) for t in traces], False)
            else:
                missed: list[str] | None = [] if name.startswith("judge") else None
                fn = _unfitted(name, missed)
                add(name, s, "as registered", [fn(t) for t in traces], False)
                if missed is not None:  # logs with no usable answer, scored as misses
                    rows[-1]["no_answer"] = len(missed)
        if cross_subset:
            for name in ("learned", "floor"):
                if name in methods or name == "floor":
                    say(f"{s}: {name} fitted on {other}")
                    predict = FITTED[name](data[other])
                    add(name, s, f"cross-subset (fit on {other})", [predict(t) for t in traces], True)
    default = {
        r["subset"]: {k2: r[k2] for k2 in ("step_accuracy", "agent_accuracy", "ece", "step_accuracy_pm1",
                                            "step_accuracy_pm3", "step_top3", "step_top5", "agent_ece", "n", "step_accuracy_sd",
                                            "agent_accuracy_sd", "ece_sd", "n_seeds", "ece_null", "ece_null_q95",
                                            "step_accuracy_ci", "agent_accuracy_ci", "set_coverage", "set_size",
                                            "agent_ece_null")}
        for r in rows if r["method"] == DEFAULT_METHOD and r["protocol"].endswith("pooled")
    }
    for s, v in default.items():
        v["per_trace"] = per_trace_table(kept[(DEFAULT_METHOD, s)])
        if ("floor", s) in kept:  # the default against the floor on the same logs and folds: is the gain real?
            g = paired_gains(kept[(DEFAULT_METHOD, s)], kept[("floor", s)], groups)
            v["step_gain_vs_floor"], v["agent_gain_vs_floor"] = g["step"], g["agent"]
        for key in ("ece", "agent_ece", "ece_sd", "ece_null", "ece_null_q95", "agent_ece_null"):
            if v.get(key) is not None:
                v[key] = 100 * v[key]
    return {
        "units": UNITS,
        "benchmark": "who_and_when",
        "default_method": DEFAULT_METHOD,
        "setting": "with_gt" if with_gt else "without_gt",
        "folds": k,
        "seed": seed,
        "seeds": seeds,
        "subsets": default,
        "rows": rows,
        "published": {m: {s: {"agent_accuracy": a, "step_accuracy": st} for s, (a, st) in v.items()}
                      for m, v in PUBLISHED.items()},
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }
