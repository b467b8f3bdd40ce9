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
JSON Lines whose lines each hold ``messages`` are one trace per line (so is a JSON list of such objects).

Stream dumps read as the one run they record: LangGraph's ``stream_mode="updates"`` chunks (``{node: {messages:
[...]}}``, one a line or a JSON list; the node is the agent of the messages it adds, unless a message names its own)
and ``stream_mode="values"`` states (each a whole ``{messages}`` state, its messages a prefix of the next one's: the
last state is the run); AutoGen's ``run_stream`` (``ModelClientStreamingChunkEvent`` pieces are dropped, the whole
message follows; the closing ``TaskResult``, ``{messages, stop_reason}``, is skipped when its messages are the lines
before it). A dump that does not hang together (chunks mixed with messages, a state that does not continue the one
before, a TaskResult that is not the run before it) is refused, naming the line: no run is guessed.

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
    check_encoding,
    checked_time,
    file_stem,
    iter_jsonl,
    json_kind,
    json_text,
    loads,
    looks_jsonl,
    ref_format,
)
from attrib.readers.whowhen import normalize_agent
from attrib.trace import (
    ActivationRef,
    Label,
    Outcome,
    Step,
    ToolCall,
    ToolResult,
    Trace,
    is_human_agent,
    parse_outcome,
)

#: autogen-agentchat message types (``{source, type, content}``) and the role each speaks in; also Magentic-One's
#: own ``log.jsonl`` events (``{source, type, message}``) and autogen-core's LLM messages (what
#: ``model_context.get_messages()`` and an agent's ``save_state()`` hold: ``AssistantMessage`` with a FunctionCall
#: list, ``FunctionExecutionResultMessage``). A ``StructuredMessage[...]`` or custom type speaks as an assistant too.
_AGENTCHAT = {"TextMessage": "assistant", "MultiModalMessage": "assistant", "StopMessage": "assistant",
              "HandoffMessage": "assistant", "ToolCallSummaryMessage": "assistant", "ThoughtEvent": "assistant",
              "ToolCallRequestEvent": "assistant", "ToolCallExecutionEvent": "tool",
              "CodeGenerationEvent": "assistant", "CodeExecutionEvent": "tool", "MemoryQueryEvent": "tool",
              "SelectSpeakerEvent": "assistant", "SelectorEvent": "assistant", "UserInputRequestedEvent": "user",
              "OrchestrationEvent": "assistant", "AgentEvent": "assistant", "WebSurferEvent": "assistant",
              "AssistantMessage": "assistant", "UserMessage": "user", "FunctionExecutionResultMessage": "tool"}
#: Records of a log that are no message (Magentic-One's per-LLM-call token counts): their tokens go to the next step.
_TOKEN_RECORDS = frozenset({"LLMCallEvent"})
#: autogen-agentchat's streamed piece of a message (``model_client_stream=True``): the whole message follows it.
_CHUNK = "ModelClientStreamingChunkEvent"
#: How a dump of LangGraph's graph.stream is named in errors.
_UPDATES = 'LangGraph stream_mode="updates" chunk'
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
    tell (:func:`attrib.trace.is_human_agent`), also as a user proxy (``user_proxy``, ``UserProxy``)."""
    if not isinstance(name, str):
        return False
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
    t = checked_time(v, path, f"{where}.{key}")
    if t is None:
        raise InputError(path, f"{where}.{key}", f"{v!r:.40} is not a time (expected ISO-8601 text or seconds since "
                         "1970)")
    return t


def parse_messages(msgs: Any, path: Path, where: str = "messages", fields: list[str] | None = None,
                   nodes: list[str] | None = None) -> list[Step]:
    """Messages -> steps. Raises :class:`InputError` naming the message and field that is wrong (``fields``: how
    each message is named in errors, e.g. ``line 3`` for JSON Lines; default ``where[i]``, so ``messages[3]``, or
    ``[3]`` for a file that is the list itself, ``where`` ""; errors about the whole list name ``where``, none
    when ""). ``nodes``: the LangGraph node that added each message, its agent when it names none."""
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
        if _is_chunk(msg):  # a streamed piece: the whole message follows
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
        agent = _speaker(msg, path, w) or (nodes[pos] if nodes is not None else None)
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
        raise InputError(path, where or None, "no messages: only token-count records (LLMCallEvent) or streamed "
                         f"pieces ({_CHUNK})")
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


def _is_chunk(v: Any) -> bool:
    return isinstance(v, dict) and "role" not in v and v.get("type") == _CHUNK


def _is_state(v: Any) -> bool:
    """An object that holds a run's messages (a trace object, a LangGraph state, AutoGen's TaskResult)."""
    return isinstance(v, dict) and any(k in v for k in _TRACE_KEYS)


def _is_update(v: Any) -> bool:
    """A LangGraph ``stream_mode="updates"`` chunk: ``{node: update}``, every update an object (or null: a node that
    changed nothing) but under LangGraph's own ``__interrupt__``-like keys; no message, whose text is no object."""
    return isinstance(v, dict) and bool(v) and not _is_state(v) and all(
        k.startswith("__") or x is None or isinstance(x, dict) for k, x in v.items())


def _updates(items: list[tuple[str, Any]], path: Path) -> tuple[list[Any], list[str], list[str]]:
    """The messages that ``stream_mode="updates"`` chunks (``(name, chunk)``) add, in order, with the field that
    names each in errors and the node that added it. Chunks that add no messages at all are an :class:`InputError`:
    a graph whose state has no ``messages`` is no chat."""
    out: list[tuple[Any, str, str]] = []  # (message, field, node)
    for name, chunk in items:
        for node, update in chunk.items():
            if node.startswith("__") or not isinstance(update, dict) or "messages" not in update:
                continue  # an interrupt; a node that changed nothing, or other state keys only
            added = update["messages"]
            where = f"{name}.{node}.messages"
            if isinstance(added, dict):  # a node may return one message
                out.append((added, where, node))
            elif isinstance(added, list):
                out += [(m, f"{where}[{j}]", node) for j, m in enumerate(added)]
            else:
                raise InputError(path, where, f"expected a list of messages, got {_what(added)}")
    if not out:
        raise InputError(path, None, f"no 'messages' in any {_UPDATES}: nothing to read as steps (stream a graph whose "
                         "state has messages, or save its final state's messages)")
    return [m for m, _, _ in out], [f for _, f, _ in out], [n for _, _, n in out]


def _continues(a: Any, b: Any) -> bool:
    return isinstance(a, list) and isinstance(b, list) and len(a) <= len(b) and b[:len(a)] == a


def _last_state(items: list[tuple[str, Any]], path: Path, lines: bool) -> Any | None:
    """The last of LangGraph ``stream_mode="values"`` states, each the whole state so far (its messages a prefix of
    the next one's); None when the objects are runs of their own: fewer than two, any with an id, the first two not
    starting alike, or none growing. Objects that start as such a stream and then stop continuing it are ambiguous:
    an :class:`InputError` naming the first that does not, rather than a guess."""
    if len(items) < 2 or any(v.get("id", v.get("trace_id")) is not None for _, v in items):
        return None
    keys = [next(k for k in _TRACE_KEYS if k in v) for _, v in items]
    msgs = [v[k] for (_, v), k in zip(items, keys, strict=True)]
    if not _continues(msgs[0], msgs[1]) or all(len(m) == len(msgs[0]) for m in msgs):
        return None
    for k in range(1, len(items) - 1):
        if not _continues(msgs[k], msgs[k + 1]):
            what = "lines" if lines else "items"
            raise InputError(path, f"{items[k + 1][0]}.{keys[k + 1]}", f"does not continue {items[k][0]}'s messages, "
                             f"though the {what} before grow like LangGraph stream_mode=\"values\" states: keep one run "
                             "per file, or give each run an id to read them apart")
    return items[-1][1]


def _without_task_result(items: list[tuple[str, Any]], path: Path) -> list[tuple[str, Any]]:
    """Messages less the TaskResult (``{messages, stop_reason}``) that AutoGen's ``run_stream`` yields last, which
    repeats them. One anywhere else, or one whose messages are not the ones before it, is an :class:`InputError`."""
    states = [k for k, (_, v) in enumerate(items) if _is_state(v)]
    if not states:
        return items
    last = len(items) - 1
    name, result = items[states[0]]
    if states != [last]:
        raise InputError(path, name, "a run's messages ({messages}, as AutoGen's TaskResult) before the end of a log of "
                         "messages: keep one run per file, its TaskResult last")
    theirs = result[next(k for k in _TRACE_KEYS if k in result)]
    before = [v for _, v in items[:last] if not _is_chunk(v)]
    if not isinstance(theirs, list) or [m for m in theirs if not _is_chunk(m)] != before:
        raise InputError(path, name, "a TaskResult ({messages, stop_reason}) whose messages are not the messages "
                         "before it: keep one run per file")
    return items[:last]


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
            return self._items([(f"line {n}", v) for n, v in iter_jsonl(data, path)], path, stem, lines=True)
        obj = loads(data, path)
        if isinstance(obj, list):  # the file is the list: a message is [i], as a JSON path from the top
            if not obj:
                parse_messages(obj, path, "")  # says it is empty
            return self._items([(f"[{i}]", v) for i, v in enumerate(obj)], path, stem, lines=False)
        if isinstance(obj, dict):
            if path.suffix == ".jsonl" and not _is_state(obj):  # JSON Lines holding one message, or one chunk
                line = data[:len(data) - len(data.lstrip())].count(b"\n") + 1
                return self._items([(f"line {line}", obj)], path, stem, lines=True)
            if not _is_state(obj):
                nested = next((k for k, x in obj.items() if _is_state(x)), None)
                hint = "" if nested is None else f" (there is one under {nested!r}: save that object itself)"
                raise InputError(path, "messages", "missing: expected a list of messages or an object with 'messages'"
                                 + hint)
            return [_trace(obj, path, stem)]
        raise InputError(path, None, f"expected a JSON list of messages, got {_what(obj)}")

    @staticmethod
    def _items(items: list[tuple[str, Any]], path: Path, stem: str, lines: bool) -> list[Trace]:
        """The traces in a file's objects ``(name, value)``: JSON Lines (``lines``) or a JSON list's items. Messages
        make one run; objects with ``messages`` a run each, or one together when they are LangGraph
        ``stream_mode="values"`` states; LangGraph ``stream_mode="updates"`` chunks one run."""
        objects = [v for _, v in items if isinstance(v, dict)]
        states = bool(objects) and all(_is_state(v) for v in objects)
        for name, v in items:
            if not isinstance(v, dict):  # objects with messages, or messages: each an object
                what = "a trace object (with messages)" if states else "a message object"
                raise InputError(path, name, f"expected {what}, got {json_kind(v)}")
        if states:
            last = _last_state(items, path, lines)
            if last is not None:  # one run, streamed state by state: named by its file alone
                name = items[-1][0]
                return [_trace(last, path, stem, f"{name}: " if lines else f"{name}.")]
            return [_trace(v, path, f"{stem}-{name.removeprefix('line ').strip('[]')}",
                           f"{name}: " if lines else f"{name}.") for name, v in items]
        updates = [_is_update(v) for _, v in items]
        if any(updates):
            odd = next((k for k, u in enumerate(updates) if u != updates[0]), None)
            if odd is not None:
                what = (f"a {_UPDATES} ({{node: {{messages}}}}) among messages" if updates[odd]
                        else f"a message among {_UPDATES}s ({{node: {{messages}}}})")
                raise InputError(path, items[odd][0], f"{what}: keep one kind per file")
            msgs, fields, nodes = _updates(items, path)
            return [_log(parse_messages(msgs, path, "", fields, nodes), stem)]
        items = _without_task_result(items, path)
        # the messages, one an item: a message is named by its line or [i], the whole log by no field
        return [_log(parse_messages([v for _, v in items], path, "", [name for name, _ in items]), stem)]
