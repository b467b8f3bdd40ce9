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


#: name -> "module" (which has ``attribute``) or "module:function" (a function with that signature).
METHODS: dict[str, str] = {
    "learned": "attrib.methods.learned",
    "flow-graph": "attrib.methods.flow_graph",
    "causal": "attrib.methods.causal",
    "judge-all": "attrib.methods.judge:all_at_once",
    "judge-step": "attrib.methods.judge:step_by_step",
    "judge-binary": "attrib.methods.judge:binary_search",
    "judge-hybrid": "attrib.methods.judge:hybrid",
}

#: The offline default (needs no LLM). Set by the attribution engine.
DEFAULT_METHOD = "learned"


def get_method(name: str) -> Any:
    """The callable ``attribute(trace, **options) -> Attribution`` registered as ``name``."""
    if name not in METHODS:
        raise AttribError(f"unknown method {name!r} (known: {', '.join(METHODS) or 'none yet'})")
    module, _, func = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), func or "attribute")


#: Prepended to the reason of a verdict on a run that its log records as successful.
SUCCEEDED_NOTE = ("This run is recorded as successful: attrib looks for the step that decided a failure, so read "
                  "the verdict as the riskiest step, not as a cause.")


def analyze(trace: Trace, method: str | None = None, **options: Any) -> Attribution:
    """Attribute the failure in ``trace`` with ``method`` (default: the offline default)."""
    name = method or DEFAULT_METHOD
    fn = get_method(name)
    t0 = time.perf_counter()
    result: Attribution = fn(trace.unlabelled(), **options)
    if trace.outcome == "succeeded":  # say so rather than invent a cause for a run that did not fail
        result = msgspec.structs.replace(result, reason=SUCCEEDED_NOTE + " " + result.reason,
                                         evidence={**result.evidence, "run_outcome": "succeeded"})
    return msgspec.structs.replace(result, elapsed_s=time.perf_counter() - t0)
