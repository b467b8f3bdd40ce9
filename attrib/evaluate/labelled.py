"""Score attribution on your own annotated runs: how right is the blame on *your* system?

``evaluate_labelled(traces)`` takes any labelled traces (any format attrib reads; a trace is labelled
when it carries ``label.mistake_step`` / ``label.mistake_agent``) and reports, with the metrics of the
Who&When harness:

* the shipped ranker as it is (fitted on Who&When only, so every one of your traces is out of sample);
* the ranker refitted on your traces, k-fold grouped by ``metadata.question_id`` (else the trace id),
  alone and pooled with Who&When when that data is present, which is what ``attrib fit`` would ship;
* the logistic floor and the rule baselines beside them.

A refit needs enough labels: at least ``2 * inner_folds`` (8) traces in every training fold.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from attrib.errors import InputError
from attrib.evaluate.baselines import BASELINES
from attrib.evaluate.harness import cross_validate, floor_fitter, learned_fitter, mean_summary, ranker_verdict
from attrib.evaluate.metrics import Verdict
from attrib.methods.learned import DEFAULT_STEP_HEAD, default_model, setting_of
from attrib.readers import validate
from attrib.trace import Trace

#: Baselines that make sense for any system (the WebSurfer ones are Magentic-One specific).
GENERIC_BASELINES = ("random", "always-step-1", "most-active-agent")
MIN_TRAIN = 8


def fingerprint(trace: Trace) -> str:
    """Identity of a run by its step texts (the same log under another id, format or question id matches)."""
    return hashlib.sha1("\x1e".join(s.content for s in trace.steps).encode()).hexdigest()


def pool_extra(traces: Sequence[Trace]) -> list[Trace]:
    """The Who&When logs to pool with ``traces`` for a refit: all of them but those among ``traces`` (by
    :func:`fingerprint`), so no log is trained on twice or scored by a model fitted on it."""
    mine = {fingerprint(t) for t in traces}
    return [t for t in who_and_when_traces() if fingerprint(t) not in mine]


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
) -> dict[str, Any]:
    """Metrics of the shipped ranker (or ``model_path`` / ``$ATTRIB_RANKER``), refitted rankers (with ``step_head``,
    see :class:`~attrib.methods.learned.LearnedRanker`), the floor and baselines on labelled ``traces``.

    Returns ``{"n", "n_unlabelled", "rows": [{method, protocol, step_accuracy, ...}], "notes": [...], "wall_s"}``.
    """
    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    model_path = model_path or os.environ.get("ATTRIB_RANKER") or None
    labelled = [validate(t) for t in traces if t.label is not None]  # the readers' checks, label step included
    if not labelled:
        raise InputError(None, "label", f"none of the {len(traces)} traces carries a label "
                         "(label.mistake_step and label.mistake_agent); nothing to score")
    rows: list[dict[str, Any]] = []
    notes: list[str] = []

    def add(name: str, protocol: str, verdicts: list[Verdict]) -> None:
        rows.append({"method": name, "protocol": protocol, **mean_summary([verdicts])})

    for name in GENERIC_BASELINES:
        add(name, "rule", [BASELINES[name](t) for t in labelled])
    say("shipped ranker")
    protocol = "as shipped" if model_path is None else f"model {model_path}"
    if model_path is None:  # the shipped ranker was fitted on all of Who&When: say where its row is in sample
        ww_prints = {fingerprint(t) for t in who_and_when_traces()}
        n_in = sum(fingerprint(t) in ww_prints for t in labelled)
        if n_in:
            protocol = f"as shipped, IN SAMPLE for {n_in}"
            notes.append(f"{n_in} of these traces are Who&When logs the shipped ranker was fitted on: its row is "
                         "in sample for them (the refit rows are not)")
    add("learned (shipped)", protocol, [ranker_verdict(t, default_model(setting_of(t), model_path)) for t in labelled])
    n_train = len(labelled) * (k - 1) // k
    if n_train < MIN_TRAIN:
        notes.append(f"{len(labelled)} labelled traces: too few to refit with {k} folds (each training fold needs "
                     f"{MIN_TRAIN}); only the shipped ranker and the baselines are scored")
    else:
        say("refit on these traces")
        fitter = partial(learned_fitter, step_head=step_head)
        add("learned, refit", f"{k}-fold", cross_validate(labelled, fitter, k, seed))
        add("floor", f"{k}-fold", cross_validate(labelled, floor_fitter, k, seed))
        n_ww = len(who_and_when_traces()) if pool_who_and_when else 0
        extra = pool_extra(labelled) if n_ww else []
        if len(extra) < n_ww:
            notes.append(f"{n_ww - len(extra)} Who&When logs are among these traces: left out of the pooled "
                         "training so they are never scored by a model fitted on them")
        if extra:
            say("refit on these traces + Who&When")
            add("learned, refit + Who&When", f"{k}-fold pooled", cross_validate(labelled, fitter, k, seed, extra))
        elif pool_who_and_when and not n_ww:
            notes.append("Who&When is not on this machine (set ATTRIB_WHO_AND_WHEN): no pooled refit")
    return {"n": len(labelled), "n_unlabelled": len(traces) - len(labelled), "folds": k, "seed": seed,
            "rows": rows, "notes": notes, "wall_s": time.perf_counter() - t0}
