"""Span records -> a :class:`~attrib.trace.Trace`: the GenAI and OpenInference conventions, one step per span.

See the package docstring (:mod:`attrib.readers.otlp`) for the mapping.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import orjson

from attrib.errors import InputError
from attrib.readers._common import (
    activation_path,
    as_int,
    as_text,
    file_stem,
    json_of,
    ref_format,
)
from attrib.readers.otlp.spans import SpanRecord, norm_id
from attrib.trace import ActivationRef, Label, Outcome, Step, ToolCall, ToolResult, Trace, parse_outcome


def _kind(a: dict[str, Any]) -> str:
    op = a.get("gen_ai.operation.name")
    if op is not None:
        if op in ("invoke_agent", "create_agent"):
            return "agent"
        if op == "execute_tool":
            return "tool"
        if op in ("chat", "text_completion", "generate_content"):
            return "llm"
    oi = a.get("openinference.span.kind")
    if isinstance(oi, str):
        oi = oi.upper()
        if oi == "AGENT":
            return "agent"
        if oi == "TOOL":
            return "tool"
        if oi == "LLM":
            return "llm"
        return oi.lower()
    tl = a.get("traceloop.span.kind")  # OpenLLMetry (Traceloop): workflow / task / agent / tool
    if isinstance(tl, str) and tl:
        return tl.lower()
    if "gen_ai.tool.name" in a:
        return "tool"
    if "gen_ai.agent.name" in a:
        return "agent"
    if "gen_ai.request.model" in a or "llm.model_name" in a:
        return "llm"
    return "span"


#: LangGraph node names that are a prebuilt agent's inner loop (``create_react_agent``'s ``agent``/``tools``,
#: ``create_agent``'s ``model``), not the agent itself: the enclosing node names the agent.
_GENERIC_NODES = frozenset({"agent", "tools", "model", "call_model", "__start__", "__end__"})


def _langgraph_agent(a: dict[str, Any]) -> str | None:
    """The LangGraph node a span ran in, from the run ``metadata`` OpenInference records (a JSON string with
    ``langgraph_checkpoint_ns`` = ``outer_node:task_id|inner_node:task_id``, and ``langgraph_node``): the innermost
    node that is not a prebuilt agent's inner loop, so ``research_expert|agent`` is ``research_expert``."""
    ns, node = a.get("metadata.langgraph_checkpoint_ns"), a.get("metadata.langgraph_node")  # metadata as a dict
    meta = a.get("metadata")
    if isinstance(meta, str) and "langgraph_" in meta:
        try:
            d = orjson.loads(meta)
        except orjson.JSONDecodeError:
            d = None
        if isinstance(d, dict):
            ns, node = d.get("langgraph_checkpoint_ns") or d.get("checkpoint_ns"), d.get("langgraph_node")
    names = [seg.split(":", 1)[0] for seg in ns.split("|") if seg] if isinstance(ns, str) else []
    if not names and isinstance(node, str) and node:
        names = [node]
    named = [n for n in names if n not in _GENERIC_NODES]
    return named[-1] if named else names[0] if names else None


def _managed_name(a: dict[str, Any], boss: dict[str, Any] | None) -> str | None:
    """smolagents names a managed agent only in its manager's ``smolagents.managed_agents.N.name``, and hands the
    agent its task as "You're a helpful agent named 'NAME'": the one listed name quoted in the task names it."""
    if not boss:
        return None
    task = a.get("smolagents.task") or a.get("input.value")
    if not isinstance(task, str):
        return None
    names = {str(v) for k, v in boss.items()
             if k.startswith("smolagents.managed_agents.") and k.endswith(".name") and v}
    hits = [n for n in names if f"'{n}'" in task]
    return hits[0] if len(hits) == 1 else None


def _own_agent(rec: SpanRecord, kind: str, boss: dict[str, Any] | None = None) -> str | None:
    """The agent a span itself names: ``gen_ai.agent.name`` / ``agent.name``, else its LangGraph node, else (an
    agent span) OpenLLMetry's ``traceloop.entity.name``, a smolagents managed agent's name or the span name
    (``invoke_agent X``, ``X.run`` -> ``X``). ``boss``: the attributes of the enclosing agent span."""
    a = rec.attrs
    name = a.get("gen_ai.agent.name") or a.get("agent.name") or _langgraph_agent(a)
    if name:
        return str(name)
    if kind == "agent":
        if a.get("traceloop.entity.name"):
            return str(a["traceloop.entity.name"])
        managed = _managed_name(a, boss)
        if managed:
            return managed
        return _agent_span_name(rec.name)
    return None


def _agent_span_name(n: str) -> str | None:
    """The agent an agent span's name names: ``invoke_agent X`` (GenAI) -> ``X``; smolagents' ``X.run`` -> ``X``
    (OpenInference names the span after the agent's ``name``, else its class: ``CodeAgent.run``), never the method."""
    if n.startswith("invoke_agent "):
        return n[len("invoke_agent "):] or None
    return n.removesuffix(".run") or n or None


def _genai_messages(v: Any) -> tuple[str, list[ToolCall]]:
    """Text and tool calls of ``gen_ai.output.messages`` (a JSON list of {role, parts})."""
    msgs = json_of(v, list) or []
    texts: list[str] = []
    calls: list[ToolCall] = []
    for m in msgs:
        if not isinstance(m, dict):
            continue
        parts = m.get("parts")
        if not isinstance(parts, list):
            if m.get("content") is not None:
                texts.append(as_text(m.get("content")))
            continue
        for p in parts:
            if not isinstance(p, dict):
                continue
            t = p.get("type")
            if t == "text" and p.get("content") is not None:
                texts.append(as_text(p.get("content")))
            elif t == "tool_call":
                args = p.get("arguments")
                calls.append(ToolCall(name=str(p.get("name") or ""),
                                      arguments=args if isinstance(args, str) else as_text(args),
                                      id=None if p.get("id") is None else str(p.get("id"))))
    return "\n".join(texts), calls


def _indexed_messages(a: dict[str, Any], base: str) -> tuple[str, list[ToolCall]]:
    """Text and tool calls of OpenInference ``llm.output_messages.N.message.*`` (or OpenLLMetry
    ``gen_ai.completion.N.*``) flattened attributes."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    oi = base.startswith("llm.")
    i = 0
    while True:
        p = f"{base}.{i}.message." if oi else f"{base}.{i}."
        c = a.get(p + "content")
        if c is None and oi:
            c = _oi_contents(a, p)
        has_any = c is not None or (p + "role") in a or (p + "tool_calls.0.tool_call.function.name") in a \
            or (p + "tool_calls.0.name") in a
        if not has_any:
            break
        if c is not None:
            texts.append(as_text(c))
        j = 0
        while True:
            q = f"{p}tool_calls.{j}.tool_call." if oi else f"{p}tool_calls.{j}."
            name = a.get(q + "function.name") if oi else a.get(q + "name")
            if name is None:
                break
            args = a.get(q + "function.arguments") if oi else a.get(q + "arguments")
            cid = a.get(q + "id")
            calls.append(ToolCall(name=str(name), arguments=as_text(args), id=None if cid is None else str(cid)))
            j += 1
        i += 1
    return "\n".join(texts), calls


def _oi_contents(a: dict[str, Any], p: str) -> str | None:
    """A message's ``message.contents.K.message_content.*`` parts (multi-part content: Anthropic via LangChain,
    smolagents >= 1.x) as one text; images as ``<image>``. None when the message has no such parts."""
    out: list[str] = []
    k = 0
    while True:
        q = f"{p}contents.{k}.message_content."
        text, typ = a.get(q + "text"), a.get(q + "type")
        if text is None and typ is None:
            break
        if text is not None:
            out.append(as_text(text))
        elif typ == "image" or q + "image.image.url" in a:
            out.append("<image>")
        k += 1
    return "\n".join(out) if k else None


def _llm_output(a: dict[str, Any]) -> tuple[str, list[ToolCall]]:
    text = ""
    calls: list[ToolCall] = []
    if any(k in a for k in ("llm.output_messages.0.message.content", "llm.output_messages.0.message.role",
                            "llm.output_messages.0.message.contents.0.message_content.text")):
        text, calls = _indexed_messages(a, "llm.output_messages")
    elif "gen_ai.output.messages" in a:
        text, calls = _genai_messages(a["gen_ai.output.messages"])
    elif "gen_ai.completion.0.content" in a or "gen_ai.completion.0.role" in a:
        text, calls = _indexed_messages(a, "gen_ai.completion")
    elif "gen_ai.completion" in a:
        text, calls = _genai_messages(a["gen_ai.completion"])
    if not text and not calls:  # no structured messages (or empty ones): the span's output
        text = _value_text(a.get("output.value"), "output")
    return text, calls


#: Keys of a JSON input / output object that hold the text itself (``{"task": ...}`` of a smolagents run,
#: ``{"input": ...}`` of a LangChain chain, ``{"content": ...}`` of a serialised chat message)
_IN_KEYS = ("task", "input", "question", "query", "prompt")
_OUT_KEYS = ("output", "answer", "final_answer", "content", "result")


def _json_object(v: Any) -> dict[str, Any] | None:
    """``v`` as the JSON object it holds (``input.value`` / ``output.value`` are JSON text), else None."""
    if not isinstance(v, str) or v[:1] != "{":
        return None
    try:
        d = orjson.loads(v)
    except orjson.JSONDecodeError:
        return None
    return d if isinstance(d, dict) else None


def _value_text(v: Any, side: str) -> str:
    """``input.value`` / ``output.value`` as the text a reader wants: a JSON object's text field (or, for
    ``{"messages": [...]}``, the first user message in / the last assistant message out); else the value as-is."""
    d = _json_object(v)
    if d is None:
        return as_text(v)
    msgs = d.get("messages")
    if isinstance(msgs, list) and msgs:
        want = ("user", "human") if side == "input" else ("assistant", "ai")
        seq = msgs if side == "input" else reversed(msgs)
        for m in seq:
            if isinstance(m, dict) and (m.get("role") or m.get("type")) in want and m.get("content"):
                return as_text(m.get("content"))
        return v
    for k in _IN_KEYS if side == "input" else _OUT_KEYS:
        x = d.get(k)
        if isinstance(x, str) and x.strip():
            return x
    return v


def _is_state(v: Any) -> bool:
    """A LangGraph state as OpenInference records a graph's or node's output: ``{"messages": [...], ...}``."""
    d = _json_object(v)
    return d is not None and isinstance(d.get("messages"), list)


def _first_user_input(a: dict[str, Any]) -> str:
    v = a.get("input.value")
    if isinstance(v, str):
        return _value_text(v, "input")
    v = a.get("traceloop.entity.input")
    if v is not None:
        return _value_text(_traceloop_value(v), "input")
    i = 0
    while f"llm.input_messages.{i}.message.role" in a:
        if a.get(f"llm.input_messages.{i}.message.role") == "user":
            p = f"llm.input_messages.{i}.message."
            c = a.get(p + "content")
            return as_text(c) if c is not None else _oi_contents(a, p) or ""
        i += 1
    msgs = json_of(a.get("gen_ai.input.messages"), list) or []
    for m in msgs:
        if isinstance(m, dict) and m.get("role") == "user":
            parts = m.get("parts")
            if isinstance(parts, list):
                return "\n".join(as_text(p.get("content")) for p in parts if isinstance(p, dict))
            return as_text(m.get("content"))
    i = 0  # OpenLLMetry: gen_ai.prompt.N.role / .content
    while f"gen_ai.prompt.{i}.role" in a or f"gen_ai.prompt.{i}.content" in a:
        if a.get(f"gen_ai.prompt.{i}.role", "user") == "user" and a.get(f"gen_ai.prompt.{i}.content") is not None:
            return as_text(a[f"gen_ai.prompt.{i}.content"])
        i += 1
    return ""


def _traceloop_value(v: Any) -> Any:
    """OpenLLMetry's ``traceloop.entity.input`` / ``.output``: JSON of the value, and an input is the call's
    ``{"args": [...], "kwargs": {...}}``: its one positional argument (as text when it is a string) when it has no
    keyword ones, its keyword arguments (JSON) when it has no positional ones; else the JSON as written."""
    if not isinstance(v, str):
        return v
    try:
        x = orjson.loads(v)
    except orjson.JSONDecodeError:
        return v
    if isinstance(x, dict) and x and set(x) <= {"args", "kwargs"}:
        args, kwargs = x.get("args") or [], x.get("kwargs") or {}
        if isinstance(args, list) and isinstance(kwargs, dict):
            if len(args) == 1 and not kwargs:
                return args[0] if isinstance(args[0], str) else as_text(args[0])
            if not args:
                return as_text(kwargs)
    return x if isinstance(x, str) else v


def _has_input(a: dict[str, Any]) -> bool:
    """Whether a span records what it was handed: ``input.value``, OpenLLMetry's entity input, GenAI input
    messages (attributes, or the message events :mod:`.spans` reads as them)."""
    return (a.get("input.value") is not None or a.get("traceloop.entity.input") is not None
            or a.get("gen_ai.input.messages") is not None)


def _output_value(a: dict[str, Any]) -> Any:
    """What a span produced: ``output.value``, else the text of its GenAI output messages (an ``invoke_agent``
    span's answer), else OpenLLMetry's entity output; None when it records none."""
    v = a.get("output.value")
    if v is not None:
        return v
    if a.get("gen_ai.output.messages") is not None:
        text, _ = _genai_messages(a["gen_ai.output.messages"])
        if text:
            return text
    v = a.get("traceloop.entity.output")
    return None if v is None else _traceloop_value(v)


_ROLE = {"agent": "agent", "tool": "tool", "llm": "assistant"}


def _io(a: dict[str, Any], side: str) -> Any:
    """A span's ``input.value`` / ``output.value``, else OpenLLMetry's ``traceloop.entity.input`` / ``.output``,
    else what its Patronus function log recorded (see :func:`_function_log`): the arguments it was called with,
    what it returned."""
    v = a.get(f"{side}.value")
    if v is not None:
        return v
    v = a.get(f"traceloop.entity.{side}")
    if v is not None:
        return _traceloop_value(v)
    return a.get("function.arguments" if side == "input" else "function.output")


#: Token-count attributes: GenAI's ``gen_ai.usage.*`` (and its older ``prompt_tokens`` / ``completion_tokens``,
#: which OpenLLMetry writes), OpenInference's ``llm.token_count.*``
_TOKENS_IN = ("gen_ai.usage.input_tokens", "llm.token_count.prompt", "gen_ai.usage.prompt_tokens")
_TOKENS_OUT = ("gen_ai.usage.output_tokens", "llm.token_count.completion", "gen_ai.usage.completion_tokens")


def _tokens(a: dict[str, Any]) -> tuple[int | None, int | None]:
    """A span's (input, output) token counts, each None when it reports none."""
    def first(keys: tuple[str, ...]) -> int | None:
        return next((as_int(a[k]) for k in keys if a.get(k) is not None), None)

    return first(_TOKENS_IN), first(_TOKENS_OUT)


def _rolled_up(recs: list[SpanRecord], by_id: dict[str, SpanRecord], usage: dict[str, tuple[int | None, int | None]]) -> set[str]:
    """The spans some descendant of which reports token counts (``usage``, by span id): their own counts are totals
    over that subtree (smolagents' ``X.run`` AGENT span, a GenAI ``invoke_agent`` span: the whole run's usage), not
    tokens of their own."""
    out: set[str] = set()
    for r in recs:
        if usage[r.span_id] == (None, None):
            continue
        p = r.parent_id
        while p and p not in out and p in by_id:
            out.add(p)
            p = by_id[p].parent_id
    return out


def _step(idx: int, rec: SpanRecord, kind: str, agent: str, parent: int | None, path: Path, has_children: bool,
          tokens: tuple[int | None, int | None], rolled_up: bool, tasks: dict[str, str], container: bool = False) -> Step:
    """One span's step. Tokens are the step's own: an LLM span's usage (``tokens``); a span whose descendants report
    usage (``rolled_up``) repeats their sum in its own counts, so those go to ``metadata`` as ``tokens_in_total`` /
    ``tokens_out_total`` and summing ``tokens_in`` over the steps counts every call once. ``tasks`` (span id -> task)
    gets the task of a span whose step shows the task it was handed."""
    a = rec.attrs
    base_dir = (rec.source or path).parent
    own = a.get("attrib.step_json")
    if isinstance(own, str):  # attrib's own export of a run from another format carries each step verbatim
        try:
            step = msgspec.json.decode(own, type=Step)
        except msgspec.DecodeError as e:  # malformed or mistyped
            raise InputError(path, f"{rec.where}.attributes[attrib.step_json]", str(e)) from None
        return msgspec.structs.replace(step, index=idx)  # verbatim: the span ids are derived from the step again
    calls: list[ToolCall] = []
    results: tuple[ToolResult, ...] = ()
    # an agent span handed a task, or a LangGraph graph or node span whose output is the {"messages": [...]} state its
    # children wrote: the step shows the task it received (the output, the children's work, goes to metadata)
    handed = has_children and (kind == "agent" or container) and _has_input(a)
    state = has_children and kind != "llm" and not handed and _is_state(a.get("output.value"))
    if kind == "llm":
        content, calls = _llm_output(a)
    elif kind == "tool":
        name = str(a.get("gen_ai.tool.name") or a.get("tool.name")
                   or (a.get("traceloop.entity.name") if a.get("traceloop.span.kind") == "tool" else None)
                   or rec.name.removeprefix("execute_tool "))
        # the call id: GenAI's gen_ai.tool.call.id; OpenInference's tool_call.id / tool.id (the call it answers)
        cid = next((a[k] for k in ("gen_ai.tool.call.id", "tool_call.id", "tool.id") if a.get(k) is not None), None)
        cid = None if cid is None else str(cid)
        # the arguments it was called with (OpenInference's tool.parameters is the tool's parameter schema, not them)
        args = a.get("gen_ai.tool.call.arguments", _io(a, "input"))
        out = a.get("gen_ai.tool.call.result", _io(a, "output"))
        content = as_text(out) if out is not None else (rec.error or "")
        calls = [ToolCall(name=name, arguments=as_text(args), id=cid)]
        results = (ToolResult(content=content, call_id=cid, name=name, is_error=rec.error is not None),)
    elif handed or state:
        content = tasks[rec.span_id] = _first_user_input(a)
    elif container:  # a run's root with no input of its own: its output is the run's final answer, not its step
        content = ""
    else:
        out = _io(a, "output")
        content = as_text(out if out is not None else _output_value(a))
    if not content and rec.error is not None and not (has_children and (kind == "agent" or container)):
        # a failed span with no output: what went wrong is what it said. Not an agent span (nor a run's root) with
        # children: its status, set at its end, is the outcome of the work it handed down (the run's, on the root),
        # not something it said when it began
        content = rec.error
    meta: dict[str, Any] = {"span_id": rec.span_id, "span_name": rec.name, "kind": kind}
    if kind != "llm":
        inp = _io(a, "input")
        if inp is not None:
            meta["input"] = as_text(inp)
        if kind == "agent" or state or container:
            out = _output_value(a)
            if out is not None:
                meta["output"] = as_text(out)
    model = a.get("gen_ai.request.model") or a.get("llm.model_name")
    if model:
        meta["model"] = str(model)
    if rec.error is not None:
        meta["error"] = rec.error
    if rec.note is not None:  # an exception the span recovered from (its status is not ERROR): shown, not a failure
        meta["exception"] = rec.note
    tin, tout = tokens
    if rolled_up:  # totals over the children's calls (which carry their own counts), not this span's
        if tin is not None:
            meta["tokens_in_total"] = tin
        if tout is not None:
            meta["tokens_out_total"] = tout
        tin = tout = None
    act = None
    ap = a.get("attrib.activation.path")
    if isinstance(ap, str) and ap:
        hooks = a.get("attrib.activation.hooks") or ()
        act = ActivationRef(path=activation_path(ap, base_dir, rec.source or path,
                                              f"{rec.where}.attributes[attrib.activation.path]"),
                            hooks=tuple(str(h) for h in hooks) if isinstance(hooks, list) else (),
                            format=ref_format(a.get("attrib.activation.format"), ap))
    return Step(
        index=idx,
        agent=agent,
        role=_ROLE.get(kind, kind),
        content=content,
        tool_calls=tuple(calls),
        tool_results=results,
        parents=() if parent is None else (parent,),
        start_time=rec.start / 1e9 if rec.start else None,
        end_time=rec.end / 1e9 if rec.end else None,
        tokens_in=tin,
        tokens_out=tout,
        activation=act,
        metadata=meta,
    )


def build_trace(trace_id: str, recs: list[SpanRecord], path: Path, source_format: str = "otlp") -> Trace:
    """Turn the spans of one trace into a time-ordered :class:`Trace` with parent links.

    A span whose parent is not among ``recs`` (a remote parent, from the caller's W3C ``traceparent``; a span lost on
    the way; a trace split over files read apart) starts a subtree of its own, as trace viewers show it: the trace
    is partial, and says so in ``metadata`` (``partial``, ``missing_parents``: the absent ids, ``remote_parents``:
    those the spans' ``flags`` mark remote). A span that is its own parent, or a cycle, is an error."""
    by_id: dict[str, SpanRecord] = {}
    for r in recs:
        if not r.span_id:
            raise InputError(r.source or path, f"{r.where}.{r.id_key}", "missing: every span needs an id")
        if r.span_id in by_id:
            raise InputError(r.source or path, f"{r.where}.{r.id_key}",
                             f"duplicate span id {r.span_id!r} in trace {trace_id}")
        by_id[r.span_id] = r
    children: dict[str, list[SpanRecord]] = {}
    roots: list[SpanRecord] = []
    missing: dict[str, bool] = {}  # absent parent id -> some span marks it remote
    for r in recs:
        p = r.parent_id
        if p == r.span_id:
            raise InputError(r.source or path, f"{r.where}.{r.parent_key}", f"span {p} is its own parent")
        if p and p in by_id:
            children.setdefault(p, []).append(r)
        else:
            if p:
                missing[p] = missing.get(p, False) or r.remote
            roots.append(r)
    # depth-first walk in file order: depth, effective start (a child never sorts before its parent), kind, agent;
    # a span's agent is its own (see _own_agent), else the nearest enclosing span's that names one, else (outside
    # every agent) the service, else the root span's name, so a run's harness spans are one pseudo-agent
    info: dict[str, tuple[int, int, str, str | None]] = {}
    containers: set[str] = set()  # root spans that name no agent and only contain the run (see the loop below)
    order: list[tuple[int, int, SpanRecord]] = []
    outermost: list[SpanRecord] = []  # agent spans inside no other agent span: the run's top agent(s)
    stack: list[tuple[SpanRecord, int, int, str | None, dict[str, Any] | None, str]] = [
        (r, 0, r.start, None, None, r.name) for r in reversed(roots)]
    n = 0
    while stack:
        r, depth, eff, enclosing, boss, root_name = stack.pop()
        kind = _kind(r.attrs)
        own = _own_agent(r, kind, boss)
        agent = own or enclosing
        if kind == "agent" and boss is None:
            outermost.append(r)
        if depth == 0 and agent is None and kind not in ("llm", "tool") and children.get(r.span_id):
            # the run's own root span (a harness or workflow invoking the agents, naming none): its step shows the
            # request it was handed, not the run's final output (which would put the answer at step 0)
            containers.add(r.span_id)
        info[r.span_id] = (depth, eff, kind, agent or _service_agent(r.service) or root_name)
        order.append((eff, n, r))
        n += 1
        sub_boss = r.attrs if kind == "agent" else boss
        for c in reversed(children.get(r.span_id, ())):
            stack.append((c, depth + 1, max(c.start, eff), agent, sub_boss, root_name))
    if len(info) != len(by_id):
        stuck = next(r for r in recs if r.span_id not in info)
        raise InputError(stuck.source or path, f"{stuck.where}.{stuck.parent_key}",
                         f"span {stuck.span_id} is part of a parent cycle")
    # time order; ties (and spans without times) in tree order, i.e. depth-first preorder in file order
    order.sort(key=lambda t: (t[0], t[1]))
    index = {t[2].span_id: i for i, t in enumerate(order)}
    usage = {r.span_id: _tokens(r.attrs) for r in recs}
    rolled = _rolled_up(recs, by_id, usage)
    steps = []
    tasks: dict[str, str] = {}  # span id -> the task an agent (or state) span was handed, which its step shows
    for i, (_, _, r) in enumerate(order):
        _, _, kind, agent = info[r.span_id]
        steps.append(_step(i, r, kind, agent or r.name or "unknown", index.get(r.parent_id) if r.parent_id else None,
                           path, r.span_id in children, usage[r.span_id], r.span_id in rolled, tasks,
                           container=r.span_id in containers))
    _link_tool_results(steps)
    # the run's root: the first span with no parent; in a partial trace without one, the first span whose parent is
    # absent (whose status speaks for the run only when it is the one such span: one service's part of the trace)
    root = next((r for _, _, r in order if not r.parent_id), order[0][2])
    speaks = not root.parent_id or len(roots) == 1
    ra = root.attrs
    run = ra.get("attrib.run_json")
    if isinstance(run, str):  # attrib's own export: the run's fields verbatim (steps are in their spans)
        try:
            t = msgspec.json.decode(run, type=Trace)
        except msgspec.DecodeError as e:  # malformed or mistyped
            raise InputError(path, f"{root.where}.attributes[attrib.run_json]", str(e)) from None
        return msgspec.structs.replace(t, steps=tuple(steps))  # verbatim, so the same content hash
    # the outcome the root states (a word it does not know is an error); else its ERROR status means failed, an OK
    # status (the application's own verdict) succeeded; a label makes an unknown outcome failed (Trace does that,
    # for every format)
    given = parse_outcome(ra.get("attrib.outcome"), root.source or path, f"{root.where}.attributes[attrib.outcome]")
    status: Outcome = "unknown"
    if speaks and root.error is not None:
        status = "failed"
    elif speaks and root.ok and not _instrumentation_ok(root):
        status = "succeeded"
    outcome: Outcome = given or status
    label = _label(ra, index, root.source or path, len(steps), root.where)
    # the root's output, else the top agent's (one agent span holding all the others, below a harness root),
    # else the last word of a non-tool step (never the task an agent span was handed)
    top = _output_value(outermost[0].attrs) if len(outermost) == 1 else None
    final = _value_text(_output_value(ra), "output") or _value_text(top, "output") or next(
        (o for s, (_, _, r) in zip(reversed(steps), reversed(order), strict=True)
         if s.role != "tool" and (o := _output(s, r, info[r.span_id][2], children))), None)
    # the root's input, else the first agent span's task (TRAIL: a harness root with no input of its own)
    def handed(r: SpanRecord) -> str:  # the task a span was handed, parsed again only where its step does not show it
        return tasks[r.span_id] if r.span_id in tasks else _first_user_input(r.attrs)

    task = as_text(ra.get("attrib.task")) or handed(root) or next(
        (task_text for _, _, r in order if info[r.span_id][2] == "agent" and (task_text := handed(r))), "")
    gt = ra.get("attrib.ground_truth")
    partial: dict[str, Any] = {}
    if missing:
        partial = {"partial": True, "missing_parents": sorted(missing)}
        if any(missing.values()):
            partial["remote_parents"] = sorted(p for p, remote in missing.items() if remote)
    return Trace(
        id=str(ra.get("attrib.trace_id") or trace_id),
        source_format=source_format,
        steps=tuple(steps),
        task=task,
        outcome=outcome,
        final_answer=final or None,
        ground_truth=None if gt is None else as_text(gt),
        label=label,
        metadata={"trace_id": trace_id, "n_spans": len(steps), "service": root.service,
                  # re-runs of one task share it: cross-validation keeps them on one side of every split
                  **({"question_id": as_text(qid)} if (qid := ra.get("attrib.question_id")) not in (None, "") else {}),
                  **partial},
    )


#: Tracer scopes of instrumentation libraries, which set OK on a span that did not raise (OpenInference, OpenLLMetry's
#: ``traceloop.sdk`` and ``opentelemetry.instrumentation.*``, OpenLIT): an OK there means "no exception", not "right".
_INSTRUMENTATION_SCOPES = ("openinference.", "opentelemetry.instrumentation.", "traceloop", "openlit")


def _instrumentation_ok(root: SpanRecord) -> bool:
    """Whether an OK status is an instrumentation's default rather than the application's verdict: instrumentation
    libraries set OK on every span that did not raise (the trace API reserves OK for the application developer's
    own "validated as successful"), so it says nothing about the run's answer; a root span of the application's
    own tracer with OK is its verdict."""
    return (root.scope.startswith(_INSTRUMENTATION_SCOPES) or "openinference.span.kind" in root.attrs
            or any(k.startswith("traceloop.") for k in root.attrs))


def _service_agent(service: str) -> str:
    """A service name that can stand for an agent: not the SDK's ``unknown_service`` default, nor a container id
    (TRAIL's ``service_name`` is the docker hostname, 12 hex digits)."""
    if not service or service.startswith("unknown_service") or _HEX_ID.fullmatch(service):
        return ""
    return service


_HEX_ID = re.compile(r"[0-9a-f]{12,64}")


def _link_tool_results(steps: list[Step]) -> None:
    """Give a tool step that names no call id the id of the call it answers: the same agent's most recent LLM
    step requested a call of that tool (OpenInference tool spans carry the name only; the LLM span has the id).
    Calls are answered in order; an agent's next LLM step closes its open calls. In place."""
    open_calls: dict[str, list[tuple[int, ToolCall]]] = {}
    taken = {r.call_id for s in steps for r in s.tool_results if r.call_id is not None}
    for i, s in enumerate(steps):
        if s.role == "assistant" and s.metadata.get("kind") == "llm":
            open_calls[s.agent] = [(i, c) for c in s.tool_calls if c.id is not None and c.id not in taken]
        elif s.role == "tool" and len(s.tool_results) == 1 and s.tool_results[0].call_id is None:
            pending = open_calls.get(s.agent) or []
            j = next((k for k, (_, c) in enumerate(pending) if c.name == s.tool_results[0].name), None)
            if j is None:
                continue
            at, call = pending.pop(j)
            res = msgspec.structs.replace(s.tool_results[0], call_id=call.id)
            calls = tuple(msgspec.structs.replace(c, id=call.id) if c.id is None else c for c in s.tool_calls)
            steps[i] = msgspec.structs.replace(s, tool_calls=calls, tool_results=(res,),
                                               metadata={**s.metadata, "call_step": at})


def _output(step: Step, rec: SpanRecord, kind: str, children: dict[str, list[SpanRecord]]) -> str:
    """What a span produced: an agent (or LangGraph state) span with children keeps its task as content, so only
    its output counts."""
    if rec.span_id in children and (kind == "agent" or "output" in step.metadata):
        return _value_text(step.metadata.get("output"), "output")
    return step.content


def _label(a: dict[str, Any], index: dict[str, int], path: Path, n: int, where: str) -> Label | None:
    agent = a.get("attrib.label.mistake_agent")
    if agent is None:
        if a.get("attrib.label.mistake_step") is not None or a.get("attrib.label.mistake_span_id") is not None:
            raise InputError(path, f"{where}.attributes[attrib.label.mistake_agent]",
                             "missing: a label names the mistaken agent as well as the step")
        return None
    sid = a.get("attrib.label.mistake_span_id")
    step: int | None
    if sid is not None:
        if norm_id(str(sid)) not in index:
            raise InputError(path, f"{where}.attributes[attrib.label.mistake_span_id]",
                             f"span {sid} is not in this trace")
        step = index[norm_id(str(sid))]
    else:
        step = as_int(a.get("attrib.label.mistake_step"))
        if step is None or not 0 <= step < n:
            raise InputError(path, f"{where}.attributes[attrib.label.mistake_step]",
                             f"expected a step index in 0..{n - 1}, got {a.get('attrib.label.mistake_step')!r}")
    return Label(mistake_agent=str(agent), mistake_step=step, reason=as_text(a.get("attrib.label.reason")))


def run_groups(recs: list[SpanRecord], path: Path) -> dict[str, list[SpanRecord]]:
    """One file's span records by trace id (a span without one: the file's stem), in file order, less attrib's own
    verdict spans: they annotate a run and are never its steps. A trace of verdicts alone is the verdict on a run read
    from OTLP, which `attrib analyze --otlp` writes in the run's own trace without its spans: in a file of several
    runs it is passed over, so the runs the file does hold read back. An error for a file with no spans, or with
    verdicts only."""
    if not recs:
        raise InputError(path, "spans", "empty: no spans in the file")
    _check_trace_ids(recs, path)
    groups: dict[str, list[SpanRecord]] = {}
    for r in recs:
        if r.name != "attrib.attribution":
            groups.setdefault(r.trace_id or file_stem(path), []).append(r)
    if not groups:
        raise InputError(path, "spans", "holds only attrib verdicts (attrib.attribution spans), no run to analyze")
    return groups


def _check_trace_ids(recs: list[SpanRecord], path: Path) -> None:
    """Refuse a span whose parent the file holds under another trace id only: a parent and its child share their
    trace (a link may cross traces, a parent never), so the span's trace id is wrong, and read as is it would make a
    trace of its own, and errors about the runs it splits. Ids may repeat across traces (flat span lists number their
    spans), so a parent that the span's own trace holds too is no mismatch."""
    own = {(r.trace_id, r.span_id) for r in recs}
    if len({t for t, _ in own}) < 2:  # one trace (or none named): nothing to mismatch
        return
    by_span: dict[str, SpanRecord] = {}
    for r in recs:
        by_span.setdefault(r.span_id, r)
    for r in recs:
        p = r.parent_id
        if p and (r.trace_id, p) not in own and p in by_span:
            parent = by_span[p]
            field = f"{r.where}.{r.trace_key}" if r.trace_key else r.where
            what = repr(r.trace_id) if r.trace_key else f"no trace id (so {r.trace_id!r}, the file's)"
            raise InputError(r.source or path, field, f"{what} is not the trace of its parent span {p} "
                             f"({parent.where}, trace {parent.trace_id}): a span and its parent share their trace id")


def traces_from_records(recs: list[SpanRecord], path: Path, source_format: str) -> list[Trace]:
    return [build_trace(tid, rs, path, source_format) for tid, rs in run_groups(recs, path).items()]


