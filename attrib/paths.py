"""The one place that resolves paths to shared data and to the model files shipped in packages."""

from __future__ import annotations

import atexit
import os
import shutil
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Whether attrib runs from a checkout (``../shared`` beside it is where the data lives) or an installed package,
#: whose "repo root" is site-packages' parent and says nothing about where the data is.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()


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


def file_name(name: str, most: int = 120) -> str:
    """``name`` (a trace id, which comes from the run's own content) as one safe file name: path separators,
    ``..``, control and other unsafe characters become ``_``, so it can never point outside the folder it is
    written to; at most ``most`` characters, never empty or hidden."""
    import re

    safe = re.sub(r"[^A-Za-z0-9._+=@-]", "_", name)[:most].lstrip(".")
    return safe or "trace"


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


_cache_lock = threading.Lock()
_cache_fallback: dict[str, Path] = {}  # configured cache that could not be made -> this process's stand-in


def configured_cache_dir() -> Path:
    """The cache folder asked for: ``$ATTRIB_CACHE``, else ``~/.cache/attrib`` (it may not exist or be writable)."""
    env = os.environ.get("ATTRIB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "attrib"


def persistent_cache_dir() -> Path | None:
    """The configured cache folder, created if needed; None (warned once, naming ``ATTRIB_CACHE``) when it cannot be
    made or written. For large files that are only worth writing where they last (converted model weights)."""
    d = configured_cache_dir()
    key = str(d)
    with _cache_lock:
        if key in _cache_fallback:
            return None
        try:
            d.mkdir(parents=True, exist_ok=True)
            if not os.access(d, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable", str(d))
            return d
        except OSError as e:
            import logging
            import tempfile

            where = "ATTRIB_CACHE=" + key if os.environ.get("ATTRIB_CACHE") else f"the cache folder {key} (set ATTRIB_CACHE)"
            logging.getLogger(__name__).warning(
                "attrib: %s cannot be used (%s); carrying on without a persistent cache, which only costs speed",
                where, e.strerror or e)
            _cache_fallback[key] = Path(tempfile.mkdtemp(prefix="attrib-cache-"))
            atexit.register(shutil.rmtree, _cache_fallback[key], True)
            return None


def cache_dir() -> Path:
    """Where converted model weights and other derived files are cached: :func:`configured_cache_dir`, created.

    Best effort: a cache that cannot be made or written costs speed, not the command. It is reported once on the
    ``attrib.paths`` logger, naming ``ATTRIB_CACHE``, and this process then uses a temporary folder (removed at exit)
    instead, so small derived files still work; :func:`persistent_cache_dir` tells the two apart.
    """
    d = persistent_cache_dir()
    if d is not None:
        return d
    return _cache_fallback[str(configured_cache_dir())]


def writable_folder(path: str | Path) -> Path:
    """``path``, created if needed, once a file can be written in it; otherwise an
    :class:`~attrib.errors.AttribError` naming it (exit 1: an output that cannot be written), before any slow work."""
    import tempfile

    from attrib.errors import AttribError

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        why = "a file is in the way" if isinstance(e, FileExistsError | NotADirectoryError) else (e.strerror or str(e))
        raise AttribError(f"{out}: cannot write there ({why})") from None
    return out

