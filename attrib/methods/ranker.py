"""The learned ranker, the estimator behind the offline default (:mod:`.learned`): ``fit`` / ``predict``.

Two listwise heads over the features of :mod:`attrib.features` (lexical, structural, answer
provenance, and the information-flow graph's inversion mass):

* a **step head** -- a softmax over the steps of one trace; by default the first-passage model of
  :mod:`.first_passage` (the decisive step is the *earliest* to go wrong), else the plain conditional
  logit of :mod:`.clogit` (``step_head="logit"``, and rankers saved before the first-passage head);
* an **agent head** -- a conditional logit over the agents of the trace whose inputs are the step head's
  probabilities summed/maxed per agent plus agent-level priors (activity, first speaker, name tokens;
  :mod:`attrib.features.agents`).
  It is trained on *cross-fitted* step probabilities (inner folds) so it learns how far to trust the
  step head on unseen traces, not on the ones it memorised.

The step head is fitted with neighbour label smoothing (``smooth``: a share of the target mass on the
steps right before and after the annotated one), and the verdict is decoded jointly:
``step = argmax_i log p(i) + joint * log p_agent(agent(i))``, so a step whose agent the agent head
doubts must be clearly ahead to win. Both were chosen on grouped cross-validation over all of Who&When
(fold seeds 0-2) and confirmed on fold seeds 3-5 (see the README's attribution section).

Confidences are calibrated (Platt by default, isotonic optional) on the inner out-of-fold predictions,
i.e. inside the training data only; so is the conformal step set (:mod:`.conformal`: steps that hold the
decisive one in ≥ ``set_level`` of runs like those it was calibrated on, 90 % by default; a marginal promise, not a
probability for one run). Shapley blame over agents
(:mod:`.shapley`) uses the step head's probabilities as the pluggable failure model.

Its fitted state is JSON (``to_dict`` / ``from_dict``); files of it, and the verdict a user sees, are
:mod:`.learned`'s. Scoring needs only numpy (no scikit-learn import). It records how much data stands behind it:
``n_train_`` labelled runs of ``n_tasks_`` distinct tasks, ``n_calibration_`` of which calibrated the confidences and
the step set (``None`` in files saved before these were kept), and which runs and tasks those were (``fingerprints_``,
``tasks_``, ``question_ids_``: :func:`attrib.trace.fingerprint`, :func:`~attrib.trace.task_key` and the runs'
``metadata.question_id``, as a ranker file lists them), so a verdict on one of them, or on another run of one of its
tasks, says it is in sample.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import reprlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import networkx as nx

from attrib.errors import InputError, UsageError, check_fitted, is_real, is_whole_number, whole_number
from attrib.features.agents import AGENT_FEATURES, AGENT_QUANTITIES, agent_matrix
from attrib.methods.calibration import KINDS as CALIBRATIONS
from attrib.methods.calibration import Calibrator
from attrib.methods.clogit import ConditionalLogit
from attrib.methods.conformal import LEVEL, ConformalStepSet
from attrib.methods.first_passage import BIAS, FirstPassageLogit
from attrib.methods.ranker_names import (  # noqa: F401  (re-exported; numpy-free there)
    FEW_RUNS,
    FEW_TASKS,
    RankerParamError,
    few_runs,
    step_head_name,
)
from attrib.trace import Trace, fingerprint, group_reruns, is_agent_step, question_id, task_key

#: The step head fitted unless told otherwise ("first_passage" or "logit"; see the module docstring).
DEFAULT_STEP_HEAD = "first_passage"
#: L2 penalties tried on inner folds when ``l2_step="auto"``.
L2_GRID = (0.1, 0.3, 1.0, 3.0)
# --------------------------------------------------------------------------- features


_FEATURES: OrderedDict[str, np.ndarray] = OrderedDict()  # content digest -> matrix, least recently used first
_FEATURES_MAX = 1024


def featurize(trace: Trace, graph: nx.DiGraph | None = None) -> np.ndarray:
    """Step feature matrix, memoised by a digest of the content (evaluation reuses it across folds and methods;
    only the digest and the small matrix are kept, never the trace). ``graph``: the trace's flow graph, when the
    caller has it (labels do not change it)."""
    from attrib.features.steps import step_features

    trace = trace.unlabelled()
    key = hashlib.sha1(trace.to_json()).hexdigest()
    X = _FEATURES.get(key)
    if X is None:
        X = step_features(trace, graph=graph)
        X.setflags(write=False)  # shared between calls: nobody may edit it in place
        _FEATURES[key] = X
        if len(_FEATURES) > _FEATURES_MAX:
            _FEATURES.popitem(last=False)
    else:
        _FEATURES.move_to_end(key)
    return X


# --------------------------------------------------------------------------- model


@dataclass
class Prediction:
    """What the ranker says about one trace."""

    step_probs: np.ndarray
    agents: list[str]
    agent_probs: np.ndarray
    step: int
    agent: str
    step_confidence: float
    agent_confidence: float
    contributions: dict[str, float] = field(default_factory=dict)
    agent_contributions: dict[str, float] = field(default_factory=dict)  # the agent head's signals for ``agent``
    hazards: np.ndarray | None = None  # per-step hazards of the first-passage head (None for the plain softmax)
    step_set: list[int] | None = None  # conformal set: holds the decisive step in >= set_level of runs like the
    # calibration runs (not a probability for this run)


def _folds(groups: Sequence[str], k: int, seed: int) -> list[np.ndarray]:
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    fold_of = {uniq[j]: r % k for r, j in enumerate(order)}
    g = np.array([fold_of[x] for x in groups])
    return [np.flatnonzero(g == f) for f in range(k)]


def _length_covariate(trace: Trace) -> float:
    """Calibration covariate: log of the number of steps (long runs make a top-1 verdict less likely right)."""
    return math.log(max(len(trace.steps), 1))


def _label_agent_index(trace: Trace, agents: list[str]) -> int | None:
    lab = trace.label.mistake_agent if trace.label else None
    if lab in agents:
        return agents.index(lab)
    low = [a.lower() for a in agents]
    return low.index(lab.lower()) if lab and lab.lower() in low else None


#: Inner folds (grouped by task) on which the ranker picks its penalty and fits its calibration.
INNER_FOLDS = 4


class RankerTypeError(UsageError, TypeError):
    """An argument of the wrong type (e.g. a path where a fitted ranker belongs): a :class:`UsageError` naming it,
    and a ``TypeError``."""


class OtherFeaturesError(ValueError):
    """A ranker fitted on other features than this attrib computes (:meth:`LearnedRanker.from_dict`)."""


#: Why ``random_state`` must be an int, where scikit-learn also takes None (a fresh seed) or a RandomState.
_SEED_WHY = ("the inner folds, and so the confidences and step sets, derive from one int seed, which the ranker file "
             "records so that a fit can be repeated; scikit-learn's None (a fresh seed each fit) or a RandomState "
             "would make two fits of the same runs differ with nothing to repeat them by, so pass an int (default 0)")


#: The numeric parameters of :class:`LearnedRanker`: whether a (finite, real) value is in range, and the range in words.
_NUMBER_RANGES: dict[str, tuple[Any, str]] = {
    "l2_agent": (lambda v: v >= 0, "a number >= 0"),
    "smooth": (lambda v: 0 <= v < 1, "a share in [0, 1) (e.g. 0.2)"),
    "joint": (lambda v: v >= 0, "a number >= 0 (0: no joint decoding)"),
    "hazard_bias": (lambda v: True, "a finite number (e.g. -1.5)"),
    "set_level": (lambda v: 0 < v < 1, "a coverage between 0 and 1 (e.g. 0.9)"),
}


def _check_params(m: LearnedRanker) -> None:
    """Every constructor parameter of ``m``, checked in one place (``fit`` calls it up front: ``set_params`` and
    ``from_dict`` do not check, as scikit-learn's do not): a :class:`RankerParamError` naming the parameter, the
    value and the range."""
    step_head_name(m.step_head)  # a known head, or a RankerParamError naming step_head
    whole_number("inner_folds", m.inner_folds, 2, error=RankerParamError)
    if not is_whole_number(m.random_state, 0):
        raise RankerParamError(None, "random_state", f"must be a whole number >= 0, got {m.random_state!r}: "
                               f"{_SEED_WHY}")
    l2 = m.l2_step
    if l2 != "auto" and not (is_real(l2) and float(l2) >= 0):
        raise RankerParamError(None, "l2_step", f"must be 'auto' or a number >= 0, got {l2!r}")
    for name, (ok, words) in _NUMBER_RANGES.items():
        v = getattr(m, name)
        if not (is_real(v) and ok(v)):
            raise RankerParamError(None, name, f"must be {words}, got {v!r}")
    if m.calibration not in CALIBRATIONS:
        raise RankerParamError(None, "calibration", f"must be one of {', '.join(map(repr, CALIBRATIONS))}, "
                               f"got {m.calibration!r}")
    if not isinstance(m.length_calibration, bool | np.bool_):
        raise RankerParamError(None, "length_calibration", f"must be True or False, got {m.length_calibration!r}")


#: Where a wrong ``traces`` argument to ``fit`` is sent.
_READ_FIRST = "to fit on files, read them first: attrib.read_paths([...]) or attrib.load_trace(path)"


def _as_traces(traces: object) -> list[Trace]:
    """``fit``'s ``traces`` as a list of :class:`Trace`, else a :class:`RankerTypeError` (a path or a file's
    dict where a trace belongs)."""
    if isinstance(traces, Trace | str | bytes | os.PathLike) or not isinstance(traces, Iterable):
        raise RankerTypeError(None, "traces", f"expects a sequence of Trace objects, got {type(traces).__name__} "
                              f"{reprlib.repr(traces)}; {_READ_FIRST}")
    out = list(traces)
    for i, t in enumerate(out):
        if not isinstance(t, Trace):
            raise RankerTypeError(None, f"traces[{i}]", f"expects Trace objects, got {type(t).__name__} "
                                  f"{reprlib.repr(t)}; {_READ_FIRST}")
    return out


def seen_in(fingerprints: frozenset[str] | None, tasks: frozenset[str] | None, trace: Trace,
            question_ids: frozenset[str] | None = None) -> tuple[bool | None, bool | None]:
    """Whether runs of these ``fingerprints`` (:func:`attrib.trace.fingerprint`), task keys
    (:func:`attrib.trace.task_key`) and ``metadata.question_id`` values include ``trace`` itself, and (when not)
    another run of its task: one with its task text, or with its question id (a re-run whose task text carries a
    request id or a date is still a run of that task). None where the lists are unknown (a ranker or file from
    before they were kept) or the run has neither a task text nor a question id to compare."""
    in_sample = None if fingerprints is None else fingerprint(trace) in fingerprints
    if in_sample:
        return in_sample, None
    key, qid = task_key(trace), trace.metadata.get("question_id")
    matches = []  # one per list that can answer for this run
    if tasks is not None and key is not None:
        matches.append(key in tasks)
    if question_ids is not None and tasks is not None and qid:  # files list ids only beside task keys: a file
        matches.append(str(qid) in question_ids)  # without task keys is of the older kind, which knows neither
    return in_sample, (any(matches) if matches else None)


def explicit_question_ids(traces: Iterable[Trace]) -> frozenset[str]:
    """The ``metadata.question_id`` values the runs carry (not the trace-id fallback of
    :func:`attrib.trace.question_id`): what a ranker remembers of its training tasks beside their texts."""
    return frozenset(str(q) for t in traces if (q := t.metadata.get("question_id")))


def _best_agent(pa: np.ndarray, agents: list[str], trace: Trace) -> int:
    """The agent head's verdict: its likeliest agent among those a verdict may name, the speakers with an agent's or
    a tool's step (:func:`attrib.trace.is_agent_step`), not the person who asked nor a system prompt. The head was
    fitted over every speaker (its probabilities and their calibration stay so), and on a run that opens with a
    system prompt it named "system"."""
    speakers = {s.agent for s in trace.steps if is_agent_step(s)}  # one pass over the steps, not one per agent
    order = np.argsort(-pa, kind="stable")
    return int(next((k for k in order if agents[k] in speakers), order[0]))


class LearnedRanker:
    """Step + agent conditional-logit heads with calibrated confidences (scikit-learn conventions).

    ``random_state``: an int seed (default 0), recorded in the ranker's file, so a fit can be repeated; unlike
    scikit-learn's estimators it takes no None or RandomState (:data:`_SEED_WHY`). ``step_head``:
    "first_passage" (the default; "first-passage" as the CLI spells it works too) or "logit".
    """

    def __init__(
        self, l2_step: float | str = "auto", l2_agent: float = 1.0, calibration: str = "platt",
        inner_folds: int = INNER_FOLDS,
        random_state: int = 0, smooth: float = 0.2, joint: float = 0.5, length_calibration: bool = True,
        step_head: str = DEFAULT_STEP_HEAD, hazard_bias: float = BIAS, set_level: float = LEVEL,
    ) -> None:
        step_head_name(step_head)
        self.step_head = step_head
        self.hazard_bias = hazard_bias
        self.set_level = set_level
        self.l2_step = l2_step
        self.l2_agent = l2_agent
        self.smooth = smooth
        self.joint = joint
        self.length_calibration = length_calibration
        self.calibration = calibration
        self.inner_folds = inner_folds
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (scikit-learn's ``get_params``, so ``sklearn.base.clone`` works)."""
        return {k: getattr(self, k) for k in inspect.signature(type(self).__init__).parameters if k != "self"}

    def set_params(self, **params: Any) -> LearnedRanker:
        """Set constructor parameters by name (scikit-learn's ``set_params``); unknown names are an error."""
        known = self.get_params()
        for k, v in params.items():
            if k not in known:
                raise RankerParamError(None, k, f"LearnedRanker has no parameter {k!r} (it has: {', '.join(known)})")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = LearnedRanker().get_params()
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k])
        return f"LearnedRanker({changed})"

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, traces: Sequence[Trace], groups: Sequence[str] | None = None,
            sample_weight: Sequence[float] | None = None) -> LearnedRanker:
        """Fit on labelled traces (:class:`~attrib.trace.Trace` objects; unlabelled ones are skipped).

        ``groups``: one key per trace that keeps re-runs of one task on one side of every inner fold (the penalty,
        the agent head's inputs and the calibration are all chosen out of fold, so a task on both sides would make
        the confidences overconfident). Default: the rule of ``attrib fit`` (:func:`attrib.methods.learned.
        fit_artifact`) and evaluation, :func:`attrib.trace.question_id` (``metadata.question_id``, else the run's
        id) after :func:`attrib.trace.group_reruns` (runs without a question id that share their task text, and
        exact copies of a run, form one group). ``n_tasks_`` counts these groups.

        ``sample_weight`` weights each trace in the step head's likelihood (e.g. to balance two systems).
        Every constructor parameter is checked first (:class:`RankerParamError` naming it).
        """
        _check_params(self)  # set_params does not check; fit does, as sklearn's
        traces = _as_traces(traces)
        for name, seq in (("groups", groups), ("sample_weight", sample_weight)):
            if seq is not None and len(seq) != len(traces):
                raise RankerParamError(None, None, f"{name} has {len(seq)} entries for {len(traces)} traces "
                                       "(one per trace)")
        for t in traces:
            t.check(check_types=False)  # labels and numbering; types would cost a decode per trace per fit
        keep = [i for i, t in enumerate(traces) if t.label is not None]  # unlabelled traces teach nothing
        sw = np.ones(len(keep)) if sample_weight is None else np.asarray([sample_weight[i] for i in keep], float)
        if groups is None:  # as fit_artifact groups them, so the library and `attrib fit` fit the same folds
            groups = [question_id(t) for t in group_reruns([traces[i] for i in keep])[0]]
        else:
            groups = [str(groups[i]) for i in keep]
        traces = [traces[i] for i in keep]
        if len(traces) < 2 * self.inner_folds:
            raise InputError(None, "label", f"need at least {2 * self.inner_folds} labelled traces to fit, "
                             f"got {len(traces)}")
        if len(set(groups)) < self.inner_folds:
            raise InputError(None, "metadata.question_id", f"need runs of at least inner_folds={self.inner_folds} "
                             f"distinct tasks (groups) to fit, got {len(set(groups))}")
        Xs = [featurize(t) for t in traces]
        ys = [t.label.mistake_step for t in traces if t.label is not None]  # all of them (kept above)
        folds = _folds(groups, self.inner_folds, self.random_state)
        grid = L2_GRID if self.l2_step == "auto" else (float(self.l2_step),)
        best: tuple[float, float, list[np.ndarray]] | None = None
        for l2 in grid:  # the penalty is chosen on inner folds only (never on the data being scored)
            oof_l2 = [np.empty(0)] * len(traces)
            for te in folds:
                tr = np.setdiff1d(np.arange(len(traces)), te)
                m = self._step_model(l2).fit([Xs[i] for i in tr], [ys[i] for i in tr], sw[tr])
                for i in te:
                    oof_l2[i] = m.predict_proba(Xs[i])
            ll = float(np.mean([np.log(p[y] + 1e-12) for p, y in zip(oof_l2, ys, strict=True)]))
            if best is None or ll > best[0]:
                best = (ll, l2, oof_l2)
        assert best is not None
        _, self.l2_step_, oof = best
        self.step_model_ = self._step_model(self.l2_step_).fit(Xs, ys, sw)
        # agent head on cross-fitted step probabilities
        tables = [agent_matrix(t, oof[i], Xs[i]) for i, t in enumerate(traces)]
        ya: dict[int, int] = {}  # trace -> its labelled agent's row (a trace whose agent is not in its table: none)
        for i, t in enumerate(traces):
            if (y := _label_agent_index(t, tables[i][0])) is not None:
                ya[i] = y
        keep = list(ya)
        oof_a: dict[int, np.ndarray] = {}
        for te in _folds([groups[i] for i in keep], self.inner_folds, self.random_state + 1):
            tr = np.setdiff1d(np.arange(len(keep)), te)
            m = ConditionalLogit(self.l2_agent, self.random_state).fit(
                [tables[keep[j]][1] for j in tr], [ya[keep[j]] for j in tr]
            )
            for j in te:
                oof_a[keep[j]] = m.predict_proba(tables[keep[j]][1])
        self.agent_model_ = ConditionalLogit(self.l2_agent, self.random_state).fit(
            [tables[i][1] for i in keep], [ya[i] for i in keep]
        )
        # the step verdict is decoded jointly with the agent head: calibrate that decision, out of fold
        q = [self._joint(oof[i], tables[i][0], oof_a[i], traces[i]) for i in keep]
        sp = np.array([x.max() for x in q])
        sc = np.array([int(np.argmax(x)) == ys[i] for x, i in zip(q, keep, strict=True)])
        cov = np.array([_length_covariate(traces[i]) for i in keep]) if self.length_calibration else None
        self.step_calibrator_ = Calibrator(self.calibration).fit(sp, sc, cov)
        self.step_set_: ConformalStepSet | None = ConformalStepSet(self.set_level).fit(q, [ys[i] for i in keep])
        ap = np.array([oof_a[i].max() for i in keep])
        ac = np.array([int(np.argmax(oof_a[i])) == ya[i] for i in keep])
        self.agent_calibrator_ = Calibrator(self.calibration).fit(ap, ac, cov)
        # how much data stands behind the confidences and the step set: a dozen runs make both rough (None: unknown,
        # a file saved before these were kept)
        self.n_train_: int | None = len(traces)  # labelled runs the heads were fitted on
        self.n_tasks_: int | None = len(set(groups))  # distinct tasks (groups) among them
        self.n_calibration_: int | None = len(keep)  # runs the calibrators and the conformal set were fitted on
        # the runs it was fitted on and their tasks, as a ranker file lists them: a verdict on one of them is in sample
        # (None: a ranker saved without them)
        self.fingerprints_: frozenset[str] | None = frozenset(fingerprint(t) for t in traces)
        self.tasks_: frozenset[str] | None = frozenset(k for t in traces if (k := task_key(t)))
        self.question_ids_: frozenset[str] | None = explicit_question_ids(traces)
        return self

    def seen(self, trace: Trace) -> tuple[bool | None, bool | None]:
        """Whether the ranker was fitted on this very run, and (when not) on another run of its task, by task text
        or question id (None: unknown, as for a ranker saved without its runs' fingerprints; see :func:`seen_in`)."""
        return seen_in(getattr(self, "fingerprints_", None), getattr(self, "tasks_", None), trace,
                       getattr(self, "question_ids_", None))

    def _step_model(self, l2: float) -> ConditionalLogit:
        if step_head_name(self.step_head) == "first_passage":
            return FirstPassageLogit(l2, self.random_state, smooth=self.smooth, bias=self.hazard_bias)
        return ConditionalLogit(l2, self.random_state, smooth=self.smooth)

    # -- scoring ----------------------------------------------------------------------------
    def _joint(self, p: np.ndarray, agents: list[str], pa: np.ndarray, trace: Trace) -> np.ndarray:
        """Step distribution ∝ p(step) * p_agent(agent of the step) ** joint (the decoded verdict is its arg-max)."""
        if not self.joint:
            return p
        k = {a: j for j, a in enumerate(agents)}
        z = np.log(p + 1e-12) + self.joint * np.log(pa[[k[s.agent] for s in trace.steps]] + 1e-12)
        e = np.exp(z - z.max())
        return e / e.sum()

    def predict(self, trace: Trace, X: np.ndarray | None = None, set_level: float | None = None) -> Prediction:
        """Step and agent distributions, the verdict, its calibrated confidences and the conformal step set at
        ``set_level`` (default: the level the ranker was fitted with)."""
        from attrib.features.steps import FEATURES, signal_name

        check_fitted(self, "step_model_")
        X = featurize(trace) if X is None else X
        p_head = self.step_model_.predict_proba(X)
        agents, A = agent_matrix(trace, p_head, X)
        pa = self.agent_model_.predict_proba(A)
        k = _best_agent(pa, agents, trace)
        p = self._joint(p_head, agents, pa, trace)
        step = int(np.argmax(p))
        z = (X[step] - self.step_model_.mean_) / self.step_model_.scale_
        zbar = (X - self.step_model_.mean_) / self.step_model_.scale_
        contrib = (z - zbar.mean(axis=0)) * self.step_model_.coef_
        top = np.argsort(-contrib)[:6]
        za = (A - self.agent_model_.mean_) / self.agent_model_.scale_
        a_contrib = (za[k] - za.mean(axis=0)) * self.agent_model_.coef_  # what lifts this agent above the average one
        a_top = np.argsort(-a_contrib)[:4] if len(agents) > 1 else np.array([], dtype=int)
        cov = _length_covariate(trace)
        return Prediction(
            step_probs=p,
            agents=agents,
            agent_probs=pa,
            step=step,
            agent=agents[k],
            step_confidence=float(self.step_calibrator_.predict(p.max(), cov)),
            agent_confidence=float(self.agent_calibrator_.predict(pa[k], cov)),
            contributions={signal_name(FEATURES[j], X[:, j], step): float(contrib[j]) for j in top if contrib[j] > 0},
            agent_contributions={signal_name(AGENT_FEATURES[j], A[:, j], k, AGENT_QUANTITIES): float(a_contrib[j])
                                 for j in a_top if a_contrib[j] > 0},
            hazards=self.step_model_.hazards(X) if isinstance(self.step_model_, FirstPassageLogit) else None,
            step_set=self.step_set_.predict(p, set_level) if self.step_set_ is not None else None,
        )

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-able data (:meth:`from_dict` reads it back)."""
        from attrib.features.steps import FEATURES

        check_fitted(self, "step_model_")
        prints, tasks = getattr(self, "fingerprints_", None), getattr(self, "tasks_", None)
        qids = getattr(self, "question_ids_", None)
        return {
            "params": {"l2_step": self.l2_step, "l2_agent": self.l2_agent, "calibration": self.calibration,
                       "inner_folds": self.inner_folds, "random_state": self.random_state, "smooth": self.smooth,
                       "joint": self.joint, "length_calibration": self.length_calibration,
                       "step_head": step_head_name(self.step_head), "hazard_bias": self.hazard_bias,
                       "set_level": self.set_level},
            "features": list(FEATURES),
            "agent_features": list(AGENT_FEATURES),
            "step_model": self.step_model_.to_dict(),
            "agent_model": self.agent_model_.to_dict(),
            "step_calibrator": self.step_calibrator_.to_dict(),
            "agent_calibrator": self.agent_calibrator_.to_dict(),
            **({"step_set": self.step_set_.to_dict()} if self.step_set_ is not None else {}),
            "n_train": self.n_train_,
            "n_tasks": self.n_tasks_,
            "n_calibration": self.n_calibration_,
            "l2_step_chosen": self.l2_step_,
            # the runs it was fitted on (optional: rankers saved before they were kept have none)
            **({"fingerprints": sorted(prints)} if prints is not None else {}),
            **({"tasks": sorted(tasks)} if tasks is not None else {}),
            **({"question_ids": sorted(qids)} if qids is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LearnedRanker:
        from attrib.features.steps import FEATURES

        if tuple(d["features"]) != FEATURES or tuple(d["agent_features"]) != AGENT_FEATURES:
            raise OtherFeaturesError("it was fitted on other features than this attrib computes; refit it with "
                                 "`attrib fit` (the shipped one: bench/who_and_when/fit_default.py)")
        # artifacts from before smoothing / joint decoding / the first-passage head
        m = cls(**{"smooth": 0.0, "joint": 0.0, "length_calibration": False, "step_head": "logit", **d["params"]})
        head = FirstPassageLogit if d["step_model"].get("kind") == "first_passage" else ConditionalLogit
        m.step_model_ = head.from_dict(d["step_model"])
        m.agent_model_ = ConditionalLogit.from_dict(d["agent_model"])
        m.step_calibrator_ = Calibrator.from_dict(d["step_calibrator"])
        m.agent_calibrator_ = Calibrator.from_dict(d["agent_calibrator"])
        m.step_set_ = ConformalStepSet.from_dict(d["step_set"]) if "step_set" in d else None  # older files: none
        m.n_train_, m.n_tasks_, m.n_calibration_ = (None if d.get(k) is None else int(d[k])  # older files: unknown
                                                    for k in ("n_train", "n_tasks", "n_calibration"))
        m.l2_step_ = float(d.get("l2_step_chosen", d["step_model"]["l2"]))
        m.fingerprints_, m.tasks_, m.question_ids_ = (
            frozenset(map(str, d[k])) if isinstance(d.get(k), list) else None  # older files: none
            for k in ("fingerprints", "tasks", "question_ids"))
        return m
