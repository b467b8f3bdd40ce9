"""Who&When benchmark logs (ICML 2025): one failed run per JSON file.

Fields: ``question``, ``question_ID``, ``ground_truth``, ``history`` (list of ``{role, name,
content}``), ``mistake_agent``, ``mistake_step`` (0-based index into ``history``, a string),
``mistake_reason``, ``is_correct`` (a boolean, or a word as ``outcome`` takes it; ``outcome`` itself wins);
Algorithm-Generated logs also carry ``system_prompt`` (agent -> prompt),
Hand-Crafted (Magentic-One) logs carry agent names such as ``"Orchestrator (thought)"`` that
:func:`normalize_agent` folds onto one agent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from attrib.errors import InputError
from attrib.readers._common import check_encoding, loads
from attrib.trace import Label, Outcome, Step, Trace, parse_outcome

_ORCH = re.compile(r"^orchestrator\b", re.IGNORECASE)
_CANON = {"websurfer": "WebSurfer", "filesurfer": "FileSurfer", "orchestrator": "Orchestrator"}


def normalize_agent(name: str) -> str:
    """Fold Magentic-One display names onto agents: 'Orchestrator (-> WebSurfer)' -> 'Orchestrator'."""
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


def _label(obj: dict[str, Any], path: Path, n: int, agents: set[str]) -> Label | None:
    if "mistake_step" not in obj and "mistake_agent" not in obj:
        return None
    try:
        step = int(str(obj.get("mistake_step", "")).strip())
    except ValueError:
        raise InputError(path, "mistake_step", f"expected an integer, got {obj.get('mistake_step')!r}") from None
    if not 0 <= step < n:
        raise InputError(path, "mistake_step", f"{step} is outside the history (0..{n - 1})")
    raw = obj.get("mistake_agent")
    if not isinstance(raw, str) or not raw.strip():
        raise InputError(path, "mistake_agent", f"expected the mistaken agent's name, got {raw!r}")
    agent = normalize_agent(raw)
    if agent not in agents:
        raise InputError(path, "mistake_agent", f"{raw!r} is not an agent of this run ({', '.join(sorted(agents))})")
    return Label(mistake_agent=agent, mistake_step=step, reason=str(obj.get("mistake_reason", "")))


def parse_whowhen(obj: dict[str, Any], path: Path) -> Trace:
    history = obj.get("history")
    if history is None:
        raise InputError(path, "history", "missing required field (a list of {role, name, content})")
    if not isinstance(history, list):
        raise InputError(path, "history", f"expected a list, got {type(history).__name__}")
    if not history:
        raise InputError(path, "history", "empty: a trace needs at least one step")
    steps = []
    for i, msg in enumerate(history):
        if not isinstance(msg, dict):
            raise InputError(path, f"history[{i}]", f"expected an object, got {type(msg).__name__}")
        raw_name = msg.get("name") or msg.get("role")
        if not raw_name:
            raise InputError(path, f"history[{i}].name", "missing: every step needs an agent name or role")
        content = msg.get("content", "")
        if content is None:
            content = ""
        if not isinstance(content, str):
            content = orjson.dumps(content).decode()
        steps.append(
            Step(
                index=i,
                agent=normalize_agent(str(raw_name)),
                role=str(msg.get("role", "assistant")),
                content=content,
                metadata={"raw_name": str(raw_name)} if normalize_agent(str(raw_name)) != raw_name else {},
            )
        )
    subset = "hand" if "system_prompt" not in obj else "algorithm"
    parent = path.parent.name.lower()
    if "hand" in parent:
        subset = "hand"
    elif "algorithm" in parent:
        subset = "algorithm"
    qid = str(obj.get("question_ID", "") or "")
    trace_id = f"whowhen-{subset}-{path.stem}"
    label = _label(obj, path, len(steps), {s.agent for s in steps})
    # the benchmark's is_correct (false throughout); an ``outcome`` word, as chat logs give it, wins; neither: unknown,
    # which a label makes failed (Trace does that, for every format)
    outcome: Outcome = (parse_outcome(obj.get("outcome"), path) or parse_outcome(obj.get("is_correct"), path, "is_correct")
                        or "unknown")
    meta: dict[str, Any] = {"subset": subset, "question_id": qid, "level": str(obj.get("level", ""))}
    if isinstance(obj.get("system_prompt"), dict):
        meta["system_prompts"] = {str(k): str(v) for k, v in obj["system_prompt"].items()}
    return Trace(
        id=trace_id,
        source_format="whowhen",
        task=str(obj.get("question", "")),
        outcome=outcome,
        ground_truth=None if obj.get("ground_truth") is None else str(obj["ground_truth"]),
        steps=tuple(steps),
        label=label,
        metadata=meta,
    )
