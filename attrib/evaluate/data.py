"""Loading the Who&When benchmark as labelled :class:`~attrib.trace.Trace` objects (read-only, from shared data)."""

from __future__ import annotations

import os
from functools import lru_cache

from attrib.errors import NotFoundError
from attrib.paths import IN_CHECKOUT, who_and_when_dir
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
        # installed, not a checkout: the default path lies under site-packages and would mean nothing to the user
        where = f"under {d}" if IN_CHECKOUT or "ATTRIB_WHO_AND_WHEN" in os.environ else "(attrib is installed, with no " \
            "../shared beside a checkout)"
        raise NotFoundError(f"no Who&When logs {where}; set ATTRIB_WHO_AND_WHEN to the folder holding "
                            "Algorithm-Generated/ and Hand-Crafted/")
    reader = WhoWhenReader()
    return tuple(t for p in files for t in reader.read(p.read_bytes(), p))
