"""LLM judges: the Who&When paper's all-at-once, step-by-step and binary-search strategies, and a hybrid
that shows the judge the offline ranking as evidence. For users with an OpenAI-compatible endpoint.

Each strategy is ``fn(trace, *, llm=None, **options) -> Attribution`` (``llm``: an
:class:`~attrib.llm.LLMConfig`, an :class:`~attrib.llm.LLMClient`, or None for
:meth:`LLMConfig.from_env`). Strategies follow Zhang et al., "Which Agent Causes Task Failures and
When?" (ICML 2025): *all-at-once* shows the whole log and asks for agent and step; *step-by-step*
walks the log and stops at the first step the judge calls an error (no error found: the last step,
as in the paper); *binary search* asks which half of the current segment holds the decisive
mistake until one step remains. Unlike the paper's free-text answers, every call asks for a JSON
object (constrained by a JSON schema where the server supports it).

Robust answers: an answer that is not JSON, names an unknown agent or an out-of-range step is sent
back with a corrective message, up to ``answer_retries`` times (default 2); then
:class:`~attrib.errors.NoVerdictError`. An agent is taken by its exact name, the same name up to case,
spaces, underscores, hyphens and a display suffix such as "(thought)", or as whole words among filler
("the WebSurfer agent"); a fragment of a longer, different name ("Senior_Code_Reviewer" for ``coder``) is
unknown (:func:`match_agent`). A verdict whose agent did not write the named step gets one more round ("step N was
written by X, not Y: ..."); still mismatched, the step is kept and its author reported
(``evidence["agent_matches_step"]``).

Budget for long traces (documented, override per call): the transcript shown to the judge, its
``Step i - agent:`` heads included, holds at most ``context_chars`` characters (default 48,000, about 12k
tokens at ~4 characters per token). When every step fits with at least 160 characters, all are shown,
each cut to the same limit (at most ``step_chars``, default 2,000; short steps leave their room to long
ones), keeping the head and the tail of a long step with a ``[... N chars cut ...]`` marker between.
Otherwise middle steps are left out: the first and the last are always shown, then (hybrid) the offline
method's top steps, then the steps with the most failure signal (:func:`step_signal`), as many as fit;
the transcript says how many steps are not shown and marks each gap, and ``evidence["elided_steps"]``
lists them (:func:`fit_steps`). The task and the ground truth are cut to
``min(step_chars, max(320, context_chars // 4))``.

Confidence: what the judge reports in its ``confidence`` field (0..1), which is NOT calibrated;
``evidence["confidence_source"]`` says so, and says "none given: 0.5 placeholder (...)" when the answer had
no usable confidence (absent, out of range, NaN, not a number). ``evidence["confidence_kind"]`` (never
"calibrated") and ``evidence["agent_blame"]`` ("judge confidence") make reports call it a score and title
the agent table accordingly, not Shapley blame. Binary search multiplies the confidences of its halvings.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from attrib.errors import AttribError, NoVerdictError, whole_number
from attrib.llm import (
    AnswerParseError,
    LLMClient,
    LLMConfig,
    LLMError,
    context_chars_from_env,
    get_client,
    parse_json_answers,
)
from attrib.trace import AgentBlame, Attribution, Step, StepBlame, Trace

DEFAULT_CONTEXT_CHARS = 48_000
DEFAULT_STEP_CHARS = 2_000
MIN_STEP_CHARS = 160
MIN_CONTEXT_CHARS = 500  # the least --llm-context-chars takes
MIN_TEXT_CHARS = 40  # the least step_chars / reason_chars: room for a line of a step, or of a reason
DEFAULT_ANSWER_RETRIES = 2
DEFAULT_CONFIDENCE = 0.5  # used when a judge gives no confidence of its own
REASON_MAX_CHARS = 400

_SYSTEM = "You find which agent and step caused a multi-agent AI team to fail. You answer in JSON only."


class VerdictProblem(ValueError):
    """An answer that parsed but does not fit the trace (unknown agent, step out of range, ...)."""


# ---------------------------------------------------------------------------------------------
# Rendering a trace for the judge (pure)
# ---------------------------------------------------------------------------------------------


def truncate_middle(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, keeping its head and tail around a marker."""
    if len(text) <= limit:
        return text
    marker = f" [... {len(text) - limit} chars cut ...] "
    keep = max(0, limit - len(marker))
    head = keep * 2 // 3
    return text[:head] + marker + text[len(text) - (keep - head) :] if keep else text[:limit]


def step_budget(n_steps: int, context_chars: int = DEFAULT_CONTEXT_CHARS, step_chars: int = DEFAULT_STEP_CHARS) -> int:
    """``min(step_chars, context_chars // n_steps)``, at least 160: a quick guide to how much of each step a
    judge sees. The judges render with :func:`fit_steps`, which also counts the step heads and, when even 160
    characters a step do not fit, leaves middle steps out instead of exceeding the budget."""
    return max(MIN_STEP_CHARS, min(step_chars, context_chars // max(1, n_steps)))


def step_text(step: Step) -> str:
    """A step's content with its tool calls and results, as one string."""
    parts = [step.content.strip()]
    parts += [f"[tool call] {c.name}({c.arguments})" for c in step.tool_calls]
    parts += [f"[tool {'error' if r.is_error else 'result'}] {r.content}" for r in step.tool_results]
    return "\n".join(p for p in parts if p)


def render_steps(steps: Sequence[Step], budget: int) -> str:
    """``Step i - agent: text`` lines, each step's text cut to ``budget`` characters."""
    return "\n".join(_step_line(s, budget) for s in steps)


def _step_line(step: Step, budget: int, text: str | None = None) -> str:
    return f"Step {step.index} - {step.agent}: {truncate_middle(step_text(step) if text is None else text, budget)}"


# what makes a step worth keeping when not all fit: failures, refusals, doubts, and answers
_SIGNAL = re.compile(
    r"\b(error|exception|traceback|fail(?:s|ed|ure)?|incorrect|wrong|invalid|unable|cannot|can't|not found|"
    r"mistake|sorry|unfortunately|assum\w*|guess\w*|final answer)\b",
    re.IGNORECASE,
)


def step_signal(step: Step) -> int:
    """How much a step says about a failure, for choosing which steps a tight budget keeps: 3 for a tool
    error, 1 for a tool call, plus the number of distinct failure words (error, wrong, unable, final answer ...)
    up to 3. A heuristic: it only orders the steps to keep, it never scores them."""
    words = {m.lower() for m in _SIGNAL.findall(step_text(step))}
    return 3 * any(r.is_error for r in step.tool_results) + bool(step.tool_calls) + min(3, len(words))


class Transcript(NamedTuple):
    """The steps as the judge sees them: ``text`` holds at most ``context_chars`` characters."""

    text: str
    per_step: int  # the most characters of text a shown step keeps
    shown: tuple[int, ...]  # Step.index of the steps shown
    elided: tuple[int, ...]  # Step.index of the steps left out to fit the budget


def _fill(lengths: Sequence[int], room: int, cap: int) -> int:
    """The largest cut ``p <= cap`` with ``sum(min(length, p)) <= room`` (short steps leave room to longer ones)."""
    if sum(min(n, cap) for n in lengths) <= room:
        return cap
    lo, hi = 0, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _gap(steps: Sequence[Step], a: int, b: int) -> str:
    """The marker for the steps at positions ``a..b`` that are not shown."""
    if a == b:
        return f"[... step {steps[a].index} not shown ...]"
    return f"[... steps {steps[a].index} to {steps[b].index} not shown ...]"


def fit_steps(
    steps: Sequence[Step],
    context_chars: int = DEFAULT_CONTEXT_CHARS,
    step_chars: int = DEFAULT_STEP_CHARS,
    prefer: Sequence[int] = (),
) -> Transcript:
    """The steps rendered in at most ``context_chars`` characters (their ``Step i - agent:`` heads included).

    When every step fits with at least ``MIN_STEP_CHARS`` (160) characters of text, all are shown, each cut to
    the same limit (at most ``step_chars``; short steps leave their room to the long ones). Otherwise middle
    steps are left out: the first and the last step are always shown, then the steps named in ``prefer``
    (``Step.index`` values, e.g. an offline ranking's top steps), then those with the most :func:`step_signal`
    (earlier first on ties), each with 160 characters, as many as fit; a first line says how many steps are
    not shown, and a ``[... steps i to j not shown ...]`` line marks each gap. Only a budget too small for
    even the first and the last step (about 400 characters) is exceeded, by their heads."""
    n = len(steps)
    if n == 0:
        return Transcript("", 0, (), ())
    texts = [step_text(s) for s in steps]
    heads = [len(_step_line(s, 0, "")) for s in steps]
    floor = min(MIN_STEP_CHARS, step_chars)
    per = _fill([len(t) for t in texts], context_chars - sum(heads) - (n - 1), step_chars)
    if per >= floor or n <= 2:
        per = max(0, per)
        return Transcript("\n".join(_step_line(s, per, t) for s, t in zip(steps, texts, strict=True)), per,
                          tuple(s.index for s in steps), ())  # fmt: skip

    def cost(i: int) -> int:
        return heads[i] + min(len(texts[i]), floor) + 1

    def gap_cost(a: int, b: int) -> int:
        return len(_gap(steps, a, b)) + 1 if a <= b else 0

    note_cost = len(_elision_note(n, n)) + 1
    kept = [0, n - 1]
    total = note_cost + cost(0) + cost(n - 1) - 1 + gap_cost(1, n - 2)
    pos = {s.index: i for i, s in enumerate(steps)}
    preferred = [pos[i] for i in dict.fromkeys(prefer) if i in pos and pos[i] not in (0, n - 1)]
    signal = [step_signal(s) for s in steps]  # a regex pass per step: once, not per comparison
    rank = {i: r for r, i in enumerate(preferred)}
    others = sorted((i for i in range(1, n - 1) if i not in rank), key=lambda i: (-signal[i], i))
    for i in preferred + others:
        k = bisect.bisect_left(kept, i)
        a, b = kept[k - 1], kept[k]
        delta = cost(i) + gap_cost(a + 1, i - 1) + gap_cost(i + 1, b - 1) - gap_cost(a + 1, b - 1)
        if total + delta <= context_chars:
            kept.insert(k, i)
            total += delta
    while True:
        gaps = [(a + 1, b - 1) for a, b in itertools.pairwise(kept) if b - a > 1]
        room = context_chars - note_cost - sum(gap_cost(a, b) for a, b in gaps) - sum(heads[i] + 1 for i in kept) + 1
        per = max(0, _fill([len(texts[i]) for i in kept], room, step_chars))
        lines = [_elision_note(n - len(kept), n)]
        for j, i in enumerate(kept):
            if j and i - kept[j - 1] > 1:
                lines.append(_gap(steps, kept[j - 1] + 1, i - 1))
            lines.append(_step_line(steps[i], per, texts[i]))
        text = "\n".join(lines)
        if len(text) <= context_chars or len(kept) <= 2:
            break
        kept.remove(max(kept[1:-1], key=lambda i: (rank.get(i, len(preferred)), -signal[i], i)))  # last chosen first
    shown = set(kept)
    return Transcript(text, per, tuple(steps[i].index for i in kept),
                      tuple(s.index for i, s in enumerate(steps) if i not in shown))  # fmt: skip


def _elision_note(n_elided: int, n: int) -> str:
    return f"({n_elided} of the {n} steps are not shown, to fit the length budget; each gap is marked.)"


def _problem_block(trace: Trace, step_chars: int, context_chars: int = DEFAULT_CONTEXT_CHARS) -> str:
    cut = min(step_chars, max(2 * MIN_STEP_CHARS, context_chars // 4))  # a small budget cuts the task too
    lines = [f"Task: {truncate_middle(trace.task.strip() or '(not given)', cut)}"]
    if trace.ground_truth:
        lines.append(f"Correct answer: {truncate_middle(str(trace.ground_truth), cut)}")
    if trace.final_answer:
        lines.append(f"The team's answer: {truncate_middle(str(trace.final_answer), cut)}")
    lines.append("The team failed.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Answer validation (pure)
# ---------------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# "Orchestrator (thought)", "Orchestrator (-> WebSurfer)": Magentic-One's display names of one agent
_PAREN = re.compile(r"\([^()]*\)")
# words a judge puts around an agent's name ("the WebSurfer agent", "agent Coder at step 3"); a name's own
# words never count as filler, only what is left around it
_FILLER = frozenset({"the", "a", "an", "agent", "agents", "named", "called", "is", "was", "it", "by", "from", "role",
                     "speaker", "at", "in", "step"})  # fmt: skip
MIN_CONTAINED_CHARS = 3  # a shorter name ("a", "qa") is only taken whole, never found inside an answer


def _words(name: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", _PAREN.sub(" ", name).lower())


def _names_within(answer: list[str], name: str) -> bool:
    """Whether the answer's words are ``name`` (its words, possibly split or joined differently) plus filler."""
    key = "".join(_words(name)) or _norm(name)
    if len(key) < MIN_CONTAINED_CHARS:
        return False
    for i in range(len(answer)):
        joined = ""
        for j in range(i, len(answer)):
            joined += answer[j]
            if joined == key:
                rest = answer[:i] + answer[j + 1 :]
                if all(w in _FILLER or w.isdigit() for w in rest):
                    return True
            if len(joined) >= len(key):
                break
    return False


def match_agent(name: Any, agents: Sequence[str]) -> str:
    """The trace agent ``name`` refers to, or :class:`VerdictProblem` (the judge is asked again).

    Taken: the exact name; the same name up to case, spaces, underscores, hyphens and a display suffix in
    parentheses ("data analysis expert", "Orchestrator (thought)"); the name as whole words among filler
    ("the WebSurfer agent"), when only one agent fits. Never a fragment inside a longer, different name:
    "Senior_Code_Reviewer" is not ``coder``, "Verification_Expert" is not ``a``."""
    if not isinstance(name, str) or not name.strip():
        raise VerdictProblem(f"'agent' must be one of {list(agents)}, got {name!r}")
    if name in agents:
        return name
    keys = {k for k in (_norm(name), "".join(_words(name))) if k}
    hits = [a for a in agents if keys & {k for k in (_norm(a), "".join(_words(a))) if k}]
    if not hits:
        answer = _words(name)
        hits = [a for a in agents if _names_within(answer, a)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise VerdictProblem(f"agent {name!r} is ambiguous (it fits {', '.join(hits)}): 'agent' must be exactly one "
                             f"of {list(agents)}")
    raise VerdictProblem(f"unknown agent {name!r}: 'agent' must be one of {list(agents)}")


def parse_step(value: Any, lo: int, hi: int) -> int:
    """An integer step in ``lo..hi`` from an int, an integral float or a string like '3' or 'Step 3'."""
    if isinstance(value, bool):
        raise VerdictProblem(f"'step' must be an integer between {lo} and {hi}, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(?:step\s*)?(-?\d+)\s*", value, re.IGNORECASE)
        value = int(m.group(1)) if m else value
    if not isinstance(value, int):
        raise VerdictProblem(f"'step' must be an integer between {lo} and {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise VerdictProblem(f"step {value} is out of range: 'step' must be between {lo} and {hi}")
    return value


def parse_confidence(value: Any) -> float | None:
    """A probability in 0..1 (or a string percentage such as '80%'); None when absent, unreadable or
    out of range (a bare 4 could mean 4 %, 40 % or 4 out of 5: better no number than a wrong one)."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    try:
        x = float(text.rstrip("%"))
    except ValueError:
        return None
    if text.endswith("%"):
        x /= 100.0
    return x if 0.0 <= x <= 1.0 else None


def parse_yes_no(value: Any) -> bool:
    """A judge's yes/no: a bool, or a string starting with yes/no/true/false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v.startswith(("yes", "true")):
            return True
        if v.startswith(("no", "false")):
            return False
    raise VerdictProblem(f"'error' must be true or false, got {value!r}")


def parse_half(value: Any) -> str:
    """'upper' (the first half) or 'lower' (the second half) from a judge's answer."""
    v = str(value or "").strip().lower()
    up = any(w in v for w in ("upper", "first", "earlier"))
    low = any(w in v for w in ("lower", "second", "later"))
    if up != low:
        return "upper" if up else "lower"
    raise VerdictProblem(f"'half' must be \"upper\" or \"lower\", got {value!r}")


# ---------------------------------------------------------------------------------------------
# Asking with corrective retries
# ---------------------------------------------------------------------------------------------


class _Session:
    """One judge run: the client, the call log, and the ask-validate-correct loop."""

    def __init__(self, method: str, client: LLMClient, answer_retries: int) -> None:
        self.method = method
        self.client = client
        self.answer_retries = answer_retries
        self.calls = 0
        self.corrections = 0
        self.last_answer = ""
        self.last_obj: dict[str, Any] = {}  # the last answer that parsed, valid or not
        self.history: list[dict[str, str]] = []  # the last conversation that ended in a valid answer
        self.tokens: dict[str, int] = {}  # the server's reported usage, summed over the calls
        self._http0 = (client.calls - client.lookups, client.retries - client.lookup_retries)

    def ask(self, prompt: str, schema: dict[str, Any], validate: Callable[[dict[str, Any]], Any], example: str,
            *, follow_up: bool = False) -> Any:
        """Ask ``prompt`` (``follow_up``: as the next turn of the last conversation) until an answer validates."""
        messages = ([*self.history, {"role": "user", "content": prompt}] if follow_up else
                    [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}])
        problems: list[str] = []
        for attempt in range(self.answer_retries + 1):
            res = self.client.chat(messages, json_schema=schema, max_tokens=None)
            self.calls += 1
            self.last_answer = res.text
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                n = res.usage.get(key)
                if isinstance(n, int) and not isinstance(n, bool):
                    self.tokens[key] = self.tokens.get(key, 0) + n
            try:
                answer = self._first_valid(parse_json_answers(res.text), validate)
                self.history = [*messages, {"role": "assistant", "content": res.text}]
                return answer
            except (AnswerParseError, VerdictProblem) as e:
                problem = str(e)
                if res.finish_reason == "length":
                    problem += " (the answer was cut off: keep 'reason' short)"
                problems.append(problem)
            if attempt < self.answer_retries:
                self.corrections += 1
                messages = [
                    *messages,
                    {"role": "assistant", "content": res.text},
                    {
                        "role": "user",
                        "content": f"Your answer is not valid: {problems[-1]}. Reply again with only one JSON "
                        f"object, exactly like {example}.",
                    },
                ]
        raise NoVerdictError(
            f"{self.method}: no valid answer from {self.client.model} at {self.client.config.base_url} after "
            f"{self.answer_retries + 1} attempts; last problem: {problems[-1]}; last answer: {self.last_answer.strip()[:160]!r}"
        )

    def _first_valid(self, objs: list[dict[str, Any]], validate: Callable[[dict[str, Any]], Any]) -> Any:
        """The first object of an answer that validates (a model may think aloud in one object, then answer in
        the next); none: the first one's problem."""
        first: VerdictProblem | None = None
        for obj in objs:
            self.last_obj = obj
            try:
                return validate(obj)
            except VerdictProblem as e:
                first = first or e
        self.last_obj = objs[0]
        assert first is not None  # parse_json_answers returns at least one object
        raise first

    def evidence(self) -> dict[str, Any]:
        return {
            "llm": {**self.client.config.redacted(), "model": self.client.model},
            "llm_calls": self.calls,
            # the trace's own requests: the client's one model lookup (the first trace a process judges) is not
            # this trace's, and counting it made a batch's verdicts differ by worker
            "http_requests": self.client.calls - self.client.lookups - self._http0[0],
            "http_retries": self.client.retries - self.client.lookup_retries - self._http0[1],
            "answer_corrections": self.corrections,
            "last_answer": self.last_answer[:500],
            # the cost on a paid endpoint: prompt / completion / total tokens over every call, when the server says
            **({"tokens": dict(self.tokens)} if self.tokens else {}),
        }

    def given_confidence(self) -> str:
        """What the last answer held as its confidence, for the evidence of a placeholder."""
        if "confidence" not in self.last_obj:
            return "the answer had no 'confidence'"
        return f"the answer's 'confidence' was {repr(self.last_obj['confidence'])[:40]}"


def _verdict_schema(trace: Trace, reason_chars: int = REASON_MAX_CHARS) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": reason_chars},
            "agent": {"type": "string", "enum": list(trace.agents)},
            "step": {"type": "integer", "minimum": 0, "maximum": trace.n_steps - 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["reason", "agent", "step", "confidence"],
    }


def _verdict_validator(trace: Trace) -> Callable[[dict[str, Any]], tuple[str, int, str, float | None]]:
    def validate(obj: dict[str, Any]) -> tuple[str, int, str, float | None]:
        agent = match_agent(obj.get("agent", obj.get("agent_name")), trace.agents)
        step = parse_step(obj.get("step", obj.get("step_number")), 0, trace.n_steps - 1)
        return agent, step, str(obj.get("reason", ""))[:2000], parse_confidence(obj.get("confidence"))

    return validate


def _ask_verdict(trace: Trace, s: _Session, prompt: str, reason_chars: int) -> tuple[str, int, str, float | None,
                                                                                      dict[str, Any], str]:
    """Ask for agent and step; when the named agent did not write the named step, ask once more ("step N was
    written by X, not Y: name the step Y made the mistake at, or name X"): the question is which agent erred at
    which step, and in Who&When the annotated agent wrote the annotated step in 178 of 184 logs. Still mismatched
    (or no valid second answer), the step is kept and its author taken as the agent, and the reason's tail says so.
    Returns agent, step, reason, confidence, evidence (``agent_matches_step``: whether the judge's final answer
    named the step's author) and that tail."""
    schema, example, validate = _verdict_schema(trace, reason_chars), _verdict_example(trace), _verdict_validator(trace)
    agent, step, reason, conf = s.ask(prompt, schema, validate, example)
    author = trace.steps[step].agent
    if author == agent:
        return agent, step, reason, conf, {"agent_matches_step": True}, ""
    first = {"agent": agent, "step": step, "author": author}
    follow = (f"Step {step} was written by {author}, not {agent}: name the step {agent} made the mistake at, or "
              f"name {author}. Reply with only one JSON object, exactly like {example}.")
    try:
        agent, step, reason, conf = s.ask(follow, schema, validate, example, follow_up=True)
    except LLMError:  # the endpoint failed, not the answer (some LLM errors are NoVerdictErrors too)
        raise
    except NoVerdictError:
        pass
    author = trace.steps[step].agent
    ev = {"agent_matches_step": author == agent, "agent_step_mismatch": first}
    if author == agent:
        return agent, step, reason, conf, ev, ""
    tail = (f"The judge named {agent} for step {step}, which {author} wrote, even when asked again: the step's "
            f"author, {author}, is reported.")
    return author, step, reason, conf, {**ev, "judge_agent": agent}, tail


def _verdict_example(trace: Trace) -> str:
    return (
        '{"reason": "<short>", "agent": "<one of: '
        + ", ".join(trace.agents)
        + f'>", "step": <0..{trace.n_steps - 1}>, "confidence": <0..1>}}'
    )


def _check_trace(trace: Trace, method: str) -> None:
    if trace.n_steps == 0:
        raise NoVerdictError(f"{method}: trace {trace.id!r} has no steps to judge")


class _Opts(NamedTuple):
    context_chars: int
    step_chars: int
    retries: int
    reason_chars: int


def _options(options: dict[str, Any]) -> _Opts:
    """The budget options every judge takes, each a whole number (``context_chars`` >= 500, ``step_chars`` and
    ``reason_chars`` >= 40, ``answer_retries`` >= 0: a :class:`UsageError` naming the option otherwise); anything
    else is a clear error. ``top_k`` (how many steps
    a renderer shows, passed by the CLI to every method) is accepted and ignored: a judge names one step."""
    options.pop("top_k", None)
    context = options.pop("context_chars", None)
    o = _Opts(
        context_chars=context_chars_from_env(DEFAULT_CONTEXT_CHARS, MIN_CONTEXT_CHARS) if context is None else whole_number("context_chars", context,
                                                                                 MIN_CONTEXT_CHARS),
        step_chars=whole_number("step_chars", options.pop("step_chars", DEFAULT_STEP_CHARS), MIN_TEXT_CHARS),
        retries=whole_number("answer_retries", options.pop("answer_retries", DEFAULT_ANSWER_RETRIES), 0),
        reason_chars=whole_number("reason_chars", options.pop("reason_chars", REASON_MAX_CHARS), MIN_TEXT_CHARS),
    )
    if options:
        raise AttribError(
            f"unknown judge option(s): {', '.join(sorted(options))} "
            "(known: context_chars, step_chars, answer_retries, reason_chars; hybrid also top_k, offline_options)"
        )
    return o


SELF_REPORTED = "self-reported by the LLM (not calibrated)"
AGENT_BLAME = "judge confidence"  # what a judge's one-row agent table holds (render.py titles it so, not Shapley)


def _attribution(
    trace: Trace, method: str, agent: str, step: int, reason: str, conf: float | None, session: _Session,
    *, source: str | None = None, kind: str | None = None, said: str = "", conf_note: str | None = None,
    tail: str = "", own_reason: bool = False, **evidence: Any,
) -> Attribution:  # fmt: skip
    """The verdict. ``conf`` None (no usable confidence in the answer) gives the 0.5 placeholder, and the
    evidence says so; ``source``/``kind`` describe a confidence the strategy derived itself.

    The report's reason is the judge's own words, quoted and attributed to the model (``said``: what the judge did,
    e.g. " judged step 3 an error"), followed by what its confidence is (``conf_note``; default: self-reported, not
    calibrated, or a placeholder) and ``tail``: the text, Markdown, OTLP and inspector reports all show the reason,
    so each says where the number comes from. ``own_reason``: ``reason`` is attrib's own text, shown as is.
    ``evidence["judge_reason"]`` keeps the judge's words unframed."""
    c = DEFAULT_CONFIDENCE if conf is None else conf
    if source is None:
        source = SELF_REPORTED if conf is not None else _placeholder(session.given_confidence())
    if kind is None:
        kind = ("the judge's self-reported confidence, not calibrated" if conf is not None
                else f"a {DEFAULT_CONFIDENCE:g} placeholder: the judge gave no usable confidence")  # fmt: skip
    judge_reason = "" if own_reason else " ".join(reason.split())
    if not own_reason:
        if conf_note is None:
            conf_note = (f"its confidence {c:.2f} is self-reported, not calibrated" if conf is not None
                         else f"it gave no usable confidence: {c:g} is a placeholder")  # fmt: skip
        who = f"The judge ({session.client.model}){said}"
        reason = f'{who}: "{judge_reason}"' if judge_reason else f"{who}, giving no reason"
        reason += f" ({conf_note})."
    return Attribution(
        trace_id=trace.id,
        method=method,
        agent=agent,
        step=step,
        confidence=c,
        agent_confidence=c,
        agents=(AgentBlame(agent=agent, score=c),),
        # a score, not a probability of being the decisive step: the judge reports one number for its one answer
        steps=(StepBlame(step=step, agent=trace.steps[step].agent, score=c),),
        evidence={**session.evidence(), "confidence_source": source, "confidence_kind": kind,
                  "agent_blame": AGENT_BLAME, "judge_reason": judge_reason, **evidence},  # fmt: skip
        reason=f"{reason} {tail}".strip(),
    )


def _placeholder(why: str) -> str:
    return f"none given: {DEFAULT_CONFIDENCE:g} placeholder ({why}; a confidence must be a number from 0 to 1)"


# ---------------------------------------------------------------------------------------------
# The strategies
# ---------------------------------------------------------------------------------------------


def _all_at_once_prompt(
    trace: Trace, context_chars: int, step_chars: int, extra: str = "", prefer: Sequence[int] = ()
) -> tuple[str, Transcript]:
    fit = fit_steps(trace.steps, context_chars, step_chars, prefer)
    prompt = (
        f"{_problem_block(trace, step_chars, context_chars)}\n\n"
        f"The conversation, steps 0 to {trace.n_steps - 1}:\n{fit.text}\n\n{extra}"
        "Which agent's mistake directly caused the failure, and at which step did it first make it? "
        "If none is obvious, pick the most responsible step.\n"
        f"Answer with only this JSON: {_verdict_example(trace)}"
    )
    return prompt, fit


def _budget_evidence(fit: Transcript) -> dict[str, Any]:
    return {"step_budget_chars": fit.per_step, "elided_steps": list(fit.elided)}


def all_at_once(trace: Trace, *, llm: LLMConfig | LLMClient | None = None, **options: Any) -> Attribution:
    """Who&When all-at-once: the whole (budgeted) log in one prompt; the judge names agent and step."""
    method = "judge-all"
    _check_trace(trace, method)
    o = _options(options)
    s = _Session(method, get_client(llm), o.retries)
    prompt, fit = _all_at_once_prompt(trace, o.context_chars, o.step_chars)
    agent, step, reason, conf, match, tail = _ask_verdict(trace, s, prompt, o.reason_chars)
    return _attribution(trace, method, agent, step, reason, conf, s, tail=tail, **match, **_budget_evidence(fit))


def step_by_step(trace: Trace, *, llm: LLMConfig | LLMClient | None = None, **options: Any) -> Attribution:
    """Who&When step-by-step: judge each step given the log so far; the first step judged an error wins.

    One call per step until the first error (up to ``n_steps`` calls). When no step is judged an
    error, the verdict is the last step, as in the paper, with confidence ``1 / n_steps``.
    """
    method = "judge-step"
    _check_trace(trace, method)
    o = _options(options)
    s = _Session(method, get_client(llm), o.retries)
    schema = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": o.reason_chars},
            "error": {"type": "boolean"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["reason", "error", "confidence"],
    }
    example = '{"reason": "<short>", "error": <true or false>, "confidence": <0..1>}'

    def validate(obj: dict[str, Any]) -> tuple[bool, str, float | None]:
        return parse_yes_no(obj.get("error")), str(obj.get("reason", ""))[:2000], parse_confidence(obj.get("confidence"))

    judged: list[dict[str, Any]] = []
    problem = _problem_block(trace, o.step_chars, o.context_chars)
    budget = 0
    for i, st in enumerate(trace.steps):
        fit = fit_steps(trace.steps[: i + 1], o.context_chars, o.step_chars)
        budget = fit.per_step
        prompt = (
            f"{problem}\n\n"
            f"The conversation so far:\n{fit.text}\n\n"
            f"Does the latest step ({i}, by {st.agent}) contain an error that clearly derails solving the task? "
            f"Do not be overly critical.\nAnswer with only this JSON: {example}"
        )
        is_error, reason, conf = s.ask(prompt, schema, validate, example)
        judged.append({"step": i, "error": is_error, **({"elided": len(fit.elided)} if fit.elided else {})})
        if is_error:
            return _attribution(trace, method, st.agent, i, reason, conf, s, said=f" judged step {i} an error",
                                judged_steps=judged, step_budget_chars=budget)  # fmt: skip
    last = trace.n_steps - 1
    return _attribution(
        trace, method, trace.steps[last].agent, last,
        f"No step was judged an error by the judge ({s.client.model}); the last step is reported, as in the Who&When "
        f"paper (score 1 / {trace.n_steps} steps, not from the LLM, not calibrated).",
        1.0 / trace.n_steps, s, judged_steps=judged, step_budget_chars=budget, no_error_found=True,
        source="1 / n_steps: no step was judged an error (not from the LLM)",
        kind="1 / n_steps: no step was judged an error, not calibrated", own_reason=True,
    )  # fmt: skip


def binary_search(trace: Trace, *, llm: LLMConfig | LLMClient | None = None, **options: Any) -> Attribution:
    """Who&When binary search: ask which half of the segment holds the decisive mistake; recurse.

    At most ``ceil(log2 n_steps)`` calls (fewer when the lower halves, one step longer, are not taken).
    Confidence is the product of the halvings' reported confidences.
    """
    method = "judge-binary"
    _check_trace(trace, method)
    o = _options(options)
    context_chars, step_chars = o.context_chars, o.step_chars
    s = _Session(method, get_client(llm), o.retries)
    schema = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": o.reason_chars},
            "half": {"type": "string", "enum": ["upper", "lower"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["reason", "half", "confidence"],
    }
    example = '{"reason": "<short>", "half": "<upper or lower>", "confidence": <0..1>}'

    def validate(obj: dict[str, Any]) -> tuple[str, str, float | None]:
        return parse_half(obj.get("half")), str(obj.get("reason", ""))[:2000], parse_confidence(obj.get("confidence"))

    lo, hi, conf, path, reason, missing = 0, trace.n_steps - 1, 1.0, [], "", 0
    problem = _problem_block(trace, step_chars, context_chars)  # the same for every halving
    while lo < hi:
        mid = (lo + hi) // 2
        fit = fit_steps(trace.steps[lo : hi + 1], context_chars, step_chars)
        prompt = (
            f"{problem}\n\n"
            f"A segment of the conversation, steps {lo} to {hi}:\n{fit.text}\n\n"
            "The mistake that caused the failure is in this segment. Is it in the upper half (steps "
            f"{lo} to {mid}) or the lower half (steps {mid + 1} to {hi})? If unclear, pick the half most "
            f"responsible.\nAnswer with only this JSON: {example}"
        )
        half, reason, c = s.ask(prompt, schema, validate, example)
        missing += c is None
        conf *= DEFAULT_CONFIDENCE if c is None else c
        path.append({"segment": [lo, hi], "half": half, **({"elided": len(fit.elided)} if fit.elided else {})})
        lo, hi = (lo, mid) if half == "upper" else (mid + 1, hi)
    n = len(path)
    said, note, own = "", "", False
    if not n:  # a one-step trace: nothing to ask
        source, kind = "one step: nothing to search (not from the LLM)", "1.0: the trace has a single step"
        reason, own = "The trace has a single step: nothing to ask the judge (score 1.0, not from the LLM).", True
    elif missing == n:
        source = _placeholder(f"no usable confidence in any of the {n} halvings") + f", multiplied over {n}"
        kind = f"a placeholder: {DEFAULT_CONFIDENCE:g} per halving, the judge gave no usable confidence"
        note = (f"score {conf:.2f}: it gave no usable confidence in any of its {n} halvings, "
                f"{DEFAULT_CONFIDENCE:g} each is a placeholder")
    else:
        source = f"product of the LLM's self-reported confidences over {n} halvings (not calibrated)" + (
            f"; none given in {missing} of {n}: {DEFAULT_CONFIDENCE:g} placeholder each" if missing else "")
        kind = "product of the judge's self-reported confidences per halving, not calibrated"
        note = (f"score {conf:.2f}: the product of its self-reported confidences over {n} halvings, not calibrated"
                + (f"; {missing} gave none, {DEFAULT_CONFIDENCE:g} each" if missing else ""))
    if n:
        seg, half = path[-1]["segment"], path[-1]["half"]
        said = f", on the last of {n} halvings (steps {seg[0]} to {seg[1]}), chose the {half} half"
    return _attribution(trace, method, trace.steps[lo].agent, lo, reason, conf, s, source=source, kind=kind,
                        said=said, conf_note=note, own_reason=own, search_path=path)


def hybrid(trace: Trace, *, llm: LLMConfig | LLMClient | None = None, **options: Any) -> Attribution:
    """All-at-once with the offline ranking shown as evidence.

    Runs the registry's offline default (``attrib.methods.DEFAULT_METHOD``) and puts its top steps
    and agent blame in the prompt, and its conformal step set when it gives one ("the decisive step is one of
    these in 90 % of annotated runs like those it was calibrated on"). With no offline default registered, or if it fails with an
    :class:`AttribError`, this is plain all-at-once (``evidence["offline"]`` says why).
    ``top_k`` (default 5) steps are shown.
    """
    import attrib.methods as registry

    method = "judge-hybrid"
    _check_trace(trace, method)
    top_k = int(options.pop("top_k", 5))
    offline_opts = dict(options.pop("offline_options", {}) or {})
    o = _options(options)
    default = registry.DEFAULT_METHOD
    offline: Attribution | None = None
    note = ""
    if not default or default.startswith("judge"):
        note = "no offline default method registered: plain all-at-once"
    else:
        try:
            offline = registry.analyze(trace, method=default, **offline_opts)
        except AttribError as e:
            note = f"offline method {default!r} failed ({e}): plain all-at-once"
    extra = ""
    shown = offline.top_steps(top_k) if offline is not None else ()  # the offline steps the judge is shown
    if offline is not None:
        lines = [
            f"- step {b.step} by {b.agent}: score {b.score:.3g}"
            + (f", probability {b.probability:.2f}" if b.probability is not None else "")
            for b in shown
        ] or [f"- step {offline.step} by {offline.agent}: confidence {offline.confidence:.2f}"]
        agents = ", ".join(f"{a.agent} {a.score:.2f}" for a in offline.agents[:top_k])
        ss = offline.evidence.get("step_set") or {}
        # conformal coverage is over runs, not a probability for this run (the reports word it so too)
        in_set = (f"Steps {', '.join(map(str, sorted(ss['steps'])))} form a set that held the decisive step in "
                  f"{ss['level']:.0%} of annotated runs like those it was calibrated on.\n"
                  if ss.get("steps") and len(ss["steps"]) < trace.n_steps else "")
        extra = (
            f"Evidence from an offline analyzer (method {offline.method}, no LLM; it is often but not always "
            f"right). Its verdict: step {offline.step} by {offline.agent} (confidence {offline.confidence:.2f}). "
            "Its most suspicious steps:\n" + "\n".join(lines) + "\n"
            + (f"Its blame per agent: {agents}\n" if agents else "")
            + in_set
            + "Check these steps yourself before you answer.\n\n"
        )
    s = _Session(method, get_client(llm), o.retries)
    prefer = [b.step for b in shown] + [offline.step] if offline is not None else []
    prompt, fit = _all_at_once_prompt(trace, o.context_chars, o.step_chars, extra, prefer)
    agent, step, reason, conf, match, match_tail = _ask_verdict(trace, s, prompt, o.reason_chars)
    off_ev: dict[str, Any] = {"fallback": note}
    tail = f"No offline evidence was shown ({note})."
    if offline is not None:
        # what the judge was shown, so a reader can check what it made of it
        off_ev = {"method": offline.method, "agent": offline.agent, "step": offline.step,
                  "confidence": offline.confidence, "confidence_kind": offline.evidence.get("confidence_kind"),
                  "agrees": offline.step == step, "agent_agrees": offline.agent == agent,
                  "shown_steps": [{"step": b.step, "agent": b.agent, "score": b.score, "probability": b.probability}
                                  for b in shown],
                  "shown_agents": [{"agent": a.agent, "score": a.score} for a in offline.agents[:top_k]],
                  **({"shown_step_set": {"level": ss["level"], "steps": sorted(ss["steps"])}} if in_set else {})}
        agrees = ("the judge agrees" if off_ev["agrees"] and off_ev["agent_agrees"] else
                  "the judge agrees on the step" if off_ev["agrees"] else
                  "the judge agrees on the agent" if off_ev["agent_agrees"] else "the judge chose otherwise")
        tail = (f"Shown as evidence, the offline method ({offline.method}, no LLM) put step {offline.step} by "
                f"{offline.agent} first; {agrees}.")
    return _attribution(trace, method, agent, step, reason, conf, s, tail=f"{match_tail} {tail}".strip(),
                        offline=off_ev, **match, **_budget_evidence(fit))
