"""attrib: failure attribution for LLM multi-agent systems.

The library API is re-exported here lazily, so ``import attrib`` stays light (no torch, no dask).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Trace": "attrib.trace",
    "Step": "attrib.trace",
    "Label": "attrib.trace",
    "Attribution": "attrib.trace",
    "read_path": "attrib.readers",
    "load_trace": "attrib.readers",
    "ingest": "attrib.store.api",
    "open_store": "attrib.store",
    "analyze": "attrib.methods",
    "analyze_many": "attrib.engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attrib' has no attribute {name!r}")


__all__ = sorted(_LAZY)
