"""Score attribution on your own annotated runs: how right is the blame on *your* system?

``evaluate_labelled(traces)`` takes any labelled traces (any format attrib reads; a trace is labelled
when it carries ``label.mistake_step`` / ``label.mistake_agent``) and reports, with the metrics of the
Who&When harness:

* the shipped ranker as it is (fitted on Who&When only, so every one of your traces is out of sample), or a
  ranker file from ``attrib fit`` (``model_path`` / ``$ATTRIB_RANKER``: the row "learned (your ranker)", flagged
  "IN SAMPLE" for the runs it was fitted on);
* the ranker refitted on your traces, k-fold grouped by ``metadata.question_id`` (else by the task text when
  another run has the same task, as re-runs in OTLP files, which carry no question id, do; else the trace id),
  alone and pooled with Who&When when that data is present, which is what ``attrib fit`` would ship;
* the logistic floor and the rule baselines beside them;
* ``advice``: which ranker to use, from each refit's step accuracy paired against the ranker as it is on the same
  runs (bootstrap interval): a refit is advised only when the interval is above zero.

Where runs repeat a task, the 95 % intervals and the advice's paired test resample tasks, not runs (a cluster
bootstrap over the ``question_id`` groups the folds use): re-runs of one task often fail alike, so they are not
independent draws, and resampling runs made the intervals too narrow.

A refit needs enough labels: at least ``2 * inner_folds`` (8) traces in every training fold.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from attrib.errors import AttribError, InputError, UsageError
from attrib.evaluate.baselines import BASELINES
from attrib.evaluate.harness import (
    ROW_UNITS,
    cross_validate,
    floor_fitter,
    learned_fitter,
    mean_summary,
    ranker_verdict,
)
from attrib.evaluate.metrics import Verdict, paired_gains
from attrib.methods.learned import default_model, ranker_training, setting_of
from attrib.methods.ranker import DEFAULT_STEP_HEAD, INNER_FOLDS
from attrib.methods.ranker_names import few_runs_words, step_head_flag, step_head_name
from attrib.readers import validate
from attrib.trace import Trace, fingerprint, group_reruns, question_id, task_key

#: Baselines that make sense for any system (the WebSurfer ones are Magentic-One specific).
GENERIC_BASELINES = ("random", "always-step-1", "most-active-agent")
MIN_TRAIN = 8
#: The row of the ranker scored as it is: the shipped one, or a file from ``attrib fit`` (``--model`` /
#: ``$ATTRIB_RANKER``), whose protocol names it.
SHIPPED_ROW, MODEL_ROW = "learned (shipped)", "learned (your ranker)"


def read_labelled(paths: Sequence[str], format: str | None = None,
                  files: dict[str, str] | None = None,
                  errors: list[AttribError] | None = None) -> tuple[list[Trace], int]:
    """The labelled traces in ``paths`` (files, folders, globs) and how many unlabelled ones were skipped; two runs
    with one trace id are refused naming both files (scores and folds are keyed by id), as ``attrib ingest`` does.
    ``files`` (a dict, usually empty) gets each labelled trace's file by trace id, for :func:`label_mismatch_note`.
    Without ``errors`` the first file that cannot be read (or repeats an id) raises; with it (a list), every such
    file's error is appended and the others are still read (:func:`attrib.readers.read_sources`), so a caller can
    name them all: ``attrib fit`` and ``attrib eval traces`` then stop, as a ranker fitted or scored on a silently
    smaller set is worse than none."""
    from attrib.readers import read_sources

    out: list[Trace] = []
    skipped = 0
    for t, path in read_sources(paths, format, seen={}, errors=errors):
        if t.label is None:
            skipped += 1
        else:
            out.append(t)
            if files is not None:
                files[t.id] = str(path)
    return out, skipped


def label_mismatch_note(traces: Sequence[Trace], files: Mapping[str, str] | None = None) -> str | None:
    """One line when some labels do not name the agent attrib blames for the labelled step
    (:meth:`Trace.label_mismatch`: an agent that did not write it, usually an off-by-one as tool results count as
    steps; the person who asked; a tool on its own result): how many, and the first, by its file in ``files``
    (trace id -> file, from :func:`read_labelled`) else its id. None when every label names its step's author.

    A warning, not an error: Who&When itself holds 4 such labels among its 184 (a verifier's step labelled with
    the expert it checked, an Orchestrator instruction labelled with the agent it addressed)."""
    labelled = [t for t in traces if t.label is not None]
    found = [(t, why) for t in labelled if (why := t.label_mismatch()) is not None]
    if not found:
        return None
    first, why = found[0]
    return (f"{len(found)} of {len(labelled)} labels do not name the agent attrib blames for the labelled step; the first, "
            f"{_where(first, files, with_id=True)}: {why}")


def _where(t: Trace, files: Mapping[str, str] | None, with_id: bool = False) -> str:
    """A trace as a note names it: its file (``files``: trace id -> file) when known, followed by its id with
    ``with_id``, else its id."""
    if files and t.id in files:
        return f"{files[t.id]} (trace {t.id})" if with_id else files[t.id]
    return f"trace {t.id}"


def _label_words(t: Trace) -> str:
    assert t.label is not None
    return f"{t.label.mistake_agent} at step {t.label.mistake_step}"


def one_label_per_run(traces: Sequence[Trace], files: Mapping[str, str] | None = None
                      ) -> tuple[list[Trace], str | None]:
    """``traces`` with each run whose copies (the same steps, :func:`fingerprint`) carry different labels kept once,
    as its first copy, and a note naming those copies and their labels (None when there are none).

    Two annotators' labels of one run are not two runs: counted twice, each scores (and trains) against the other's
    label. Kept once rather than refused, so one disputed run does not stop the rest from being scored; the note says
    which label was used, so the dispute can be settled. Copies with one label are left to
    :func:`attrib.trace.group_reruns` (one task)."""
    by: dict[str, list[Trace]] = {}
    for t in traces:
        if t.label is not None:
            by.setdefault(fingerprint(t), []).append(t)
    disputed = [ts for ts in by.values() if len({(x.label.mistake_step, x.label.mistake_agent) for x in ts
                                                 if x.label is not None}) > 1]
    if not disputed:
        return list(traces), None
    drop = {id(x) for ts in disputed for x in ts[1:]}
    shown = "; ".join(", ".join(f"{_where(x, files)} ({_label_words(x)})" for x in ts) for ts in disputed[:3])
    more = f"; and {len(disputed) - 3} more" if len(disputed) > 3 else ""
    note = (f"{len(disputed)} run(s) have copies with different labels: {shown}{more}. Each run is counted once, with "
            "its first copy's label; settle the label and remove the other copies")
    return [t for t in traces if id(t) not in drop], note


#: What :func:`near_duplicate_tasks_note` ignores when it compares task texts: digits, brackets and whitespace.
_TASK_NOISE = re.compile(r"[\d\s()\[\]{}<>]+")


def near_duplicate_tasks_note(traces: Sequence[Trace], files: Mapping[str, str] | None = None) -> str | None:
    """A note when runs without ``metadata.question_id`` have task texts that differ only in digits, brackets or
    whitespace (a request id, a timestamp): they may be re-runs of one task, which the folds then split across train
    and test, so the refit rows read high. None when there are none. A warning, not a grouping: tasks that differ
    only in a number can be different tasks."""
    by: dict[str, dict[str, Trace]] = {}  # task text without its noise -> {task text: its first run}
    for t in traces:
        if t.metadata.get("question_id") or not (task := t.task.strip()):
            continue
        if bare := _TASK_NOISE.sub("", task.lower()):
            by.setdefault(bare, {}).setdefault(task, t)
    alike = [list(v.values()) for v in by.values() if len(v) > 1]
    if not alike:
        return None
    n = sum(len(ts) for ts in alike)
    a, b = alike[0][:2]
    return (f"{n} runs without metadata.question_id have task texts that differ from another's only in digits, "
            f"brackets or spaces (e.g. {_where(a, files)}: {a.task.strip()[:60]!r} and {_where(b, files)}: "
            f"{b.task.strip()[:60]!r}): if they are re-runs of one task, give them one metadata.question_id, else the "
            "folds split that task between training and test and the refit rows read high")


def check_labels(traces: Sequence[Trace], files: Mapping[str, str] | None = None) -> tuple[list[Trace], list[str]]:
    """The label checks `attrib fit` and `attrib eval traces` both run, in one order: copies of a run with different
    labels kept once (:func:`one_label_per_run`), then labels that do not name the agent attrib blames
    (:func:`label_mismatch_note`) and re-runs that may lack a question id (:func:`near_duplicate_tasks_note`).
    Returns the traces to use and the notes (warnings, in that order); ``files``: trace id -> file, as the notes
    name a run."""
    kept, disputed = one_label_per_run(traces, files)
    notes = [disputed, label_mismatch_note(kept, files), near_duplicate_tasks_note(kept, files)]
    return kept, [n for n in notes if n]


def pool_extra(traces: Sequence[Trace]) -> list[Trace]:
    """The Who&When logs to pool with ``traces`` for a refit: all of them but those among ``traces`` (by
    :func:`fingerprint`) and runs of their tasks (by :func:`task_key`), so no log is trained on twice and no run is
    scored by a model fitted on a run of its own task (the folds hold out whole tasks)."""
    runs = {fingerprint(t) for t in traces}
    tasks = {task_key(t) for t in traces} - {None}
    return [t for t in who_and_when_traces() if fingerprint(t) not in runs and task_key(t) not in tasks]


def who_and_when_traces() -> list[Trace]:
    """Both Who&When subsets, or [] when the data is not on this machine."""
    from attrib.errors import NotFoundError
    from attrib.evaluate.data import SUBSETS, load_subset

    try:
        return [t for s in SUBSETS for t in load_subset(s)]
    except NotFoundError:
        return []


def evaluate_labelled(
    traces: Sequence[Trace],
    *,
    k: int = 5,
    seed: int = 0,
    model_path: str | None = None,
    pool_who_and_when: bool = True,
    step_head: str = DEFAULT_STEP_HEAD,
    progress: Callable[[str], None] | None = None,
    files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Metrics of the shipped ranker (or ``model_path`` / ``$ATTRIB_RANKER``), refitted rankers (with ``step_head``,
    see :class:`~attrib.methods.ranker.LearnedRanker`), the floor and baselines on labelled ``traces``. ``files``
    (trace id -> file, from :func:`read_labelled`) names the file of a label whose agent did not write its step.

    Returns ``{"n", "n_unlabelled", "step_head", "rows": [{method, protocol, step_accuracy, ...}], "notes": [...],
    "per_trace": [...] (:func:`per_trace_rows`), "advice", "wall_s"}``; with ``model_path`` the shipped ranker's row
    stays beside that ranker's, so one run compares them; a refit row's protocol names a step head other than the default, and the advice's fit
    command asks for the head that was measured.
    """
    t0 = time.perf_counter()
    if isinstance(traces, str | bytes | os.PathLike):
        raise TypeError("evaluate_labelled takes traces; read files first (attrib.readers.read_paths([path]))")
    traces = list(traces)  # read twice below: a generator would be empty the second time
    if not isinstance(k, int) or k < 2:
        raise UsageError(None, "k", f"k-fold needs k >= 2, got {k!r}")
    step_head = step_head_name(step_head)  # "first-passage" as the CLI spells it, too
    model_path = model_path or os.environ.get("ATTRIB_RANKER") or None
    labelled, notes = _checked_labels(traces, files)
    scored = _Scored(labelled, notes, progress or (lambda _m: None))
    scored.score(traces, model_path, k, seed, pool_who_and_when, step_head)
    return {"units": ROW_UNITS, "n": len(labelled), "n_tasks": scored.n_groups,
            "n_unlabelled": len(traces) - sum(t.label is not None for t in traces),
            "folds": k, "seed": seed, "step_head": step_head, "rows": scored.rows, "notes": notes,
            "per_trace": per_trace_rows(labelled, scored.kept, files, scored.seen_as, scored.row),
            "advice": advice(scored.kept, scored.row, scored.unseen_ids, scored.groups, step_head, scored.few),
            "wall_s": time.perf_counter() - t0}


def _checked_labels(traces: Sequence[Trace], files: Mapping[str, str] | None) -> tuple[list[Trace], list[str]]:
    """The notes stage of :func:`evaluate_labelled`: the labelled ``traces`` as the rows score them (checked as the
    readers check them, a repeated id refused, :func:`check_labels` run, re-runs and copies grouped by
    :func:`attrib.trace.group_reruns`) and the notes so far."""
    labelled = [validate(t) for t in traces if t.label is not None]  # the readers' checks, label step included
    if not labelled:
        raise InputError(None, "label", f"none of the {len(traces)} traces carries a label "
                         "(label.mistake_step and label.mistake_agent); nothing to score")
    seen: set[str] = set()
    for t in labelled:  # per-trace rows and intervals are keyed by id: a repeat would count one run twice
        if t.id in seen:
            raise InputError(None, "id", f"trace id {t.id!r} appears twice among these traces; give each run "
                             "its own id")
        seen.add(t.id)
    labelled, notes = check_labels(labelled, files)
    labelled, n_same, n_copies = group_reruns(labelled)
    if n_same:
        notes.append(f"{n_same} run(s) have no metadata.question_id but the task text of another run: they are "
                     "grouped with it as re-runs of one task, so no task is in both train and test")
    if n_copies:
        notes.append(f"{n_copies} run(s) repeat another run's steps exactly: they share its question id here, so "
                     "no copy is ever scored by a model fitted on another")
    return labelled, notes


class _Scored:
    """The rows stage of :func:`evaluate_labelled`: each method's verdicts on ``labelled`` (``kept``) and its row
    (``rows``), with the notes the scoring adds appended to ``notes``, and what the result stage reads of it."""

    def __init__(self, labelled: list[Trace], notes: list[str], say: Callable[[str], None]) -> None:
        self.labelled, self.notes, self.say = labelled, notes, say
        self.rows: list[dict[str, Any]] = []
        self.kept: dict[str, list[Verdict]] = {}
        self.groups = {t.id: question_id(t) for t in labelled}  # the tasks the folds hold out, and the intervals resample
        self.n_groups = len(set(self.groups.values()))
        self.row = SHIPPED_ROW  # the row of the ranker as it is
        self.seen_as: dict[str, str] = {}  # trace id -> "run" / "task" it was fitted on
        self.few: str | None = None  # these runs in words when they are few for a ranker (few_runs_words)

    @property
    def unseen_ids(self) -> set[str]:
        """The runs (and tasks) the ranker as it is was not fitted on."""
        return {t.id for t in self.labelled if t.id not in self.seen_as}

    def add(self, name: str, protocol: str, verdicts: list[Verdict]) -> None:
        self.rows.append({"method": name, "protocol": protocol, **mean_summary([verdicts], self.groups)})
        self.kept[name] = verdicts

    def score(self, traces: Sequence[Trace], model_path: str | None, k: int, seed: int, pool_who_and_when: bool,
              step_head: str) -> None:
        """Every row, in the order the table shows them: the baselines, the ranker(s) as they are, the refits."""
        labelled = self.labelled
        for name in GENERIC_BASELINES:
            self.add(name, "rule", [BASELINES[name](t) for t in labelled])
        self._ranker_rows(traces, model_path)
        n_groups, notes = self.n_groups, self.notes
        self.few = few_runs_words(len(labelled), n_groups)
        if n_groups < len(labelled):
            notes.append(f"{len(labelled)} runs of {n_groups} tasks: the 95% intervals and the advice resample tasks, "
                         "not runs, since re-runs of one task are not independent")
        if few := self.few:  # as `attrib fit --no-pool` warns of the ranker it writes
            notes.append(f"{few}: a ranker fitted on them alone (`attrib fit --no-pool`) has rough confidences and "
                         "90% step sets, as `attrib fit` warns, and the intervals here are wide; a pooled fit (the "
                         "default) adds Who&When's runs")
        if len(labelled) * (k - 1) // k < MIN_TRAIN:
            notes.append(f"{len(labelled)} labelled traces: too few to refit with {k} folds (each training fold needs "
                         f"{MIN_TRAIN}); only the shipped ranker and the baselines are scored")
        elif n_groups < k or n_groups * (k - 1) // k < INNER_FOLDS:
            notes.append(f"{n_groups} distinct tasks (metadata.question_id): too few to refit grouped by task with "
                         f"{k} folds (each training fold needs runs of {INNER_FOLDS} tasks, so no task is in both "
                         "train and test); only the shipped ranker and the baselines are scored")
        else:
            self._refit_rows(k, seed, pool_who_and_when, step_head)

    def _ranker_rows(self, traces: Sequence[Trace], model_path: str | None) -> None:
        """The ranker as it is (the shipped one, or ``model_path`` beside the shipped one), in sample where it was
        fitted on a run or its task, and again on the runs it was not."""
        labelled, notes, say = self.labelled, self.notes, self.say
        if model_path is not None:  # the shipped ranker beside yours, so one run compares them
            say("shipped ranker")
            shipped = ranker_training(None)
            n_shipped = sum(bool(run or task) for run, task in
                            (shipped.seen(t) if shipped is not None else (None, None) for t in labelled))
            self.add(SHIPPED_ROW, "as shipped" + (f", IN SAMPLE for {n_shipped}" if n_shipped else ""),
                     [ranker_verdict(t, default_model(setting_of(t))) for t in labelled])
        say("shipped ranker" if model_path is None else f"ranker {model_path}")
        protocol = "as shipped" if model_path is None else f"model {model_path}"
        if model_path is not None and model_path == os.environ.get("ATTRIB_RANKER"):
            protocol += " ($ATTRIB_RANKER)"
        # which of these runs (or their tasks) the ranker was fitted on: a file from `attrib fit` lists its runs'
        # fingerprints and task keys, as the shipped one does
        training = ranker_training(model_path)
        if training is None or training.fingerprints is None:
            notes.append(f"{model_path} does not list the runs it was fitted on (written by an older attrib fit): "
                         "if these runs were among them, its row is in sample")
        elif training.tasks is None:
            notes.append(f"{model_path} lists the runs it was fitted on but not their tasks (written by an older "
                         "attrib fit): other runs of those tasks count as unseen here")
        elif model_path is not None and training.question_ids is None and any(
                t.metadata.get("question_id") for t in traces):
            notes.append(f"{model_path} lists its runs' tasks by text but not their question ids (written by an "
                         "older attrib fit): a re-run of one of its tasks whose text differs counts as unseen here; "
                         "refit it to flag those too")
        seen_how = [training.seen(t) if training is not None else (None, None) for t in labelled]
        n_run = sum(bool(run) for run, _ in seen_how)
        n_task = sum(bool(task) for _, task in seen_how)  # never with ``run`` for one trace: seen() asks only when not
        self.seen_as = {t.id: ("run" if run else "task") for t, (run, task) in zip(labelled, seen_how, strict=True)
                        if run or task}
        n_in = len(self.seen_as)
        base = protocol  # without the in-sample count, for the row of the runs it was not fitted on
        if n_in:
            protocol += f", IN SAMPLE for {n_in}"
            if n_run:
                notes.append(f"{n_run} of these traces are runs this ranker was fitted on: its row is in sample for "
                             "them (the refit rows are not)")
            if n_task:  # the folds hold out whole tasks, so a re-run of a training task is not an unseen run either
                notes.append(f"{n_task} of these traces are other runs of tasks this ranker was fitted on: its row "
                             "counts them as in sample too, as the refit rows' task-grouped folds do")
        # the row of a ranker file is not the shipped ranker's: named so, and keyed apart in the JSON
        row = self.row = SHIPPED_ROW if model_path is None else MODEL_ROW
        verdicts = [ranker_verdict(t, default_model(setting_of(t), model_path)) for t in labelled]
        self.add(row, protocol, verdicts)
        if 0 < n_in < len(labelled):  # the same ranker on the runs it was not fitted on: an out-of-sample figure
            unseen_ids = self.unseen_ids
            unseen = "runs of tasks it was not fitted on" if training and training.tasks is not None else \
                "runs it was not fitted on"
            self.add(f"{row}, unseen runs", f"{base}, the {len(labelled) - n_in} {unseen}",
                     [v for v in verdicts if v.trace_id in unseen_ids])

    def _refit_rows(self, k: int, seed: int, pool_who_and_when: bool, step_head: str) -> None:
        """The ranker refitted in ``k`` task-grouped folds (alone, and pooled with Who&When when it is here) and the
        floor beside it."""
        labelled, notes = self.labelled, self.notes
        self.say("refit on these traces")
        fitter = partial(learned_fitter, step_head=step_head)
        head = "" if step_head == DEFAULT_STEP_HEAD else f", {step_head_flag(step_head)} head"  # as the fit flag says it
        self.add("learned, refit", f"{k}-fold{head}", cross_validate(labelled, fitter, k, seed))
        self.add("floor", f"{k}-fold", cross_validate(labelled, floor_fitter, k, seed))
        n_ww = len(who_and_when_traces()) if pool_who_and_when else 0
        extra = pool_extra(labelled) if n_ww else []
        if len(extra) < n_ww:
            notes.append(f"{n_ww - len(extra)} Who&When logs are these traces or other runs of their tasks: left out "
                         "of the pooled training, so no trace is scored by a model fitted on it or on its task")
        if extra:
            self.say("refit on these traces + Who&When")
            self.add("learned, refit + Who&When", f"{k}-fold pooled{head}",
                     cross_validate(labelled, fitter, k, seed, extra))
        elif pool_who_and_when and not n_ww:
            notes.append("Who&When is not on this machine (set ATTRIB_WHO_AND_WHEN): no pooled refit")


def per_trace_rows(traces: Sequence[Trace], kept: Mapping[str, Sequence[Verdict]],
                   files: Mapping[str, str] | None = None, seen_as: Mapping[str, str] | None = None,
                   ranker_row: str = SHIPPED_ROW) -> list[dict[str, Any]]:
    """One row per labelled run, for error analysis (which runs does the refit miss?): its id, file, task, annotated
    step and agent, and each method's verdict (step, agent, confidence, whether step and agent hit). The random
    baseline has no verdict of its own (an expected rate) and is left out. ``seen_as`` (trace id -> "run" / "task"):
    the runs ``ranker_row``'s ranker was fitted on, or on another run of their task (``in_sample`` of its entry)."""
    by = {name: {v.trace_id: v for v in vs} for name, vs in kept.items()
          if name != "random" and not name.endswith(", unseen runs")}  # the latter: the same verdicts again
    rows = []
    for t in traces:
        assert t.label is not None
        verdicts: dict[str, dict[str, Any]] = {}
        for name, vs in by.items():
            if (v := vs.get(t.id)) is None:
                continue
            verdicts[name] = {"step": v.step, "agent": v.agent, "confidence": v.confidence,
                              "step_hit": v.step == v.true_step, "agent_hit": v.agent == v.true_agent,
                              **({"in_sample": seen_as.get(t.id)} if seen_as and name == ranker_row else {})}
        rows.append({"trace_id": t.id, **({"file": files[t.id]} if files and t.id in files else {}),
                     "question_id": question_id(t), "true_step": t.label.mistake_step,
                     "true_agent": t.label.mistake_agent, "verdicts": verdicts})
    return rows


#: The refit rows and what ``attrib fit`` writes each: alone (``--no-pool``) or pooled with Who&When (the default).
REFITS = {"learned, refit": "--no-pool", "learned, refit + Who&When": ""}


def fit_flags(row: str, step_head: str = DEFAULT_STEP_HEAD) -> str:
    """The ``attrib fit`` flags that write the ranker of refit ``row`` with ``step_head``: its pooling, and the step
    head when it is not the default (a logit refit measured here is not what a plain ``attrib fit`` writes)."""
    head = "" if step_head == DEFAULT_STEP_HEAD else f"--step-head {step_head_flag(step_head)}"
    return " ".join(f for f in (REFITS[row], head) if f)


def advice(kept: dict[str, list[Verdict]], current: str, unseen: set[str],
           groups: Mapping[str, str] | None = None, step_head: str = DEFAULT_STEP_HEAD,
           few: str | None = None) -> dict[str, Any] | None:
    """Which ranker to use on this system: the best refit row (step accuracy, then agent) against ``current`` (the
    ranker as it is), paired on the runs it was not fitted on (``unseen``). ``use`` is the refit only when the 95 %
    interval of its step gain lies above zero, else ``current``: on a few dozen runs most differences are noise.
    ``groups`` (trace id -> task): the interval resamples tasks where runs repeat one. ``fit_flags``: the `attrib fit`
    flags that write the best refit as measured (its pooling, and ``step_head`` when not the default). ``few``
    (:func:`~attrib.methods.ranker_names.few_runs_words`, when these runs are few): kept as ``caution`` when the best refit is the one fitted on
    them alone, which `attrib fit --no-pool` then warns of too.
    When ``current`` was fitted on every run (no fair comparison), ``use`` is None and ``best_refit`` the refit with
    the higher step accuracy (``refit_step_accuracy``, percent). None when there is no refit row."""
    refits = [name for name in REFITS if name in kept]
    if not refits:
        return None

    def caution(best: str) -> dict[str, str]:
        return {"caution": few} if few and REFITS[best] == "--no-pool" else {}

    if not unseen:
        acc = {n: 100 * float(np.mean([v.step == v.true_step for v in kept[n]])) for n in refits}
        best = max(refits, key=acc.__getitem__)
        return {"use": None, "best_refit": best, "against": current, "n": 0, "fit_flags": fit_flags(best, step_head),
                "refit_step_accuracy": acc[best], "significant": False, **caution(best)}
    cur = [v for v in kept[current] if v.trace_id in unseen]
    gains = {name: paired_gains([[v for v in kept[name] if v.trace_id in unseen]], [cur], groups) for name in refits}
    best = max(refits, key=lambda n: (gains[n]["step"]["mean"], gains[n]["agent"]["mean"]))
    beats = gains[best]["step"]["ci_low"] > 0
    return {"use": best if beats else current, "best_refit": best, "against": current, "n": len(cur),
            "fit_flags": fit_flags(best, step_head), "step_gain": gains[best]["step"], "agent_gain": gains[best]["agent"],
            "significant": beats, **caution(best)}
