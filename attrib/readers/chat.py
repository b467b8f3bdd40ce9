"""Plain chat logs: a JSON list or JSON Lines of messages, or an object with a ``messages`` list.

Accepts the shapes AutoGen, Magentic-One and LangGraph write: ``{role, name, content}`` (OpenAI
style, ``tool_calls`` with ``function.name/arguments``, role ``tool`` with ``tool_call_id``; AutoGen 0.2's executor
message with ``tool_responses`` ``[{tool_call_id, content}]``),
``{source, type, content}`` (autogen-agentchat: ``TextMessage``, ``ToolCallRequestEvent`` with its
``FunctionCall`` list, ``ToolCallExecutionEvent`` with its results, ``ToolCallSummaryMessage``, ``HandoffMessage``
and its ``target``, ``CodeGenerationEvent`` / ``CodeExecutionEvent``, ``MultiModalMessage``, ``StructuredMessage``),
autogen-core's LLM context (``SystemMessage``, ``UserMessage``, ``AssistantMessage`` whose FunctionCall list is its
tool calls, ``FunctionExecutionResultMessage`` with the results),
Magentic-One's ``log.jsonl`` (``{source, type, message}``; ``Orchestrator (thought)`` and the like are one
``Orchestrator``; a ``WebSurferEvent``'s action is a tool call; ``LLMCallEvent`` token counts go to the next step),
``{type: human|ai|tool, name, content, tool_calls:
[{name, args, id}]}`` (LangChain/LangGraph; before 0.2 the calls only in ``additional_kwargs``), also as
LangChain serialises them (``messages_to_dict``'s ``{type, data}``, ``dumpd``'s ``{lc, id, kwargs}``), and plain
logs such as ``{agent, content}`` or ``{speaker, text}`` lines. The agent of a step is ``name``, else ``source`` /
``sender`` / ``agent`` / ``speaker``, else the role; the text is ``content``, else ``text``, else ``message``
(content parts joined: text, Anthropic thinking; images as ``<image>``; a ``tool_use`` block the message's
``tool_calls`` hold is left out). A tool message's parent is the step that issued the call. Without a ``task``,
the task is the first user message.

An object may carry trace fields beside ``messages``: ``id``, ``task``/``question``, ``outcome``,
``final_answer``, ``ground_truth``, and a label (``mistake_agent``, ``mistake_step``,
``mistake_reason``). ``outcome`` takes the words of :data:`attrib.trace.OUTCOME_WORDS` in any case (``success``,
``failure``, ...; else ``is_correct`` or ``success``, booleans); any other value is an error naming the field.
JSON Lines whose lines each hold ``messages`` are one trace per line.

Values are checked, not converted: a message's text is a string or a list of content parts (an object only for an
AutoGen ``StructuredMessage`` or custom type, read as its JSON; ``result`` only for a ``CodeExecutionEvent``; an
OpenAI ``refusal``), null only beside tool calls; who spoke is a string; a ``timestamp`` / ``created_at`` is a number
(s, ms or ns) or ISO-8601 text in 1970..3000. Anything else is an error naming the message and the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from attrib.errors import InputError
from attrib.readers._common import (
    activation_path,
    as_int,
    as_text,
    as_time,
    check_encoding,
    file_stem,
    iter_jsonl,
    json_kind,
    json_text,
    loads,
    looks_jsonl,
    ref_format,
)
from attrib.readers.otlp.spans import MAX_NANOS
from attrib.readers.whowhen import normalize_agent
from attrib.trace import ActivationRef, Label, Outcome, Step, ToolCall, ToolResult, Trace, parse_outcome

#: autogen-agentchat message types (``{source, type, content}``) and the role each speaks in; also Magentic-One's
#: own ``log.jsonl`` events (``{source, type, message}``) and autogen-core's LLM messages (what
#: ``model_context.get_messages()`` and an agent's ``save_state()`` hold: ``AssistantMessage`` with a FunctionCall
#: list, ``FunctionExecutionResultMessage``). A ``StructuredMessage[...]`` or custom type speaks as an assistant too.
_AGENTCHAT = {"TextMessage": "assistant", "MultiModalMessage": "assistant", "StopMessage": "assistant",
              "HandoffMessage": "assistant", "ToolCallSummaryMessage": "assistant", "ThoughtEvent": "assistant",
              "ToolCallRequestEvent": "assistant", "ToolCallExecutionEvent": "tool",
              "CodeGenerationEvent": "assistant", "CodeExecutionEvent": "tool", "MemoryQueryEvent": "tool",
              "SelectSpeakerEvent": "assistant", "SelectorEvent": "assistant", "UserInputRequestedEvent": "user",
              "ModelClientStreamingChunkEvent": "assistant",
              "OrchestrationEvent": "assistant", "AgentEvent": "assistant", "WebSurferEvent": "assistant",
              "AssistantMessage": "assistant", "UserMessage": "user", "FunctionExecutionResultMessage": "tool"}
#: Records of a log that are no message (Magentic-One's per-LLM-call token counts): their tokens go to the next step.
_TOKEN_RECORDS = frozenset({"LLMCallEvent"})
#: Role and type words (any case) and the role each is read as: OpenAI / AutoGen 0.2 roles, LangChain types and
#: message classes (their streamed chunks too), autogen-core's SystemMessage. Any other word is an assistant's (a
#: human's name, a user's: :func:`_is_human`), the word kept in metadata: a step's role is one of these four.
_ROLE = {"user": "user", "human": "user", "humanmessage": "user", "humanmessagechunk": "user",
         "assistant": "assistant", "ai": "assistant", "aimessage": "assistant", "aimessagechunk": "assistant",
         "model": "assistant", "system": "system", "developer": "system", "systemmessage": "system",
         "systemmessagechunk": "system", "tool": "tool", "function": "tool", "ipython": "tool", "toolmessage": "tool",
         "toolmessagechunk": "tool", "functionmessage": "tool", "functionmessagechunk": "tool"}
#: A user proxy's name (AutoGen's ``user_proxy``, Magentic-One's ``UserProxy``) less its proxy word: the human's.
_PROXY = re.compile(r"[\s_-]*proxy$", re.IGNORECASE)
#: Keys that name who spoke, in the order a message's agent is taken from them (role is the fallback).
_SPEAKER_KEYS = ("role", "name", "source", "sender", "agent", "speaker")
_TRACE_KEYS = ("messages", "chat_history", "conversation")


def _is_human(name: Any) -> bool:
    """Whether an agent name (or role word) is a human's: ``user``, ``human``, ``customer``... as the features
    tell (:func:`attrib.features.text.is_human_agent`), also as a user proxy (``user_proxy``, ``UserProxy``)."""
    if not isinstance(name, str):
        return False
    from attrib.features.text import is_human_agent  # numpy comes with it: only once a log has no role to say

    return is_human_agent(_PROXY.sub("", name.strip()))


def _what(value: Any) -> str:
    """A JSON value's kind in words for an error, with the value itself when it is a short scalar ("a number
    12345")."""
    kind = "an object" if isinstance(value, dict) else json_kind(value)
    if isinstance(value, bool | int | float):
        return f"{kind} {json_text(value)[:40]}"
    return kind


def _tool_calls(msg: dict[str, Any], path: Path, where: str, key: str = "tool_calls") -> tuple[ToolCall, ...]:
    """The calls in ``msg[key]``: OpenAI ``{id, function: {name, arguments}}``, LangChain ``{name, args, id}`` or
    autogen's ``FunctionCall`` ``{id, name, arguments}``."""
    raw = msg.get(key)
    if raw is None and key == "tool_calls":
        # LangChain < 0.2 kept the provider's calls in additional_kwargs only; legacy OpenAI: function_call
        extra = msg.get("additional_kwargs")
        extra = extra if isinstance(extra, dict) else {}
        raw = extra.get("tool_calls")
        fc = msg.get("function_call") or extra.get("function_call")
        if raw is None:
            raw = [{"function": fc}] if isinstance(fc, dict) else []
    if not isinstance(raw, list):
        raise InputError(path, f"{where}.{key}", f"expected a list, got {_what(raw)}")
    calls: list[ToolCall] = []
    for j, c in enumerate(raw):
        if not isinstance(c, dict):
            raise InputError(path, f"{where}.{key}[{j}]", f"expected an object, got {_what(c)}")
        fn = c.get("function")
        fn = fn if isinstance(fn, dict) else c
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            field = f"{where}.{key}[{j}]" + (".function.name" if fn is not c else ".name")
            raise InputError(path, field, "missing: a tool call needs a name")
        args = fn.get("arguments", fn.get("args", ""))
        cid = c.get("id")
        calls.append(ToolCall(name=name, arguments=as_text(args), id=None if cid is None else str(cid)))
    return tuple(calls)


def _execution_results(raw: Any, steps: list[Step], call_owner: dict[str, int], path: Path, where: str,
                       id_key: str = "call_id", default_name: str | None = None) -> tuple[ToolResult, ...]:
    """autogen's ``FunctionExecutionResult`` list ``[{call_id, content, is_error, name}]`` (AutoGen 0.2's
    ``tool_responses``: ``[{tool_call_id, content}]``, ``id_key`` ``tool_call_id``) as tool results, named after
    the call they answer when the result does not say (else ``default_name``)."""
    if not isinstance(raw, list):
        raise InputError(path, where, f"expected a list, got {_what(raw)}")
    out = []
    for j, r in enumerate(raw):
        if not isinstance(r, dict):
            raise InputError(path, f"{where}[{j}]", f"expected a function execution result, got {_what(r)}")
        cid = None if r.get(id_key) is None else str(r[id_key])
        owner = call_owner.get(cid) if cid is not None else None
        name = r.get("name") or (next((c.name for c in steps[owner].tool_calls if c.id == cid), None)
                                 if owner is not None else None) or default_name
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


def _text_field(msg: dict[str, Any], kind: str | None) -> tuple[str | None, Any]:
    """The key that holds a message's text and its value: ``content``, else ``text`` (the first not null), else a
    ``message`` (Magentic-One's log) or ``refusal`` (OpenAI) string; an AutoGen ``CodeExecutionEvent``'s ``result``
    (0.5: a CodeResult's ``output``). ``(key, None)`` for a null one, ``(None, None)`` for none."""
    if kind == "CodeExecutionEvent" and "result" in msg:
        res = msg["result"]
        return "result", res.get("output") if isinstance(res, dict) else res
    for key in ("content", "text"):
        if msg.get(key) is not None:
            return key, msg[key]
    for key in ("message", "refusal"):
        if isinstance(msg.get(key), str):
            return key, msg[key]
    return next(((k, None) for k in ("content", "text") if k in msg), (None, None))


def _content(msg: dict[str, Any], kind: str | None, calls: tuple[ToolCall, ...], path: Path, where: str) -> str:
    """A message's text (:func:`_text_field`): content parts joined, a ``tool_use`` block that ``tool_calls``
    already holds left out, autogen images as ``<image>``. Text that is missing, or null without tool calls, or of
    another kind (a number; an object, but for a StructuredMessage or custom AutoGen type) is an
    :class:`InputError` naming the key: a blank step would be analyzed as if the agent had said nothing."""
    key, raw = _text_field(msg, kind)
    if raw is None:
        if calls or msg.get("tool_responses"):  # AutoGen 0.2: the responses are an executor's text
            return ""
        if key is None:
            hint = "; 'result' is a message's text only in an AutoGen CodeExecutionEvent" if "result" in msg else ""
            raise InputError(path, f"{where}.content",
                             f"missing: every message needs content, text or message (or tool_calls){hint}")
        raise InputError(path, f"{where}.{key}", "null: a message without tool calls needs text")
    structured = kind is not None and kind not in _AGENTCHAT  # StructuredMessage[T], a custom type: its fields
    if not (isinstance(raw, str | list) or (isinstance(raw, dict) and structured)):
        raise InputError(path, f"{where}.{key}", f"expected text (a string or a list of content parts), got {_what(raw)}")
    if isinstance(raw, list):
        ids = {c.id for c in calls if c.id is not None}
        raw = [p for p in raw if not (isinstance(p, dict) and p.get("type") == "tool_use" and p.get("id") in ids)]
        if kind in ("MultiModalMessage", "UserMessage"):  # list[str | Image], an Image dumped as {"data": base64}
            raw = [p if isinstance(p, str) else "<image>" for p in raw]
    return as_text(raw)


def _speaker(msg: dict[str, Any], path: Path, where: str) -> str | None:
    """Who spoke: the first of ``name``, ``source``, ``sender``, ``agent``, ``speaker`` that is set (null and ""
    are unset); another kind of value is an :class:`InputError` naming that key."""
    for key in _SPEAKER_KEYS[1:]:
        v = msg.get(key)
        if v is None or v == "":
            continue
        if not isinstance(v, str):
            raise InputError(path, f"{where}.{key}", f"expected a string, got {_what(v)}")
        return v
    return None


def _time(msg: dict[str, Any], path: Path, where: str) -> float | None:
    """A message's ``timestamp`` (else ``created_at``) in seconds: a number (s, ms or ns) or ISO-8601 text; one
    that reads as no time, or one before 1970 or after the year 3000, is an :class:`InputError`, as in OTLP."""
    key = next((k for k in ("timestamp", "created_at") if msg.get(k) is not None and msg.get(k) != ""), None)
    if key is None:
        return None
    v = msg[key]
    t = as_time(v)
    if t is None:
        raise InputError(path, f"{where}.{key}", f"{v!r:.40} is not a time (expected ISO-8601 text or seconds since "
                         "1970)")
    if not 0 <= t <= MAX_NANOS / 1e9:
        raise InputError(path, f"{where}.{key}", f"{v!r:.40} is not a time: "
                         f"{'before 1970' if t < 0 else 'after the year 3000'}")
    return t


def parse_messages(msgs: Any, path: Path, where: str = "messages", fields: list[str] | None = None) -> list[Step]:
    """Messages -> steps. Raises :class:`InputError` naming the message and field that is wrong (``fields``: how
    each message is named in errors, e.g. ``line 3`` for JSON Lines; default ``where[i]``, so ``messages[3]``, or
    ``[3]`` for a file that is the list itself, ``where`` ""; errors about the whole list name ``where``, none
    when "")."""
    if not isinstance(msgs, list):
        raise InputError(path, where or None, f"expected a list of messages, got {_what(msgs)}")
    if not msgs:
        raise InputError(path, where or None, "empty chat log: a trace needs at least one message")
    steps: list[Step] = []
    call_owner: dict[str, int] = {}
    pending_tokens = [0, 0]  # token counts of no-message records, for the next step
    last_codegen: dict[str, int] = {}  # agent -> its latest CodeGenerationEvent step
    for pos, msg in enumerate(msgs):
        w = fields[pos] if fields is not None else f"{where}[{pos}]"
        i = len(steps)
        if not isinstance(msg, dict):
            raise InputError(path, w, f"expected a message object, got {_what(msg)}")
        msg = _unwrap_langchain(msg)
        if msg.get("role") is not None and not isinstance(msg["role"], str):
            raise InputError(path, f"{w}.role", f"expected a string, got {_what(msg['role'])}")
        raw_role = msg.get("role", msg.get("type"))
        if "role" not in msg and isinstance(raw_role, str) and raw_role in _TOKEN_RECORDS:
            pending_tokens[0] += as_int(msg.get("prompt_tokens")) or 0
            pending_tokens[1] += as_int(msg.get("completion_tokens")) or 0
            continue
        # an autogen-agentchat message (a role or type of another JSON kind is no such message: the checks below say
        # so); a typed message with a source that is no LangChain type is one too (StructuredMessage[...], custom)
        kind = raw_role if "role" not in msg and isinstance(raw_role, str) and (
            raw_role in _AGENTCHAT or ("source" in msg and raw_role.lower() not in _ROLE)) else None
        role: str | None = None
        fallback = None  # the agent of a message that names none: its role, or an unknown role word itself
        word_meta: dict[str, str] = {}  # an unknown role or type word, kept beside the role it is read as
        if kind is not None:
            base = _AGENTCHAT.get(kind, "assistant")
            role = "user" if base == "assistant" and _is_human(msg.get("source")) else base
            fallback = role
        elif isinstance(raw_role, str):
            role = _ROLE.get(raw_role.lower())
            fallback = role
            if role is None:
                role = "user" if _is_human(raw_role) else "assistant"
                if "role" in msg:  # {"role": "Planner"}: the word names the agent too
                    word_meta, fallback = {"raw_role": raw_role}, raw_role
                else:
                    word_meta, fallback = {"message_type": raw_role}, role
        agent = _speaker(msg, path, w)
        # ToolCallSummaryMessage (autogen >= 0.5) repeats the calls and results of the events before it
        calls = () if kind == "ToolCallSummaryMessage" else _tool_calls(msg, path, w)
        if kind == "WebSurferEvent" and isinstance(msg.get("action"), str):  # Magentic-One: a browser action
            calls = (ToolCall(name=msg["action"], arguments=as_text(msg.get("arguments"))),)
        content = _content(msg, kind, calls, path, w)
        results: tuple[ToolResult, ...] = ()
        parents: tuple[int, ...] = ()
        if kind in ("ToolCallRequestEvent", "AssistantMessage") and isinstance(msg.get("content"), list):
            calls = _tool_calls(msg, path, w, "content")  # content: FunctionCalls; autogen-core's thought, the text
            content = msg["thought"] if isinstance(msg.get("thought"), str) else ""
        elif kind in ("ToolCallExecutionEvent", "FunctionExecutionResultMessage") and isinstance(msg.get("content"),
                                                                                                 list):
            results = _execution_results(msg["content"], steps, call_owner, path, f"{w}.content")
            parents = tuple(sorted({call_owner[r.call_id] for r in results if r.call_id in call_owner}))
            content = "\n".join(r.content for r in results)
            names = {r.name for r in results}
            if agent is None and len(names) == 1 and None not in names:  # autogen-core's has no source: the tool
                agent = names.pop()
        elif kind == "CodeExecutionEvent":  # runs the code its agent's CodeGenerationEvent wrote
            res = msg.get("result")
            code = as_int(res.get("exit_code")) if isinstance(res, dict) else None
            results = (ToolResult(content=content, name="code_execution", is_error=bool(code)),)
            owner = last_codegen.get(str(agent)) if agent is not None else None
            parents = (owner,) if owner is not None else ()
        elif role == "tool" and msg.get("tool_responses") is not None:  # AutoGen 0.2: answers calls by id
            results = _execution_results(msg["tool_responses"], steps, call_owner, path, f"{w}.tool_responses",
                                         "tool_call_id", agent)
            parents = tuple(sorted({call_owner[r.call_id] for r in results if r.call_id in call_owner}))
            content = content or "\n".join(r.content for r in results)
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
            agent = fallback
        if not agent:
            raise InputError(path, f"{w}.name", "missing: every message needs a name, source or role")
        if role is None:  # no role or type word (a plain log): a human's name speaks as the user
            role = "user" if _is_human(agent) else "assistant"
        for c in calls:
            if c.id is not None:
                call_owner[c.id] = i
        if kind == "CodeGenerationEvent":
            last_codegen[str(agent)] = i
        usage = msg.get("models_usage") or msg.get("usage") or msg.get("usage_metadata") or {}
        if not isinstance(usage, dict):
            usage = {}
        tin = as_int(usage.get("prompt_tokens", usage.get("input_tokens")))
        tout = as_int(usage.get("completion_tokens", usage.get("output_tokens")))
        if any(pending_tokens):
            tin, tout = (tin or 0) + pending_tokens[0], (tout or 0) + pending_tokens[1]
            pending_tokens = [0, 0]
        act = msg.get("activation")
        ref = None
        if isinstance(act, dict) and isinstance(act.get("path"), str):
            hooks = act.get("hooks")
            hooks = hooks if isinstance(hooks, list) else []
            ref = ActivationRef(path=activation_path(act["path"], path.parent, path, f"{w}.activation.path"),
                                hooks=tuple(str(h) for h in hooks),
                                format=ref_format(act.get("format"), act["path"]))
        meta = dict(word_meta)
        if msg.get("name") and msg.get("role") and msg.get("role") != role:
            meta["raw_role"] = str(msg["role"])
        if kind is not None:
            meta["message_type"] = kind
            if kind == "HandoffMessage" and msg.get("target"):
                meta["handoff_target"] = str(msg["target"])
            if kind == "WebSurferEvent" and msg.get("url"):
                meta["url"] = str(msg["url"])
        # Magentic-One: "Orchestrator (thought)", "Orchestrator (-> WebSurfer)" are one agent, as in Who&When
        raw_name, agent = str(agent), normalize_agent(str(agent))
        if agent != raw_name:
            meta["raw_name"] = raw_name
        steps.append(Step(
            index=i,
            agent=agent,
            role=role,
            content=content,
            tool_calls=calls,
            tool_results=results,
            parents=parents,
            start_time=_time(msg, path, w),
            tokens_in=tin,
            tokens_out=tout,
            activation=ref,
            metadata=meta,
        ))
    if not steps:
        raise InputError(path, where or None, "no messages: only token-count records (LLMCallEvent)")
    return steps


def _task(steps: list[Step]) -> str:
    """The first user message: what the run was asked (a chat log with no ``task`` field)."""
    return next((s.content for s in steps if s.role == "user" and s.content.strip()), "")


def _label(obj: dict[str, Any], path: Path, steps: list[Step]) -> Label | None:
    if "mistake_agent" not in obj and "mistake_step" not in obj:
        return None
    step = as_int(obj.get("mistake_step"))
    if step is None or not 0 <= step < len(steps):
        raise InputError(path, "mistake_step", f"expected a step index in 0..{len(steps) - 1}, "
                         f"got {obj.get('mistake_step')!r}")
    agent = obj.get("mistake_agent")
    # "Orchestrator (thought)" labels the agent its steps are read as (Magentic-One's names fold, as in Who&When)
    return Label(mistake_agent=normalize_agent(str(agent)) if agent is not None else steps[step].agent,
                 mistake_step=step,
                 reason=as_text(obj.get("mistake_reason", "")))


def _trace(obj: dict[str, Any], path: Path, default_id: str, where: str = "") -> Trace:
    key = next((k for k in _TRACE_KEYS if k in obj), "messages")
    steps = parse_messages(obj.get(key), path, f"{where}{key}")
    # the outcome the log states (a word it does not know is an error, not 'unknown'); else its is_correct or success
    # flag; a label with none of them makes the run failed (Trace does that, for every format)
    outcome: Outcome | None = None
    for field in ("outcome", "is_correct", "success"):
        outcome = parse_outcome(obj.get(field), path, f"{where}{field}")
        if outcome is not None:
            break
    label = _label(obj, path, steps)
    tid = obj.get("id", obj.get("trace_id"))
    fa = obj.get("final_answer")
    gt = obj.get("ground_truth")
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return Trace(
        id=str(tid) if isinstance(tid, str | int) and tid != "" else default_id,
        source_format="chat",
        steps=tuple(steps),
        task=as_text(obj.get("task", obj.get("question", ""))) or _task(steps),
        outcome=outcome or "unknown",
        final_answer=None if fa is None else as_text(fa),
        ground_truth=None if gt is None else as_text(gt),
        label=label,
        metadata=dict(meta),
    )


def _log(steps: list[Step], trace_id: str) -> Trace:
    """A bare message list as a trace: no trace fields, so the task is its first user message."""
    return Trace(id=trace_id, source_format="chat", steps=tuple(steps), task=_task(steps))


class ChatReader:
    """JSON list / JSON Lines / ``{"messages": [...]}`` chat logs."""

    name = "chat"

    def sniff(self, data: bytes, path: Path) -> float:
        head = data[:8192].lstrip()
        has_msg = b'"content"' in head or b'"text"' in head or b'"tool_calls"' in head or b'"message"' in head
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
        stem = f"chat-{file_stem(path)}"
        if looks_jsonl(data):
            lines = iter_jsonl(data, path)
            objects = [v for _, v in lines if isinstance(v, dict)]
            traces = bool(objects) and all(any(k in v for k in _TRACE_KEYS) for v in objects)
            msgs = []
            for n, v in lines:
                if not isinstance(v, dict):  # JSON Lines of traces, or of messages: each line an object
                    what = "a trace object (with messages)" if traces else "a message object"
                    raise InputError(path, f"line {n}", f"expected {what}, got {json_kind(v)}")
                msgs.append(v)
            if traces:
                return [_trace(v, path, f"{stem}-{n}", f"line {n}: ") for n, v in lines]
            # the file is the messages, one a line: a message is named by its line, the whole log by no field
            return [_log(parse_messages(msgs, path, "", [f"line {n}" for n, _ in lines]), stem)]
        obj = loads(data, path)
        if isinstance(obj, list):  # the file is the list: a message is [i], as a JSON path from the top
            return [_log(parse_messages(obj, path, ""), stem)]
        if isinstance(obj, dict):
            if path.suffix == ".jsonl" and not any(k in obj for k in _TRACE_KEYS):  # JSON Lines holding one message
                line = data[:len(data) - len(data.lstrip())].count(b"\n") + 1
                return [_log(parse_messages([obj], path, "", [f"line {line}"]), stem)]
            if not any(k in obj for k in _TRACE_KEYS):
                raise InputError(path, "messages", "missing: expected a list of messages or an object with 'messages'")
            return [_trace(obj, path, stem)]
        raise InputError(path, None, f"expected a JSON list of messages, got {_what(obj)}")
