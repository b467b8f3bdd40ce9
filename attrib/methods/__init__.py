"""Attribution methods: one module per method, each ``attribute(trace, **options) -> Attribution``.

``METHODS`` maps a method name to its module; modules are imported on first use so that
``import attrib`` stays light. :func:`analyze` is the one entry point: it strips the trace's
label (methods never see the annotation) and times the call.
"""

from __future__ import annotations

import importlib
import inspect
import re
import time
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from attrib.errors import AttribError, NoVerdictError, UsageError, not_a_trace
from attrib.trace import Attribution, Trace, is_agent_step


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
#: A warning on a verdict on a run whose log records no outcome (AutoGen TaskResults, LangGraph dumps).
UNKNOWN_OUTCOME_NOTE = ("This run's outcome is not recorded, so it is not known to have failed: attrib assumes it did; "
                        "if it succeeded, read the verdict as the riskiest step, not as a cause.")
#: A warning on a verdict on a run whose final answer is its ground truth.
LOOKS_CORRECT_NOTE = ("The run's final answer matches its ground truth, so the run looks correct: read the verdict as "
                      "the riskiest step, not as a cause.")


def check_options(method: str, options: Mapping[str, Any]) -> None:
    """Refuse options ``method`` does not take, naming the ones it does (a misspelt option is not ignored).

    A method whose function takes ``**options`` (the judges) checks its own.
    """
    params = list(inspect.signature(get_method(method)).parameters.values())[1:]  # after the trace
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    known = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UsageError(None, "options", f"method {method!r} takes no option {', '.join(map(repr, unknown))} "
                         f"(it takes: {', '.join(known) or 'none'})")


def check_trace(trace: Any) -> Trace:
    """The trace, typed (:meth:`Trace.check`'s copy), if it is a sound :class:`Trace` (see :meth:`Trace.problem`),
    else one clear error."""
    if not isinstance(trace, Trace):
        raise not_a_trace(trace)
    return trace.check()


def analyze(trace: Trace, method: str | None = None, **options: Any) -> Attribution:
    """Attribute the failure in ``trace`` with ``method`` (default: the offline default).

    ``options`` go to the method (e.g. ``set_level=0.5`` for ``learned``); one it does not take is an error.
    The trace is checked first (:func:`check_trace`), so a hand-built one with a broken field fails here, by name.
    """
    name = method or DEFAULT_METHOD
    fn = get_method(name)
    check_options(name, options)
    return run(fn, check_trace(trace), options)


def run(fn: Any, trace: Trace, options: Mapping[str, Any]) -> Attribution:
    """What :func:`analyze` does once its arguments are checked: the label stripped, the call timed, a successful
    run said so. For callers that checked already: the batch engine checks the options once per batch, and its
    traces come typed from the store, which checked them when they were stored.

    A run with steps but none of an agent or tool (the user's and the system's messages only) is refused with a
    :class:`NoVerdictError` by every method: there is nothing to attribute, and a ranker named the question itself at
    99 %. Warnings every report shows go to ``evidence["warnings"]``: an outcome not recorded (attrib assumes a
    failure), a final answer that matches the ground truth (the run looks correct)."""
    if trace.steps and not any(is_agent_step(s) for s in trace.steps):
        raise NoVerdictError(f"trace {trace.id!r}: no agent or tool step: nothing to attribute (its "
                             f"{len(trace.steps)} step{'s are' if len(trace.steps) != 1 else ' is'} the user's or "
                             "the system's)")
    t0 = time.perf_counter()
    result: Attribution = fn(trace.unlabelled(), **options)
    warnings: list[str] = []
    if trace.outcome == "succeeded":  # say so rather than invent a cause for a run that did not fail
        result = msgspec.structs.replace(result, reason=SUCCEEDED_NOTE + " " + result.reason,
                                         evidence={**result.evidence, "run_outcome": "succeeded"})
    elif trace.outcome == "unknown":
        warnings.append(UNKNOWN_OUTCOME_NOTE)
    if trace.outcome != "succeeded" and answer_matches_truth(trace):
        warnings.append(LOOKS_CORRECT_NOTE)
    result = with_warnings(result, warnings)
    if span := decisive_span(trace, result.step):
        result = msgspec.structs.replace(result, evidence={**result.evidence, "decisive_span": span})
    if trace.metadata.get("partial"):  # spans whose parents the file lacks: the cause may be in the missing part
        missing, remote = trace.metadata.get("missing_parents") or [], trace.metadata.get("remote_parents") or []
        result = msgspec.structs.replace(result, evidence={
            **result.evidence, "partial_trace": {"missing_parents": len(missing), "remote_parents": len(remote)}})
    return msgspec.structs.replace(result, elapsed_s=time.perf_counter() - t0)


def decisive_span(trace: Trace, step: int) -> dict[str, str] | None:
    """The OpenTelemetry span the decisive step was read from (``span_id``, ``span_name``), so a user finds it in
    their trace viewer: attrib's step numbers exist only in attrib. None for runs not read from spans."""
    if not 0 <= step < len(trace.steps):
        return None
    meta = trace.steps[step].metadata
    span_id = meta.get("span_id") if isinstance(meta, dict) else None
    if not isinstance(span_id, str) or not span_id:
        return None
    name = meta.get("span_name")
    return {"span_id": span_id, **({"span_name": name} if isinstance(name, str) and name else {})}


def answer_matches_truth(trace: Trace) -> bool:
    """Whether the run's final answer (as the log states it, else the step stating it:
    :func:`attrib.features.text.final_answer_text`) is its ground truth, up to case, spacing, punctuation around it
    and a closing "TERMINATE"; False for a run without a ground truth."""
    if not trace.ground_truth:
        return False
    from attrib.features.text import final_answer_text
    from attrib.trace import tool_steps

    final = trace.final_answer
    if not final:
        _, final = final_answer_text([s.content for s in trace.steps], tool_steps(trace.steps))
    truth = _bare_answer(trace.ground_truth)
    return bool(truth) and _bare_answer(final) == truth


def _bare_answer(text: str) -> str:
    """An answer as compared: lower case, a closing TERMINATE dropped, spaces, commas, quotes and ``$*`` removed,
    and stops at its ends dropped ("Canberra. TERMINATE" -> "canberra")."""
    text = re.sub(r"\bterminate\b", " ", text.lower())
    return re.sub(r"[\s,$*`\"']+", "", text).strip(".:;!")


def with_warnings(result: Attribution, warnings: list[str]) -> Attribution:
    """``result`` with ``warnings`` (one sentence each) appended to ``evidence["warnings"]``, which every report
    shows; ``result`` itself when there are none."""
    if not warnings:
        return result
    have = list(result.evidence.get("warnings") or [])
    return msgspec.structs.replace(result, evidence={**result.evidence,
                                                     "warnings": have + [w for w in warnings if w not in have]})
