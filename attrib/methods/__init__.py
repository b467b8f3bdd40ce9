"""Attribution methods: one module per method, each ``attribute(trace, **options) -> Attribution``.

``METHODS`` maps a method name to its module; modules are imported on first use so that
``import attrib`` stays light. :func:`analyze` is the one entry point: it strips the trace's
label (methods never see the annotation) and times the call.
"""

from __future__ import annotations

import importlib
import time
from typing import Any, Protocol

import msgspec

from attrib.errors import AttribError
from attrib.trace import Attribution, Trace


class Method(Protocol):
    def attribute(self, trace: Trace, **options: Any) -> Attribution: ...


#: name -> module path. The first entry is the default method.
METHODS: dict[str, str] = {}

DEFAULT_METHOD = "hybrid"


def get_method(name: str) -> Any:
    """The module implementing ``name`` (has ``attribute``)."""
    if name not in METHODS:
        raise AttribError(f"unknown method {name!r} (known: {', '.join(METHODS) or 'none yet'})")
    return importlib.import_module(METHODS[name])


def analyze(trace: Trace, method: str | None = None, **options: Any) -> Attribution:
    """Attribute the failure in ``trace`` with ``method`` (default: the offline default)."""
    name = method or DEFAULT_METHOD
    mod = get_method(name)
    t0 = time.perf_counter()
    result: Attribution = mod.attribute(trace.unlabelled(), **options)
    return msgspec.structs.replace(result, elapsed_s=time.perf_counter() - t0)
