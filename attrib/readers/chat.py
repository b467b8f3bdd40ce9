"""Plain chat logs: a JSON list or JSON Lines of messages, or an object with a ``messages`` list.

Accepts the shapes AutoGen, Magentic-One and LangGraph write: ``{role, name, content}`` (OpenAI
style, ``tool_calls`` with ``function.name/arguments``, role ``tool`` with ``tool_call_id``),
``{source, type, content}`` (autogen-agentchat: ``TextMessage``, ``ToolCallRequestEvent`` with its
``FunctionCall`` list, ``ToolCallExecutionEvent`` with its results, ``ToolCallSummaryMessage``, ``HandoffMessage``
and its ``target``), ``{type: human|ai|tool, name, content, tool_calls:
[{name, args, id}]}`` (LangChain/LangGraph), also as LangChain serialises them (``messages_to_dict``'s
``{type, data}``, ``dumpd``'s ``{lc, id, kwargs}``), and plain logs such as ``{agent, content}`` or
``{speaker, text}`` lines. The agent of a step is ``name``, else ``source`` / ``sender`` / ``agent`` /
``speaker``, else the role; the text is ``content``, else ``text``. A tool message's parent is the step that
issued the call.

An object may carry trace fields beside ``messages``: ``id``, ``task``/``question``, ``outcome``,
``final_answer``, ``ground_truth``, and a label (``mistake_agent``, ``mistake_step``,
``mistake_reason``). JSON Lines whose lines each hold ``messages`` are one trace per line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attrib.errors import InputError
from attrib.readers._common import (
    activation_path,
    as_int,
    as_text,
    as_time,
    check_encoding,
    iter_jsonl,
    loads,
    looks_jsonl,
)
from attrib.trace import ActivationRef, Label, Step, ToolCall, ToolResult, Trace

#: autogen-agentchat message types (``{source, type, content}``) and the role each speaks in
_AGENTCHAT = {"TextMessage": "assistant", "MultiModalMessage": "assistant", "StopMessage": "assistant",
              "HandoffMessage": "assistant", "ToolCallSummaryMessage": "assistant", "ThoughtEvent": "assistant",
              "ToolCallRequestEvent": "assistant", "ToolCallExecutionEvent": "tool"}
_ROLE = {"human": "user", "ai": "assistant", "AIMessage": "assistant", "HumanMessage": "user",
         "ToolMessage": "tool", "SystemMessage": "system", "function": "tool", "FunctionMessage": "tool"}
#: Keys that name who spoke, in the order a message's agent is taken from them (role is the fallback).
_SPEAKER_KEYS = ("role", "name", "source", "sender", "agent", "speaker")
_TRACE_KEYS = ("messages", "chat_history", "conversation")


def _tool_calls(msg: dict[str, Any], path: Path, where: str, key: str = "tool_calls") -> tuple[ToolCall, ...]:
    """The calls in ``msg[key]``: OpenAI ``{id, function: {name, arguments}}``, LangChain ``{name, args, id}`` or
    autogen's ``FunctionCall`` ``{id, name, arguments}``."""
    raw = msg.get(key)
    if raw is None:
        fc = msg.get("function_call")  # legacy OpenAI
        raw = [{"function": fc}] if isinstance(fc, dict) else []
    if not isinstance(raw, list):
        raise InputError(path, f"{where}.{key}", f"expected a list, got {type(raw).__name__}")
    calls = []
    for j, c in enumerate(raw):
        if not isinstance(c, dict):
            raise InputError(path, f"{where}.{key}[{j}]", f"expected an object, got {type(c).__name__}")
        fn = c.get("function") if isinstance(c.get("function"), dict) else c
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            field = f"{where}.{key}[{j}]" + (".function.name" if fn is not c else ".name")
            raise InputError(path, field, "missing: a tool call needs a name")
        args = fn.get("arguments", fn.get("args", ""))
        cid = c.get("id")
        calls.append(ToolCall(name=name, arguments=as_text(args), id=None if cid is None else str(cid)))
    return tuple(calls)


def _execution_results(raw: list[Any], steps: list[Step], call_owner: dict[str, int], path: Path,
                       where: str) -> tuple[ToolResult, ...]:
    """autogen's ``FunctionExecutionResult`` list ``[{call_id, content, is_error, name}]`` as tool results, named
    after the call they answer when the result does not say."""
    out = []
    for j, r in enumerate(raw):
        if not isinstance(r, dict):
            raise InputError(path, f"{where}[{j}]", f"expected a function execution result, got {type(r).__name__}")
        cid = None if r.get("call_id") is None else str(r["call_id"])
        owner = call_owner.get(cid) if cid is not None else None
        name = r.get("name") or (next((c.name for c in steps[owner].tool_calls if c.id == cid), None)
                                 if owner is not None else None)
        out.append(ToolResult(content=as_text(r.get("content")), call_id=cid, name=None if name is None else str(name),
                              is_error=bool(r.get("is_error"))))
    return tuple(out)


def _unwrap_langchain(msg: dict[str, Any]) -> dict[str, Any]:
    """LangChain's serialised messages as plain ones: ``messages_to_dict``'s ``{type, data: {...}}`` and
    ``dumpd``'s ``{lc: 1, type: constructor, id: [..., "AIMessage"], kwargs: {...}}``."""
    if "content" in msg or "tool_calls" in msg:
        return msg
    if isinstance(msg.get("data"), dict) and isinstance(msg.get("type"), str):
        return {"type": msg["type"], **msg["data"]}
    if msg.get("lc") is not None and isinstance(msg.get("kwargs"), dict) and isinstance(msg.get("id"), list):
        cls = str(msg["id"][-1]) if msg["id"] else ""
        return {"type": msg["kwargs"].get("type") or cls.removesuffix("Chunk"), **msg["kwargs"]}
    return msg


def parse_messages(msgs: Any, path: Path, where: str = "messages") -> list[Step]:
    """Messages -> steps. Raises :class:`InputError` naming the message and field that is wrong."""
    if not isinstance(msgs, list):
        raise InputError(path, where, f"expected a list of messages, got {type(msgs).__name__}")
    if not msgs:
        raise InputError(path, where, "empty chat log: a trace needs at least one message")
    steps: list[Step] = []
    call_owner: dict[str, int] = {}
    for i, msg in enumerate(msgs):
        w = f"{where}[{i}]"
        if not isinstance(msg, dict):
            raise InputError(path, w, f"expected a message object, got {type(msg).__name__}")
        msg = _unwrap_langchain(msg)
        raw_role = msg.get("role", msg.get("type"))
        # an autogen-agentchat message (a role or type of another JSON kind is no such message: the checks below say so)
        kind = raw_role if "role" not in msg and isinstance(raw_role, str) and raw_role in _AGENTCHAT else None
        if kind is not None:
            role = "user" if msg.get("source") == "user" and _AGENTCHAT[kind] == "assistant" else _AGENTCHAT[kind]
        else:
            role = _ROLE.get(raw_role, raw_role) if isinstance(raw_role, str) else None
        agent = next((msg[k] for k in _SPEAKER_KEYS[1:] if msg.get(k)), None)
        if agent is not None and not isinstance(agent, str):
            raise InputError(path, f"{w}.name", f"expected a string, got {type(agent).__name__}")
        if "content" not in msg and "text" not in msg and not msg.get("tool_calls"):
            raise InputError(path, f"{w}.content", "missing: every message needs content (or tool_calls)")
        content = as_text(msg.get("content", msg.get("text")))
        calls = _tool_calls(msg, path, w)
        results: tuple[ToolResult, ...] = ()
        parents: tuple[int, ...] = ()
        if kind == "ToolCallRequestEvent" and isinstance(msg["content"], list):  # content: FunctionCalls
            calls, content = _tool_calls(msg, path, w, "content"), ""
        elif kind == "ToolCallExecutionEvent" and isinstance(msg["content"], list):  # FunctionExecutionResults
            results = _execution_results(msg["content"], steps, call_owner, path, f"{w}.content")
            parents = tuple(sorted({call_owner[r.call_id] for r in results if r.call_id in call_owner}))
            content = "\n".join(r.content for r in results)
        elif role == "tool":
            cid = msg.get("tool_call_id")
            cid = None if cid is None else str(cid)
            owner = call_owner.get(cid) if cid is not None else None
            tool_name = None
            if owner is not None:
                parents = (owner,)
                tool_name = next((c.name for c in steps[owner].tool_calls if c.id == cid), None)
            agent = agent or tool_name
            results = (ToolResult(content=content, call_id=cid, name=tool_name or agent,
                                  is_error=bool(msg.get("is_error") or msg.get("status") == "error"),),)
        if not agent:
            agent = role
        if not agent:
            raise InputError(path, f"{w}.name", "missing: every message needs a name, source or role")
        for c in calls:
            if c.id is not None:
                call_owner[c.id] = i
        usage = msg.get("models_usage") or msg.get("usage") or msg.get("usage_metadata") or {}
        if not isinstance(usage, dict):
            usage = {}
        act = msg.get("activation")
        ref = None
        if isinstance(act, dict) and isinstance(act.get("path"), str):
            p = Path(act["path"])
            hooks = act.get("hooks") if isinstance(act.get("hooks"), list) else []
            ref = ActivationRef(path=activation_path(act["path"], path.parent),
                                hooks=tuple(str(h) for h in hooks),
                                format=str(act.get("format") or p.suffix.lstrip(".") or "safetensors"))
        meta = {}
        if msg.get("name") and msg.get("role") and msg.get("role") != role:
            meta["raw_role"] = str(msg["role"])
        if kind is not None:
            meta["message_type"] = kind
            if kind == "HandoffMessage" and msg.get("target"):
                meta["handoff_target"] = str(msg["target"])
        steps.append(Step(
            index=i,
            agent=str(agent),
            role=str(role or "assistant"),
            content=content,
            tool_calls=calls,
            tool_results=results,
            parents=parents,
            start_time=as_time(msg.get("timestamp", msg.get("created_at"))),
            tokens_in=as_int(usage.get("prompt_tokens", usage.get("input_tokens"))),
            tokens_out=as_int(usage.get("completion_tokens", usage.get("output_tokens"))),
            activation=ref,
            metadata=meta,
        ))
    return steps


def _label(obj: dict[str, Any], path: Path, steps: list[Step]) -> Label | None:
    if "mistake_agent" not in obj and "mistake_step" not in obj:
        return None
    step = as_int(obj.get("mistake_step"))
    if step is None or not 0 <= step < len(steps):
        raise InputError(path, "mistake_step", f"expected a step index in 0..{len(steps) - 1}, "
                         f"got {obj.get('mistake_step')!r}")
    agent = obj.get("mistake_agent")
    return Label(mistake_agent=str(agent if agent is not None else steps[step].agent), mistake_step=step,
                 reason=as_text(obj.get("mistake_reason", "")))


def _trace(obj: dict[str, Any], path: Path, default_id: str, where: str = "") -> Trace:
    key = next((k for k in _TRACE_KEYS if k in obj), "messages")
    steps = parse_messages(obj.get(key), path, f"{where}{key}")
    outcome = obj.get("outcome")
    if outcome not in ("failed", "succeeded", "unknown"):
        ok = obj.get("is_correct", obj.get("success"))
        outcome = "succeeded" if ok is True else "failed" if ok is False else "unknown"
    label = _label(obj, path, steps)
    if label is not None and outcome == "unknown":
        outcome = "failed"
    tid = obj.get("id", obj.get("trace_id"))
    fa = obj.get("final_answer")
    gt = obj.get("ground_truth")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return Trace(
        id=str(tid) if isinstance(tid, str | int) and tid != "" else default_id,
        source_format="chat",
        steps=tuple(steps),
        task=as_text(obj.get("task", obj.get("question", ""))),
        outcome=outcome,
        final_answer=None if fa is None else as_text(fa),
        ground_truth=None if gt is None else as_text(gt),
        label=label,
        metadata=dict(meta),
    )


class ChatReader:
    """JSON list / JSON Lines / ``{"messages": [...]}`` chat logs."""

    name = "chat"

    def sniff(self, data: bytes, path: Path) -> float:
        head = data[:8192].lstrip()
        has_msg = b'"content"' in head or b'"text"' in head or b'"tool_calls"' in head
        if not has_msg:  # an object with an empty (or text-less) chat log: ours to say what is missing
            return 0.3 if head[:1] == b"{" and any(f'"{k}"'.encode() in head for k in _TRACE_KEYS) else 0.0
        speaker = any(f'"{k}"'.encode() in head for k in _SPEAKER_KEYS)
        if head[:1] == b"[" and (speaker or b'"type"' in head):
            return 0.6
        if head[:1] == b"{" and any(f'"{k}"'.encode() in head for k in _TRACE_KEYS):
            return 0.7
        if looks_jsonl(data) and speaker:
            return 0.6
        if path.suffix == ".jsonl" and head[:1] == b"{" and speaker:  # JSON Lines of a single message
            return 0.5
        return 0.0

    def read(self, data: bytes, path: Path) -> list[Trace]:
        data = check_encoding(data, path)
        stem = f"chat-{path.stem}"
        if looks_jsonl(data):
            lines = iter_jsonl(data, path)
            if lines and all(isinstance(v, dict) and any(k in v for k in _TRACE_KEYS) for _, v in lines):
                return [_trace(v, path, f"{stem}-{n}", f"line {n}: ") for n, v in lines]
            msgs = []
            for n, v in lines:
                if not isinstance(v, dict):
                    raise InputError(path, f"line {n}", f"expected a message object, got {type(v).__name__}")
                msgs.append(v)
            return [Trace(id=stem, source_format="chat", steps=tuple(parse_messages(msgs, path, "line")))]
        obj = loads(data, path)
        if isinstance(obj, list):
            return [Trace(id=stem, source_format="chat", steps=tuple(parse_messages(obj, path)))]
        if isinstance(obj, dict):
            if path.suffix == ".jsonl" and not any(k in obj for k in _TRACE_KEYS):  # JSON Lines holding one message
                return [Trace(id=stem, source_format="chat", steps=tuple(parse_messages([obj], path, "line")))]
            if not any(k in obj for k in _TRACE_KEYS):
                raise InputError(path, "messages", "missing: expected a list of messages or an object with 'messages'")
            return [_trace(obj, path, stem)]
        raise InputError(path, None, f"expected a JSON list of messages, got {type(obj).__name__}")
