"""The canonical trace model: one typed, immutable picture of a multi-agent run.

Every reader produces a :class:`Trace`; every attribution method consumes one and returns an
:class:`Attribution`. This module imports nothing else of attrib at import time (``Trace.check`` imports the error it raises).

Step-index convention: ``Step.index`` is 0-based and equals the position of the message in the
run's history, exactly as Who&When's ``mistake_step`` counts (``history[mistake_step]`` is the
mistaken step). ``Label`` carries that annotation and is used only by evaluation: methods are
handed ``trace.unlabelled()``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Literal, get_args

import msgspec

Outcome = Literal["failed", "succeeded", "unknown"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)

#: The words a log may state an outcome with (compared lower-cased, spaces trimmed), and the outcome each means: a
#: log that says "success" or ``true`` means succeeded; a word not here is refused (:func:`parse_outcome`) rather than
#: read as unknown, which silently lost a successful run's "not a cause" warning.
OUTCOME_WORDS: dict[str, Outcome] = {
    **dict.fromkeys(("succeeded", "success", "successful", "passed", "pass", "ok", "true"), "succeeded"),
    **dict.fromkeys(("failed", "failure", "fail", "error", "errored", "false"), "failed"),
    **dict.fromkeys(("unknown", "none", "null"), "unknown"),
}


def parse_outcome(value: Any, path: str | os.PathLike[str] | None = None, field: str = "outcome") -> Outcome | None:
    """The outcome a log states in ``value`` (a word of :data:`OUTCOME_WORDS`, any case, or a JSON boolean), None
    when it states none (absent, null). Anything else is one ``InputError`` naming ``path`` and ``field`` and what
    is accepted. The Who&When, OTLP and chat readers read an outcome through here, so none of them drops a word it
    does not know; attrib JSON (the ``attrib`` reader) is typed by :class:`Trace` itself and takes only the words of
    :data:`Outcome` (another is a field error naming ``outcome``), as the trace JSON Schema says."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "succeeded" if value else "failed"
    if isinstance(value, str) and value.strip().lower() in OUTCOME_WORDS:
        return OUTCOME_WORDS[value.strip().lower()]
    from attrib.errors import InputError  # deferred: trace.py loads nothing of attrib

    shown = repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"
    raise InputError(None if path is None else str(path), field, f"{shown} is not an outcome: expected succeeded (or success, passed, ok, true), "
                     "failed (or failure, fail, error, false) or unknown (or none, null), in any case")


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool invocation requested by a step."""

    name: str
    arguments: str = ""
    id: str | None = None


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a tool returned to a step (or the error it raised)."""

    content: str
    call_id: str | None = None
    name: str | None = None
    is_error: bool = False


class ActivationRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where a step's recorded activations live: a file and the hook names it holds. ``format`` (safetensors, npz,
    pt): None means the one the path's suffix implies (``step_1.npz`` -> npz), as ``attrib.activations`` reads it."""

    path: str
    hooks: tuple[str, ...] = ()
    format: str | None = None


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One message/action of one agent, in run order."""

    index: int
    agent: str
    content: str = ""
    role: str = "assistant"
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    parents: tuple[int, ...] = ()
    start_time: float | None = None
    end_time: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    activation: ActivationRef | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class Label(msgspec.Struct, frozen=True, kw_only=True):
    """The annotated failure cause (ground truth for evaluation only)."""

    mistake_agent: str
    mistake_step: int
    reason: str = ""


class Trace(msgspec.Struct, frozen=True, kw_only=True):
    """A whole run: task, steps in order, outcome and (optionally) its annotation."""

    id: str
    source_format: str
    steps: tuple[Step, ...]
    task: str = ""
    outcome: Outcome = "unknown"
    final_answer: str | None = None
    ground_truth: str | None = None
    agents: tuple[str, ...] = ()
    label: Label | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        """Derive ``agents`` from the steps when left out; a labelled run whose outcome is unknown is a failed run.

        The label names the run's decisive mistake, so a run that carries one failed. The rule lives here rather than
        in each reader so that a run's outcome never depends on its format (a labelled chat log was 'failed', the
        same run as OTLP with ``attrib.label.*`` stayed 'unknown'). A stated 'failed' or 'succeeded' is kept (a
        labelled run that succeeded stays so: its label is then no cause); 'unknown' cannot be told from an outcome
        left out (it is the default), so a stated 'unknown' with a label is failed too."""
        if self.label is not None and self.outcome == "unknown":
            msgspec.structs.force_setattr(self, "outcome", "failed")
        if not self.agents:
            seen: dict[str, None] = {}
            for s in self.steps:  # a dict where a Step belongs (typed later by ``check``) names its agent too
                agent = s.get("agent") if isinstance(s, dict) else getattr(s, "agent", None)
                if isinstance(agent, str):
                    seen.setdefault(agent, None)
            # frozen struct: set through the msgspec escape hatch once, at construction
            msgspec.structs.force_setattr(self, "agents", tuple(seen))

    @property
    def n_steps(self) -> int:
        """How many steps the run has."""
        return len(self.steps)

    def problem(self, check_types: bool = True) -> tuple[str, str] | None:
        """The first broken invariant as (field, message), or None for a sound trace.

        A Trace built by hand is not type-checked at construction (msgspec checks types when decoding), so
        ``check_types`` checks the field types by a JSON round trip (readers, whose traces are typed already,
        skip it: it costs about as much as reading); then the rules every reader keeps: steps numbered 0..n-1,
        parents point to earlier steps, the step agents are among ``agents``, the label names a step and an agent.
        """
        return self._checked(check_types)[0]

    def _checked(self, check_types: bool) -> tuple[tuple[str, str] | None, Trace]:
        """:meth:`problem`, and the trace as typed by its round trip (``self`` without ``check_types``)."""
        typed = self
        if check_types:
            try:  # a dict where a struct belongs encodes like the struct: only the decoded copy is really typed
                typed = msgspec.json.decode(msgspec.json.encode(self), type=Trace)
            except msgspec.ValidationError as e:  # "Expected `str`, got `null` - at `$.steps[0].content`"
                field, msg = validation_field(str(e))
                return (field or "trace", msg), self
            except (TypeError, msgspec.EncodeError) as e:  # e.g. a numpy integer where an int belongs
                return ("trace", f"{e} (use plain Python str/int/float values)"), self
        return typed._invariant_problem(), typed

    def _invariant_problem(self) -> tuple[str, str] | None:
        """The first broken rule every reader keeps (id, numbering, parents, agents, label), or None."""
        if not self.id.strip():  # stored under "", it could not be named again (`attrib analyze ''` is the folder .)
            return "id", "empty, a trace needs an id"
        if not self.steps:
            return "steps", "empty, a trace needs at least one step"
        agents = set(self.agents)
        for i, s in enumerate(self.steps):
            if s.index != i:
                return f"steps[{i}].index", f"expected {i}, got {s.index} (steps are numbered 0..n-1 in run order)"
            for p in s.parents:
                if not 0 <= p < i:
                    return (f"steps[{i}].parents",
                            f"step {i} references parent step {p}, which is not an earlier step (missing parent)")
            if s.agent not in agents:
                return f"steps[{i}].agent", f"{s.agent!r} is not one of the trace's agents ({some_names(self.agents)})"
            for name in ("tokens_in", "tokens_out"):
                if (n := getattr(s, name)) is not None and n < 0:
                    return f"steps[{i}].{name}", f"{n} is negative (a token count is 0 or more)"
        if self.label is not None and not 0 <= self.label.mistake_step < len(self.steps):
            return "label.mistake_step", f"{self.label.mistake_step} is outside the steps (0..{len(self.steps) - 1})"
        if self.label is not None and self.label.mistake_agent not in agents:
            return "label.mistake_agent", f"{self.label.mistake_agent!r} is not one of the agents ({some_names(self.agents)})"
        return None

    def check(self, path: str | None = None, check_types: bool = True) -> Trace:
        """The trace if :meth:`problem` finds nothing, else one ``InputError`` naming ``path`` and the field. With
        ``check_types`` it is the typed copy: a hand-built trace with a dict or list where a struct or tuple
        belongs comes back as the structs and tuples the methods expect."""
        found, typed = self._checked(check_types)
        if found is not None:
            from attrib.errors import InputError  # deferred: trace.py loads nothing of attrib

            raise InputError(path, found[0], f"trace {self.id}: {found[1]}" if self.id.strip() else found[1])
        return typed

    def label_mismatch(self) -> str | None:
        """Why the label's agent did not write the labelled step, in words; None when it did or when there is no
        label (see :func:`label_mismatch`)."""
        if self.label is None:
            return None
        return label_mismatch(self.label, self.steps.__getitem__, len(self.steps), calling_agents(self.steps))

    def unlabelled(self) -> Trace:
        """The same trace without its annotation: what attribution methods are allowed to see."""
        return msgspec.structs.replace(self, label=None)

    def without_ground_truth(self) -> Trace:
        """The trace without the ground-truth answer (Who&When's 'without ground truth' setting)."""
        return msgspec.structs.replace(self, ground_truth=None)

    def content_hash(self) -> str:
        """A stable hash of everything in the trace (for idempotent upserts)."""
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()

    def to_json(self) -> bytes:
        """The trace as attrib JSON (the ``attrib`` format every reader can read back)."""
        return msgspec.json.encode(self)

    @staticmethod
    def from_json(data: bytes | str) -> Trace:
        """A trace from attrib JSON (typed: a wrong field type is a ``msgspec.ValidationError``)."""
        return msgspec.json.decode(data, type=Trace)


class AgentBlame(msgspec.Struct, frozen=True, kw_only=True):
    """An agent's share of the blame, with a confidence interval (Shapley value ± CI)."""

    agent: str
    score: float
    ci_low: float | None = None
    ci_high: float | None = None


class StepBlame(msgspec.Struct, frozen=True, kw_only=True):
    """A step's blame score and (optionally) its probability of being the decisive step."""

    step: int
    agent: str
    score: float
    probability: float | None = None


class Attribution(msgspec.Struct, frozen=True, kw_only=True):
    """A method's verdict on one trace: the decisive agent and step, how sure, and why.

    Renders itself: :meth:`to_json`, :meth:`to_markdown`, :meth:`to_rich` (a rich renderable),
    :meth:`to_otlp` (an OpenTelemetry span) and :meth:`plot` (matplotlib), in the spirit of shap's result objects.
    Frozen one level deep, as every struct here: fields cannot be reassigned, but ``evidence`` (and a Trace's
    ``metadata``) is a plain dict; change a copy (``msgspec.structs.replace``), not the verdict's own.
    """

    trace_id: str
    method: str
    agent: str
    step: int
    confidence: float
    agent_confidence: float | None = None
    agents: tuple[AgentBlame, ...] = ()
    steps: tuple[StepBlame, ...] = ()
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)
    reason: str = ""
    elapsed_s: float | None = None

    def top_steps(self, k: int = 5) -> tuple[StepBlame, ...]:
        """The ``k`` most blamed steps, highest score first (ties: the earlier step); ``k`` a whole number >= 1, else
        a ``UsageError`` naming ``top_k`` (-1 used to give every step but the last)."""
        from attrib.errors import whole_number

        return tuple(sorted(self.steps, key=lambda s: (-s.score, s.step))[:whole_number("top_k", k)])

    def to_json(self) -> bytes:
        """The verdict as JSON bytes (what ``attrib analyze --json`` prints and the store keeps)."""
        return msgspec.json.encode(self)

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain Python dicts and lists (for pandas, or your own JSON)."""
        return msgspec.to_builtins(self)

    @staticmethod
    def from_json(data: bytes | str) -> Attribution:
        """A verdict back from :meth:`to_json`'s output."""
        return msgspec.json.decode(data, type=Attribution)

    def __rich__(self) -> Any:
        """``rich.print(verdict)`` (and a verdict at the IPython prompt, with rich's extension) shows the report, not
        the struct's fields; Jupyter shows :meth:`_repr_markdown_`."""
        return self.to_rich()

    def _repr_markdown_(self) -> str:
        """Jupyter shows a verdict as its Markdown report."""
        return self.to_markdown()

    def to_markdown(self, trace: Trace | None = None, top_k: int | None = None) -> str:
        """Markdown report; ``top_k`` steps listed (default: as many as the method was asked for)."""
        from attrib.render import attribution_markdown

        return attribution_markdown(self, trace, top_k)

    def to_rich(self, trace: Trace | None = None, top_k: int | None = None) -> Any:
        """A rich renderable (print it with a rich Console); ``top_k`` as for :meth:`to_markdown`."""
        from attrib.render import attribution_rich

        return attribution_rich(self, trace, top_k)

    def to_otlp(self, trace: Trace | None = None, top_k: int = 5, with_steps: bool = False) -> dict[str, Any]:
        """The verdict as an OTLP/JSON span (in the run's own trace when it came from OTLP); ``with_steps``: the
        run's steps too, one span each, with the verdict linked to the decisive one (for runs from other formats)."""
        from attrib.render_otlp import attribution_otlp, trace_otlp

        if with_steps:
            if trace is None:  # it used to write the verdict alone, without a word
                from attrib.errors import UsageError

                raise UsageError(None, "trace", "with_steps=True writes the run's steps, so it needs the trace: "
                                 "verdict.to_otlp(trace, with_steps=True)")
            return trace_otlp(trace, self, top_k)
        return attribution_otlp(self, trace, top_k)

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """Bar charts of step probabilities and agent blame (± CI), matplotlib; saved to ``path`` when given."""
        from attrib.render import attribution_plot

        return attribution_plot(self, path)


#: The words of code executors', terminals' and tools' agent names (Who&When's ``Computer_terminal`` and
#: ``ComputerTerminal``, a ``python_repl``, a ``code_executor``...). A name is a tool's when all its words are
#: these: ``WomenInComputerScienceHistory_Expert`` or ``Computer_Vision_Expert`` is an expert (a search for the
#: words anywhere in the name made them tools and moved their blame to another agent).
TOOL_WORDS = frozenset({"terminal", "computer", "executor", "execution", "exec", "tool", "tools", "function",
                        "functions", "python", "ipython", "repl", "interpreter", "shell", "bash", "code", "sandbox",
                        "console", "runner"})
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def some_names(names: Iterable[str], most: int = 8) -> str:
    """Names for a one-line message: the first ``most``, then how many more (a run of 200 agents listed them all)."""
    names = list(names)
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


_HUMAN_AGENT = re.compile(r"^(human|user|customer|client)$", re.I)


def is_human_agent(agent: str) -> bool:
    """The person who asks (``user``, ``human``, ``customer``, ``client``): the run's task, not an agent to blame.
    Kept here beside :func:`is_tool_agent`, free of numpy, so readers and methods ask the same rule."""
    return bool(_HUMAN_AGENT.match(agent.strip()))


def is_agent_step(step: Step) -> bool:
    """Whether ``step`` is an agent's or a tool's, so something a verdict may name: not the human's own message
    (by name, :func:`is_human_agent`: AutoGen and Who&When give agents' messages the role "user") nor a system
    message (the prompt, which no agent's fix repairs)."""
    return step.role != "system" and not is_human_agent(step.agent)


def is_tool_agent(agent: str, role: str = "") -> bool:
    """Code executors, terminals and tools: they run others' actions rather than decide. By role, else by name
    (AutoGen and Who&When give a terminal's output the role "user"): every word of the name is one of
    :data:`TOOL_WORDS` (``Computer_terminal``, ``code_executor``; not ``Computer_Vision_Expert``)."""
    words = _NAME_WORDS.findall(agent)
    return role == "tool" or (bool(words) and all(w.lower() in TOOL_WORDS for w in words))


def is_tool_step(step: Step, calling: Collection[str] = frozenset()) -> bool:
    """Whether ``step`` is a tool's or code executor's (its blame goes to the agent that called it): its role is
    ``tool``, else its agent's name is a tool's (:func:`is_tool_agent`), unless the step makes tool calls or its
    agent is one of ``calling``, the agents that make tool calls in the run (:func:`tool_steps`): a LangGraph
    ``executor`` node is an LLM agent that decides which tool to call. The one test of a tool step, kept here, free
    of numpy, so that the features, the flow graph, the ranker's agent game and the label check all mean the same
    steps. Tool results alone do not make a tool step: the OTLP and chat readers give a step that carries them the
    role ``tool`` anyway."""
    if step.role == "tool":
        return True
    return not step.tool_calls and step.agent not in calling and is_tool_agent(step.agent)


def calling_agents(steps: Iterable[Step]) -> frozenset[str]:
    """The agents that make tool calls in a run (so are no tools, whatever their names: :func:`is_tool_step`)."""
    return frozenset(s.agent for s in steps if s.tool_calls and s.role != "tool")


def tool_steps(steps: Sequence[Step]) -> list[bool]:
    """:func:`is_tool_step` of every step of a run."""
    calling = calling_agents(steps)
    return [is_tool_step(s, calling) for s in steps]


def deciding_agent(i: int, step: Callable[[int], Step], is_tool: Callable[[int], bool] | None = None,
                   back: int | None = None) -> str:
    """The agent whose decision step ``i`` carries out: its own, except for a tool's or code executor's step
    (``is_tool(i)``, default :func:`is_tool_step`), which answers the agent that called it. That caller is the one the
    trace records (``Step.parents``: the latest parent that is not a tool; a tool parent passes on its own caller);
    without parents, the last step before it that is no tool's (within ``back`` steps; None: any); with none, the
    tool itself. The ranker's agent game (:func:`deciding_agents`, the same rule in one pass) and the label check both
    ask this, so the agent a tool step's blame goes to is the agent its label may name. ``step(j)`` gives step j (a
    store reads only those needed)."""
    tool = is_tool if is_tool is not None else (lambda j: is_tool_step(step(j)))
    j = i
    while tool(j):
        s = step(j)
        parents = [p for p in s.parents if 0 <= p < j]
        deciding = [p for p in parents if not tool(p)]
        if deciding:
            return step(max(deciding)).agent
        if not parents:
            stop = -1 if back is None else max(-1, j - 1 - back)
            return next((step(k).agent for k in range(j - 1, stop, -1) if not tool(k)), s.agent)
        j = max(parents)  # only tools called it: it answers whoever called the latest of them
    return step(j).agent


def deciding_agents(steps: Sequence[Step], is_tool: Sequence[bool]) -> list[str]:
    """:func:`deciding_agent` of every step, in one pass (linear: a step's parents come before it, so a tool parent's
    caller is already known, and so is the last deciding agent)."""
    out: list[str] = []
    last: str | None = None
    for j, s in enumerate(steps):
        if not is_tool[j]:
            out.append(s.agent)
            last = s.agent
            continue
        parents = [p for p in s.parents if 0 <= p < j]
        deciding = [p for p in parents if not is_tool[p]]
        out.append(steps[max(deciding)].agent if deciding else out[max(parents)] if parents
                   else last if last is not None else s.agent)
    return out


def tools_to_callers(steps: Sequence[Step], owners: Sequence[str]) -> list[dict[str, object]]:
    """Where tool steps' blame went in an agent table whose players are ``owners`` (each step's deciding agent:
    :func:`deciding_agents`), as ``evidence["tool_steps_to_caller"]`` lists it for the reports: one entry per
    (author, caller) with its steps, ``{"agent": "Computer_terminal", "caller": "X", "steps": [2, 7]}``."""
    moved: dict[tuple[str, str], list[int]] = {}  # so a verdict grows per pair, not per step
    for i, o in enumerate(owners):
        if o != steps[i].agent:
            moved.setdefault((steps[i].agent, o), []).append(i)
    return [{"agent": a, "caller": c, "steps": st} for (a, c), st in moved.items()]


def tool_agents(steps: Sequence[Step]) -> tuple[str, ...]:
    """The "agents" that are tools, in order of first appearance: every step of theirs is a tool result under that
    tool's own name (a LangGraph or OpenAI tool message, whose speaker is the tool). An agent that calls tools, or
    an OTLP agent whose spans are all tool spans, is no tool. ``attrib traces`` lists them apart from the agents (the
    store keeps them beside the agents at ingest)."""
    tool: dict[str, bool] = {}
    for s in steps:
        own = s.role == "tool" and bool(s.tool_results) and s.tool_results[0].name == s.agent
        tool[s.agent] = tool.get(s.agent, True) and own
    return tuple(a for a, t in tool.items() if t)


def step_parts(step: Step, arguments: Callable[[str], str] = str, text: Callable[[str], str] = str
               ) -> list[tuple[str, str]]:
    """What a step says, in the order ``attrib traces show`` and the reports show it, as ``(kind, text)`` parts: the
    content (left out when ``text`` makes it empty) then the calls it makes ("call": ``→ name(args)``), or for a tool
    step the call it answers and what came back ("result", "error": ``← ...``; its content repeats the result).
    ``arguments`` shortens a call's arguments, ``text`` the content and results. Each caller styles the parts."""
    calls = [("call", f"→ {c.name}({arguments(c.arguments)})") for c in step.tool_calls]
    if step.tool_results:
        return calls + [("error" if r.is_error else "result", f"← {text(r.content)}") for r in step.tool_results]
    content = text(step.content)
    return ([("content", content)] if content else []) + calls


def step_words(step: Step, n: int | None = None) -> str:
    """A step's text on one line, as ``attrib traces show`` words it (:func:`step_parts`): its content and the calls it
    makes ("→ get_stock({"sku": "W-7"})"), or for a tool step the call it answers and what came back ("← ..."). A
    step that only calls a tool has no content, and its excerpt in a report read blank; reports and the evidence use
    this. ``n``: at most that many characters, a tool step's arguments cut to a third of them so its result still
    shows."""
    def args(a: str) -> str:
        a = " ".join(a.split())
        if n is not None and step.tool_results and len(a) > n // 3:
            a = a[: max(0, n // 3 - 1)] + "…"
        return a

    text = " ".join(" ".join(t for _, t in step_parts(step, args)).split())
    return text if n is None else text[:n]


#: How far around a mismatched label :func:`label_mismatch` looks for a step of the labelled agent, and how far back
#: for the agent a tool step without parent links answers.
_NEAR, _BACK = 3, 20


def label_window(label: Label, n_steps: int) -> range:
    """The steps :func:`label_mismatch` may read for ``label`` besides the parents of a tool step (which may lie
    anywhere before it), so that a store reads them in one query: from :data:`_BACK` before the labelled step to
    :data:`_NEAR` after it."""
    i = label.mistake_step
    if not 0 <= i < n_steps:
        return range(0)
    return range(max(0, i - _BACK), min(n_steps, i + _NEAR + 1))


def label_mismatch(label: Label, step: Callable[[int], Step], n_steps: int,
                   calling: Collection[str] = frozenset()) -> str | None:
    """Why ``label.mistake_agent`` did not write step ``label.mistake_step``, in one line; None when it did, or when
    the step is a tool's or executor's whose blame goes to that agent (:func:`deciding_agent`, looking back at most
    :data:`_BACK` steps without parent links: Who&When labels a Computer_terminal step with the expert who ran the
    code). ``step(i)`` gives step i (a store reads only the steps it needs: :func:`label_window`, and a tool step's
    parents), ``n_steps`` their number, ``calling`` the run's agents that make tool calls (:func:`calling_agents`;
    a store's window of steps cannot say, and without it a text step of such an agent whose name is a tool's counts
    as a tool's here).

    Also said: a label that blames the human who asked (:func:`is_human_agent`), and one that names a tool on its
    own result step (attrib counts that step to the caller, so a ranker fitted on such labels names a tool).

    A mismatch is worth a warning, not an error: Who&When itself holds a few, but in a user's log it is usually an
    off-by-one (tool results count as steps)."""
    i, agent = label.mistake_step, label.mistake_agent
    if not 0 <= i < n_steps:
        return None
    if is_human_agent(agent):  # no agent fix repairs the question itself; a ranker fitted on it learns to blame users
        return (f"the label blames {agent}, the person who asked, at step {i}: no agent's fix repairs that; label the "
                "agent that first went wrong")
    s = step(i)
    if s.agent == agent:
        if is_tool_step(s, calling):  # the tool that answered, not the call: attrib blames the agent that called it
            caller = deciding_agent(i, step, lambda j: is_tool_step(step(j), calling), back=_BACK)
            if caller != agent:
                return (f"step {i} is {agent}'s result, a tool answering {caller}: attrib counts a tool's step to the "
                        f"agent that called it (a tool is not repaired, the call is), so label {caller}, or the step "
                        "that made the call")
        return None
    answered: str | None = None  # the agent a tool step answers
    if is_tool_step(s, calling):
        answered = deciding_agent(i, step, lambda j: is_tool_step(step(j), calling), back=_BACK)
        if answered == agent:
            return None
    who = f"{s.agent}, a tool answering {answered}" if answered and answered != s.agent else s.agent
    near = next((j for d in range(1, _NEAR + 1) for j in (i + d, i - d) if 0 <= j < n_steps and step(j).agent == agent),
                None)
    hint = (f"{agent}'s nearest step is {near}" if near is not None
            else f"{agent} writes no step within {_NEAR} of it")
    return f"step {i} was written by {who}, not by {agent}; {hint} (steps count every message from 0, tool results " \
           "included)"


_MISSING = re.compile(r"Object missing required field `([^`]+)`")


def validation_field(msg: str) -> tuple[str | None, str]:
    """(field, message) of a msgspec validation error, in the spelling the other readers' errors use.

    msgspec says ``Expected `str`, got `int` - at `$.steps[0].agent``` and, for a missing key,
    ``Object missing required field `id```; users need the field path first (``steps[0].agent``), and the
    missing key is part of it (``id: missing required field``), not of the message.
    """
    text, _, where = msg.partition(" - at ")
    field = where.strip("`").removeprefix("$").removeprefix(".") or None
    m = _MISSING.fullmatch(text)
    if m:
        return (f"{field}.{m.group(1)}" if field else m.group(1)), "missing required field"
    text = text.replace("`", "")
    return field, text[:1].lower() + text[1:]


def fingerprint(trace: Trace) -> str:
    """Identity of a run by its step texts: the same log under another id, format or question id matches."""
    return hashlib.sha1("\x1e".join(s.content for s in trace.steps).encode()).hexdigest()


def task_key(trace: Trace) -> str | None:
    """Identity of a run's task by its text (as :func:`group_reruns` compares it), or None for a run without one:
    a ranker file lists its runs' task keys so a verdict can say the ranker saw another run of the same task."""
    task = trace.task.strip()
    return hashlib.sha1(task.encode()).hexdigest() if task else None


def question_id(trace: Trace) -> str:
    """The grouping key for cross-validation (``metadata.question_id``, else the trace id): re-runs of one
    task share it, and no question may sit in both train and test."""
    return str(trace.metadata.get("question_id") or trace.id)


def group_reruns(traces: list[Trace]) -> tuple[list[Trace], int, int]:
    """Give re-runs of one task one ``metadata.question_id``, so grouped folds keep them together instead of
    treating each as a task of its own. Returns the traces, how many were grouped by task text and how many as
    copies:

    * a run without a question id (OTLP files cannot carry one) whose task text is another run's gets that run's
      question id (runs with an explicit one are not moved by their task text);
    * then a run whose steps repeat an earlier run's exactly (:func:`fingerprint`) gets that run's question id, so
      no copy is scored by a model fitted on another.
    """
    tasks = [t.task.strip() for t in traces]
    key: dict[str, str] = {}  # task text -> the group key of its first run (an explicit id wins)
    unnamed: dict[str, int] = {}  # task text -> how many runs without a question id have it
    for t, task in zip(traces, tasks, strict=True):
        if task and t.metadata.get("question_id"):
            key.setdefault(task, question_id(t))
        elif task:
            unnamed[task] = unnamed.get(task, 0) + 1
    first: dict[str, str] = {}  # fingerprint -> the question id of its first run
    out, n_task, n_copies = [], 0, 0
    for t, task in zip(traces, tasks, strict=True):
        qid, moved = question_id(t), False
        if task and not t.metadata.get("question_id") and (task in key or unnamed[task] >= 2):
            qid = key.setdefault(task, "task-" + str(task_key(t))[:12])
            n_task, moved = n_task + 1, True
        fp = fingerprint(t)
        if fp in first and first[fp] != qid:
            qid = first[fp]
            n_copies, moved = n_copies + 1, True
        first.setdefault(fp, qid)
        out.append(msgspec.structs.replace(t, metadata={**t.metadata, "question_id": qid}) if moved else t)
    return out, n_task, n_copies


def with_activation_paths(trace: Trace, fn: Callable[[str], str]) -> Trace:
    """The trace with every step's activation path replaced by ``fn(path)`` (readers resolve, writers relativise)."""
    if not any(s.activation is not None for s in trace.steps):
        return trace
    steps = tuple(
        s if s.activation is None
        else msgspec.structs.replace(s, activation=msgspec.structs.replace(s.activation, path=fn(s.activation.path)))
        for s in trace.steps
    )
    return msgspec.structs.replace(trace, steps=steps)


#: What each field means, for the JSON Schemas (kept here rather than as annotations so the structs stay readable).
FIELD_DOCS: dict[str, dict[str, str]] = {
    "Trace": {
        "id": "Unique id of the run (the store's key).",
        "source_format": "The reader that produced it: whowhen, otlp, chat or attrib.",
        "steps": "The run's messages/actions in order; step i has index i.",
        "task": "What the run was asked to do.",
        "outcome": "Whether the run failed; attribution assumes it did. A labelled run whose outcome is unknown is "
                   "failed.",
        "final_answer": "The run's final answer, when the log states it.",
        "ground_truth": "The correct answer, when known (Who&When's 'with ground truth' setting).",
        "agents": "Agent names in order of first appearance (derived from the steps when left out).",
        "label": "The annotated decisive mistake, for evaluation only; methods never see it.",
        "metadata": "Anything else; metadata.question_id groups re-runs of one task for cross-validation.",
    },
    "Step": {
        "index": "0-based position in the run (Who&When's mistake_step counts the same way).",
        "agent": "The agent that took the step; tools and code executors are agents too.",
        "content": "The message text or the tool's output.",
        "role": "user, assistant, tool or system.",
        "tool_calls": "Tool invocations this step requested.",
        "tool_results": "What tools returned, on a tool step.",
        "parents": "Indexes of earlier steps this one answers (a tool result's caller, a span's parent).",
        "start_time": "Unix seconds, when known.",
        "end_time": "Unix seconds, when known.",
        "tokens_in": "This step's own prompt tokens, when known (a run total rolled up from its children sits in metadata).",
        "tokens_out": "This step's own completion tokens, when known.",
        "activation": "Where the step's recorded model activations are, named by TransformerLens hook path.",
        "metadata": "Anything else the reader kept (e.g. raw_name, span ids).",
    },
    "Label": {
        "mistake_agent": "The agent annotated as causing the failure.",
        "mistake_step": "The index of the decisive step: the earliest whose fix would have saved the run.",
        "reason": "The annotator's explanation.",
    },
    "Attribution": {
        "trace_id": "The run this verdict is about.",
        "method": "The attribution method (learned is the offline default).",
        "agent": "The blamed agent.",
        "step": "The decisive step's index.",
        "confidence": "Probability that the step is right: calibrated on annotated runs when "
                      "evidence.confidence_kind is 'calibrated' (the learned method); else the score it names.",
        "agent_confidence": "Probability that the agent is right (calibrated for the learned method, as above).",
        "agents": "Agents ranked by Shapley blame, with confidence intervals.",
        "steps": "Every step's blame score and probability of being the decisive one.",
        "evidence": "What the verdict rests on: graph_path (the strongest flow-graph path from the step to "
                    "the failure) and graph_path_hops (what each hop carries, e.g. 'reuses 33.0'), features and feature_meanings (the step's signals), "
                    "agent_features and agent_feature_meanings (the agent head's), first_passage, step_set (the "
                    "conformal set: level, steps), ranker (which fitted ranker decided), step_text...",
        "reason": "One paragraph saying why, in words.",
        "elapsed_s": "Seconds the method took.",
    },
}


def json_schema(kind: str = "trace") -> dict[str, Any]:
    """The JSON Schema of attrib's own trace format (``"trace"``: what ``attrib traces show --json`` prints and the
    ``attrib`` reader reads) or of a verdict (``"attribution"``: what ``attrib analyze --json`` prints)."""
    models = {"trace": Trace, "attribution": Attribution}
    if kind not in models:
        raise ValueError(f"kind must be one of {', '.join(models)}, got {kind!r}")
    schema = msgspec.json.schema(models[kind])
    for name, fields in FIELD_DOCS.items():
        props = schema["$defs"].get(name, {}).get("properties", {})
        for field, doc in fields.items():
            if field in props:
                props[field]["description"] = doc
    if kind == "trace":  # what the readers refuse, said where a schema can: a run has at least one step
        schema["$defs"]["Trace"]["properties"]["steps"]["minItems"] = 1
    return schema
