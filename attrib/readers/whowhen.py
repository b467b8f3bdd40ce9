"""Who&When benchmark logs (ICML 2025): one failed run per JSON file.

Fields: ``question``, ``question_ID``, ``ground_truth``, ``history`` (list of ``{role, name,
content}``), ``mistake_agent``, ``mistake_step`` (0-based index into ``history``, a string),
``mistake_reason``, ``is_correct`` (a boolean, or a word as ``outcome`` takes it; ``outcome`` itself wins);
Algorithm-Generated logs also carry ``system_prompt`` (agent -> prompt),
Hand-Crafted (Magentic-One) logs carry agent names such as ``"Orchestrator (thought)"`` that
:func:`normalize_agent` folds onto one agent, and name a step's agent in ``role`` alone (no ``name``).

Types are checked, not converted: text fields are strings (``question_ID``, ``ground_truth`` and ``level`` may be
integers too, read as their digits; ``mistake_step`` a string or an integer); null counts as absent; anything else
(``content`` 12345 or a list, ``question_ID`` ``[1]``, ``name`` ``""``, a ``system_prompt`` list) is an
:class:`~attrib.errors.InputError` naming the field, e.g. ``history[2].content``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from attrib.errors import InputError
from attrib.readers._common import as_int, check_encoding, file_stem, loads
from attrib.trace import Label, Outcome, Step, Trace, parse_outcome, some_names

#: Magentic-One's orchestrator as its log and Who&When write it ('Orchestrator (thought)') and as AutoGen 0.4's
#: MagenticOneGroupChat does ('MagenticOneOrchestrator')
_ORCH = re.compile(r"^(?:magentic[-_ ]?one[-_ ]?)?orchestrator\b", re.IGNORECASE)
_CANON = {"websurfer": "WebSurfer", "filesurfer": "FileSurfer", "orchestrator": "Orchestrator"}


def normalize_agent(name: str) -> str:
    """Fold Magentic-One display names onto agents: 'Orchestrator (-> WebSurfer)' and AutoGen 0.4's
    'MagenticOneOrchestrator' -> 'Orchestrator'."""
    name = (name or "").strip()
    if _ORCH.match(name):
        return "Orchestrator"
    return _CANON.get(name.lower(), name)


class WhoWhenReader:
    name = "whowhen"

    def sniff(self, data: bytes, path: Path) -> float:
        head = data[:4096]
        if b'"history"' in data[:200_000] and (b'"mistake_' in data or b'"question' in head):
            return 0.95
        if b'"mistake_agent"' in data or b'"question_ID"' in data:
            return 0.5  # Who&When-shaped but broken (e.g. no history): let this reader say what is missing
        return 0.0

    def read(self, data: bytes, path: Path) -> list[Trace]:
        obj = loads(check_encoding(data, path), path)  # errors carry line:col
        if not isinstance(obj, dict):
            raise InputError(path, None, "expected a JSON object with a 'history' list")
        return [parse_whowhen(obj, path)]


def _kind(value: Any) -> str:
    """A JSON value's kind, as an error names it."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _text(obj: dict[str, Any], key: str, path: Path, field: str | None = None, *, integers: bool = False) -> str | None:
    """``obj[key]`` as text: a string as it is; with ``integers``, an integer as its digits (a number's spelling is
    its value for an integer only: 6.80 would read back as 6.8); None when absent or null. Anything else is an
    :class:`InputError` naming ``field`` (default ``key``): a list read as its JSON text (``question_ID`` ``[1]`` as
    the group "[1]") was a wrong run, silently."""
    v = obj.get(key)
    if v is None or isinstance(v, str):
        return v
    if integers and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    want = "a string or an integer" if integers else "a string"
    raise InputError(path, field or key, f"expected {want}, got {_kind(v)} {_short(v)}")


def _label(obj: dict[str, Any], path: Path, n: int, agents: set[str]) -> Label | None:
    if "mistake_step" not in obj and "mistake_agent" not in obj:
        return None
    if "mistake_step" not in obj:
        raise InputError(path, "mistake_step", "missing: a label names the mistaken step as well as the agent")
    if "mistake_agent" not in obj:
        raise InputError(path, "mistake_agent", "missing: a label names the mistaken agent as well as the step")
    ms, ma = obj["mistake_step"], obj["mistake_agent"]
    step = _index(ms)  # the benchmark writes the step as a string ("3"); an integer is taken too
    if step is None:
        raise InputError(path, "mistake_step", f"expected an integer, got {_short(ms)}")
    if not 0 <= step < n:
        raise InputError(path, "mistake_step", f"{_short(step)} is outside the history (0..{n - 1})")
    if not isinstance(ma, str) or not ma.strip():
        raise InputError(path, "mistake_agent", f"expected the mistaken agent's name, got {_short(ma)}")
    agent = normalize_agent(ma)
    if agent not in agents:
        raise InputError(path, "mistake_agent", f"{ma!r} is not an agent of this run ({some_names(sorted(agents))})")
    return Label(mistake_agent=agent, mistake_step=step, reason=_text(obj, "mistake_reason", path) or "")


def _index(value: Any) -> int | None:
    """An integer, or a string of one (surrounding spaces allowed); None for anything else (a float, a bool): real
    Who&When logs write their indexes as strings."""
    return as_int(value, floats=False)


def _short(value: Any) -> str:
    """``repr(value)``, cut to 40 characters (a 300-digit step index is no message)."""
    r = repr(value)
    return r if len(r) <= 40 else f"{r[:37]}..."


def parse_whowhen(obj: dict[str, Any], path: Path) -> Trace:
    """One Who&When log as a trace. Every field has the type the benchmark writes (strings; ``question_ID``,
    ``ground_truth`` and ``level`` may be integers; ``system_prompt`` an object of strings); null is absent; any
    other type is an :class:`InputError` naming the field, never converted."""
    history = obj.get("history")
    if history is None:
        raise InputError(path, "history", "missing required field (a list of {role, name, content})")
    if not isinstance(history, list):
        raise InputError(path, "history", f"expected a list, got {type(history).__name__}")
    if not history:
        raise InputError(path, "history", "empty: a trace needs at least one step")
    steps = []
    for i, msg in enumerate(history):
        where = f"history[{i}]"
        if not isinstance(msg, dict):
            raise InputError(path, where, f"expected an object, got {type(msg).__name__}")
        name = _text(msg, "name", path, f"{where}.name")
        role = _text(msg, "role", path, f"{where}.role")
        if name == "":
            raise InputError(path, f"{where}.name", "empty: give the agent's name, or leave name out to use the role")
        if role == "":
            raise InputError(path, f"{where}.role", "empty: give the speaker's role, or leave role out")
        raw_name = name or role  # Hand-Crafted logs name the agent in role alone
        if not raw_name:
            raise InputError(path, f"{where}.name", "missing: every step needs an agent name or role")
        agent = normalize_agent(raw_name)
        steps.append(
            Step(
                index=i,
                agent=agent,
                role=role or "assistant",
                content=_text(msg, "content", path, f"{where}.content") or "",
                metadata={"raw_name": raw_name} if agent != raw_name else {},
            )
        )
    prompts = obj.get("system_prompt")
    if prompts is not None and not isinstance(prompts, dict):
        raise InputError(path, "system_prompt", f"expected an object (agent -> prompt), got {_kind(prompts)}")
    subset = "hand" if "system_prompt" not in obj else "algorithm"
    parent = path.parent.name.lower()
    if "hand" in parent:
        subset = "hand"
    elif "algorithm" in parent:
        subset = "algorithm"
    qid = _text(obj, "question_ID", path, integers=True) or ""
    task = _text(obj, "question", path) or ""
    gt = _text(obj, "ground_truth", path, integers=True)
    level = _text(obj, "level", path, integers=True) or ""
    trace_id = f"whowhen-{subset}-{file_stem(path)}"
    label = _label(obj, path, len(steps), {s.agent for s in steps})
    # the benchmark's is_correct (false throughout); an ``outcome`` word, as chat logs give it, wins; neither: unknown,
    # which a label makes failed (Trace does that, for every format)
    outcome: Outcome = (parse_outcome(obj.get("outcome"), path) or parse_outcome(obj.get("is_correct"), path, "is_correct")
                        or "unknown")
    meta: dict[str, Any] = {"subset": subset, "question_id": qid, "level": level}
    if prompts is not None:
        meta["system_prompts"] = {str(k): _text(prompts, k, path, f"system_prompt.{k}") or "" for k in prompts}
    return Trace(
        id=trace_id,
        source_format="whowhen",
        task=task,
        outcome=outcome,
        ground_truth=gt,
        steps=tuple(steps),
        label=label,
        metadata=meta,
    )
