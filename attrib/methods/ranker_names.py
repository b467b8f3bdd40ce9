"""How a verdict names the ranker that decided it (``evidence.ranker``), written and read in one place.

The learned method writes the name (:func:`file_source`, :data:`SHIPPED`) and the reports read it back short
(:func:`ranker_name`); this module loads nothing but the standard library, so the reports need not import the
method's numpy to read a name.
"""

from __future__ import annotations

import os
from pathlib import Path

#: ``evidence.ranker`` of a verdict from the ranker attrib ships.
SHIPPED = "shipped (fitted on Who&When)"

#: :func:`ranker_name` of :data:`SHIPPED`: the reports name every other ranker beside the method, not this one.
SHIPPED_NAME = "shipped"

#: What follows a ranker file's path in its ``evidence.ranker``, before the start of its content hash.
_HASH = " (sha256 "


def file_source(path: str | os.PathLike[str], sha256: str) -> str:
    """``evidence.ranker`` of a ranker file: its resolved path (one file under any spelling) and the start of its
    content hash (a rewritten file is another ranker)."""
    return f"{Path(path).resolve()}{_HASH}{sha256[:12]})"


def ranker_name(source: str) -> str:
    """A ranker as ``evidence.ranker`` names it, short: :data:`SHIPPED_NAME` for the shipped one, else the ranker
    file's name (the full path and content hash are in the verdict's evidence), else ``source`` itself (a ranker
    object passed in the library)."""
    if source == SHIPPED:
        return SHIPPED_NAME
    return os.path.basename(source.split(_HASH, 1)[0]) or source
