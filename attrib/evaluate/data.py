"""Loading the Who&When benchmark as labelled :class:`~attrib.trace.Trace` objects (read-only, from shared data)."""

from __future__ import annotations

from functools import lru_cache

from attrib.errors import NotFoundError
from attrib.paths import who_and_when_dir
from attrib.trace import Trace, question_id

__all__ = ["SUBSETS", "load_subset", "question_id"]

SUBSETS = ("algorithm", "hand")


@lru_cache(maxsize=4)
def load_subset(subset: str) -> tuple[Trace, ...]:
    """All labelled traces of one subset ('algorithm' or 'hand'), in file-number order."""
    from attrib.readers.whowhen import WhoWhenReader

    if subset not in SUBSETS:
        raise NotFoundError(f"unknown Who&When subset {subset!r} (known: {', '.join(SUBSETS)})")
    d = who_and_when_dir(subset)
    files = sorted(d.glob("*.json"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise NotFoundError(f"no Who&When logs under {d} (set ATTRIB_WHO_AND_WHEN)")
    reader = WhoWhenReader()
    return tuple(t for p in files for t in reader.read(p.read_bytes(), p))
