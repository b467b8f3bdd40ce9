"""How a verdict names the ranker that decided it (``evidence.ranker``), written and read in one place, and the
other names of a ranker that the CLI and reports need without its numpy: its step head's, and when it has few runs.

The learned method writes the name (:func:`file_source`, :func:`shipped_source`) and the reports read it back short
(:func:`ranker_name`); this module loads nothing but the standard library and :mod:`attrib.errors`, so the reports
and ``attrib --help`` need not import the method's numpy to read a name.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from attrib.errors import UsageError

#: The ranker file attrib ships (fitted on all of Who&When).
SHIPPED_FILE = Path(__file__).parent / "data" / "ranker.json"

#: How every ``evidence.ranker`` of the shipped ranker starts; an attrib before the hash was added wrote this and ")".
_SHIPPED_WORDS = "shipped (fitted on Who&When"

#: :func:`ranker_name` of :func:`shipped_source`: the reports name every other ranker beside the method, not this one.
SHIPPED_NAME = "shipped"


@functools.cache
def shipped_source() -> str:
    """``evidence.ranker`` of a verdict from the ranker attrib ships (``attrib.methods.learned.SHIPPED``): its words
    and the start of the file's sha256, so the verdicts of the ranker an earlier attrib shipped are another ranker's
    (``attrib analyze --all`` redoes them), as a ranker file's are once it is rewritten. Read once, on first use:
    importing this module reads no file, so ``attrib --help`` and the reports stay as fast."""
    try:
        digest = hashlib.sha256(SHIPPED_FILE.read_bytes()).hexdigest()[:12]
    except OSError:  # not installed with the package: the learned method says so when it loads it
        return f"{_SHIPPED_WORDS})"
    return f"{_SHIPPED_WORDS}, sha256 {digest})"


#: What follows a ranker file's path in its ``evidence.ranker``, before the start of its content hash.
_HASH = " (sha256 "


def file_source(path: str | os.PathLike[str], sha256: str) -> str:
    """``evidence.ranker`` of a ranker file: its resolved path (one file under any spelling) and the start of its
    content hash (a rewritten file is another ranker)."""
    return f"{Path(path).resolve()}{_HASH}{sha256[:12]})"


def ranker_name(source: str) -> str:
    """A ranker as ``evidence.ranker`` names it, short: :data:`SHIPPED_NAME` for the shipped one (of any attrib
    version: its words, without reading the file), else the ranker file's name (the full path and content hash are
    in the verdict's evidence), else ``source`` itself (a ranker object passed in the library)."""
    if source.startswith(_SHIPPED_WORDS):
        return SHIPPED_NAME
    return os.path.basename(source.split(_HASH, 1)[0]) or source


#: Below either a ranker's confidences and 90 % step sets are rough (``attrib fit`` warns). Runs: the 90 % set's
#: threshold is the ``ceil(0.9 (n + 1))``-th smallest of n calibration scores, so its real coverage varies from fit
#: to fit with SD 7 points at 12 runs (the single worst-ranked run sets it), 5 at 30, 3 at 100; and refits on 12 /
#: 24 / 48 Who&When runs had held-out step-confidence ECE ~9 / ~6 / ~4 points (~4 fitted on all). Tasks: the inner
#: folds hold out whole tasks and re-runs of one task are not independent, so under ~10 tasks the calibration runs
#: are a few draws of task, however many runs there are.
FEW_RUNS, FEW_TASKS = 30, 10


def few_runs(n_runs: int | None, n_tasks: int | None) -> bool:
    """Whether a ranker fitted on ``n_runs`` labelled runs of ``n_tasks`` tasks is below :data:`FEW_RUNS` or
    :data:`FEW_TASKS` (``None``: unknown, not counted as few)."""
    return (n_runs is not None and n_runs < FEW_RUNS) or (n_tasks is not None and n_tasks < FEW_TASKS)


class RankerParamError(UsageError, ValueError):
    """A bad :class:`~attrib.methods.ranker.LearnedRanker` parameter or ``fit`` argument: a :class:`UsageError`
    naming it (exit 2), and a ``ValueError`` as scikit-learn's parameter errors are."""


_STEP_HEADS = ("first_passage", "logit")


def step_head_name(step_head: object, field: str = "step_head") -> str:
    """The step head ``step_head`` names, as the ranker stores it ("first_passage" or "logit"): the CLI's spelling
    "first-passage" is accepted too, so one name works in both; else a :class:`RankerParamError` naming ``field``."""
    name = step_head.replace("-", "_") if isinstance(step_head, str) else step_head
    if name not in _STEP_HEADS:
        raise RankerParamError(None, field, f"must be 'first-passage' (or 'first_passage') or 'logit', "
                               f"got {step_head!r}")
    return str(name)


def step_head_flag(step_head: object) -> str:
    """The step head ``step_head`` names (either spelling), as ``--step-head`` spells it ("first-passage", "logit"):
    the inverse of :func:`step_head_name`."""
    return step_head_name(step_head).replace("_", "-")


def few_runs_words(n_runs: int | None, n_tasks: int | None) -> str | None:
    """``n_runs`` labelled runs (of ``n_tasks`` tasks, when known) in words, with the counts they are under, when
    they are few for a ranker (:func:`few_runs`: its confidences and 90 % step sets are rough): "12 labelled runs of
    6 tasks (under 30 runs or 10 tasks)", as `attrib fit`, `attrib eval traces` and the reports say it; None when
    they are not few."""
    if not few_runs(n_runs, n_tasks):
        return None
    rests = f"{n_runs} labelled runs" + (f" of {n_tasks} tasks" if n_tasks is not None else "")
    return f"{rests} (under {FEW_RUNS} runs or {FEW_TASKS} tasks)"


def seen_how(attr: Any) -> Literal["in sample", "seen task"] | None:
    """Whether the ranker saw this run when it was fitted: "in sample" (this very run, ``evidence.in_sample``),
    "seen task" (another run of its task, ``evidence.same_task_trained``), else None. The reports' notes, the stored
    verdict's line and a batch's count all ask here (numpy-free, so the engine may)."""
    ev = attr.evidence or {}
    return "in sample" if ev.get("in_sample") else "seen task" if ev.get("same_task_trained") else None
