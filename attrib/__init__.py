"""attrib: failure attribution for LLM multi-agent systems.

The library API is re-exported here lazily, so ``import attrib`` stays light (no torch, no dask).
"""

from __future__ import annotations

from attrib._lazy import lazy_exports

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


__getattr__, __all__, __dir__ = lazy_exports(__name__, _LAZY)
