"""The one place that resolves paths to shared data and to the model files shipped in packages."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``../shared`` beside the checkout, or ``$ATTRIB_SHARED``."""
    env = os.environ.get("ATTRIB_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def who_and_when_dir(subset: str | None = None) -> Path:
    """The Who&When benchmark folder (``subset``: 'algorithm' or 'hand')."""
    base = Path(os.environ.get("ATTRIB_WHO_AND_WHEN", shared_dir() / "data" / "who_and_when"))
    if subset is None:
        return base
    names = {"algorithm": "Algorithm-Generated", "hand": "Hand-Crafted"}
    return base / names[subset]


def traces_dir() -> Path:
    """Bundled sample traces."""
    return REPO_ROOT / "traces"


def results_dir() -> Path:
    """Where benchmark and evaluation JSON goes: ``$ATTRIB_RESULTS_DIR``, else the checkout's ``bench/results``, else
    (an installed package, no checkout) ``./attrib-results``. The inspector's Evaluation page reads it."""
    env = os.environ.get("ATTRIB_RESULTS_DIR")
    if env:
        return Path(env)
    return REPO_ROOT / "bench" / "results" if (REPO_ROOT / "bench").is_dir() else Path.cwd() / "attrib-results"


def cache_dir() -> Path:
    """Where converted model weights and other derived files are cached."""
    d = Path(os.environ.get("ATTRIB_CACHE", Path.home() / ".cache" / "attrib"))
    d.mkdir(parents=True, exist_ok=True)
    return d
