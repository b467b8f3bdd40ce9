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
:class:`~attrib.errors.NoVerdictError`.

Budget for long traces (documented, override per call): the transcript shown to the judge holds at
most ``context_chars`` characters of step text (default 48,000, about 12k tokens at ~4 characters
per token); each step gets ``min(step_chars, context_chars // n_steps)`` characters (``step_chars``
default 2,000, never fewer than 160), keeping the head and the tail of a long step with a
``[... N chars cut ...]`` marker between. The task and the ground truth are cut to ``step_chars``.

Confidence: what the judge reports in its ``confidence`` field (0..1), which is NOT calibrated;
``evidence["confidence_source"]`` says so. Binary search multiplies the confidences of its halvings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from attrib.errors import AttribError, NoVerdictError
from attrib.llm import AnswerParseError, LLMClient, LLMConfig, get_client, parse_json_answer
from attrib.trace import AgentBlame, Attribution, Step, StepBlame, Trace

DEFAULT_CONTEXT_CHARS = 48_000
DEFAULT_STEP_CHARS = 2_000
MIN_STEP_CHARS = 160
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
    """Characters of text each step may show: ``min(step_chars, context_chars // n_steps)``, at least 160."""
    return max(MIN_STEP_CHARS, min(step_chars, context_chars // max(1, n_steps)))


def step_text(step: Step) -> str:
    """A step's content with its tool calls and results, as one string."""
    parts = [step.content.strip()]
    parts += [f"[tool call] {c.name}({c.arguments})" for c in step.tool_calls]
    parts += [f"[tool {'error' if r.is_error else 'result'}] {r.content}" for r in step.tool_results]
    return "\n".join(p for p in parts if p)


def render_steps(steps: Sequence[Step], budget: int) -> str:
    """``Step i - agent: text`` lines, each step's text cut to ``budget`` characters."""
    return "\n".join(f"Step {s.index} - {s.agent}: {truncate_middle(step_text(s), budget)}" for s in steps)


def _problem_block(trace: Trace, step_chars: int) -> str:
    lines = [f"Task: {truncate_middle(trace.task.strip() or '(not given)', step_chars)}"]
    if trace.ground_truth:
        lines.append(f"Correct answer: {truncate_middle(str(trace.ground_truth), step_chars)}")
    if trace.final_answer:
        lines.append(f"The team's answer: {truncate_middle(str(trace.final_answer), step_chars)}")
    lines.append("The team failed.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Answer validation (pure)
# ---------------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_agent(name: Any, agents: Sequence[str]) -> str:
    """The trace agent ``name`` refers to: exact, case/punctuation-insensitive, or a unique containment."""
    if not isinstance(name, str) or not name.strip():
        raise VerdictProblem(f"'agent' must be one of {list(agents)}, got {name!r}")
    if name in agents:
        return name
    key = _norm(name)
    by_norm = {_norm(a): a for a in agents}
    if key in by_norm:
        return by_norm[key]
    hits = [a for a in agents if key and (_norm(a) in key or key in _norm(a))]
    if len(hits) == 1:
        return hits[0]
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
        self._http0 = (client.calls, client.retries)

    def ask(self, prompt: str, schema: dict[str, Any], validate: Callable[[dict[str, Any]], Any], example: str) -> Any:
        messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}]
        problems: list[str] = []
        for attempt in range(self.answer_retries + 1):
            res = self.client.chat(messages, json_schema=schema, max_tokens=None)
            self.calls += 1
            self.last_answer = res.text
            try:
                return validate(parse_json_answer(res.text))
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

    def evidence(self) -> dict[str, Any]:
        return {
            "llm": {**self.client.config.redacted(), "model": self.client.model},
            "llm_calls": self.calls,
            "http_requests": self.client.calls - self._http0[0],
            "http_retries": self.client.retries - self._http0[1],
            "answer_corrections": self.corrections,
            "last_answer": self.last_answer[:500],
            "confidence_source": "self-reported by the LLM (not calibrated)",
        }


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
    """The budget options every judge takes; anything else is a clear error. ``top_k`` (how many steps
    a renderer shows, passed by the CLI to every method) is accepted and ignored: a judge names one step."""
    options.pop("top_k", None)
    try:
        o = _Opts(
            context_chars=int(options.pop("context_chars", DEFAULT_CONTEXT_CHARS)),
            step_chars=int(options.pop("step_chars", DEFAULT_STEP_CHARS)),
            retries=int(options.pop("answer_retries", DEFAULT_ANSWER_RETRIES)),
            reason_chars=int(options.pop("reason_chars", REASON_MAX_CHARS)),
        )
    except (TypeError, ValueError) as e:
        raise AttribError(f"judge options must be integers ({e})") from None
    if options:
        raise AttribError(
            f"unknown judge option(s): {', '.join(sorted(options))} "
            "(known: context_chars, step_chars, answer_retries, reason_chars; hybrid also top_k, offline_options)"
        )
    return o


def _attribution(
    trace: Trace, method: str, agent: str, step: int, reason: str, conf: float | None, session: _Session, **evidence: Any
) -> Attribution:
    c = DEFAULT_CONFIDENCE if conf is None else conf
    return Attribution(
        trace_id=trace.id,
        method=method,
        agent=agent,
        step=step,
        confidence=c,
        agent_confidence=c,
        agents=(AgentBlame(agent=agent, score=c),),
        steps=(StepBlame(step=step, agent=trace.steps[step].agent, score=c, probability=c),),
        evidence={**session.evidence(), **evidence},
        reason=reason,
    )


# ---------------------------------------------------------------------------------------------
# The strategies
# ---------------------------------------------------------------------------------------------


def _all_at_once_prompt(trace: Trace, context_chars: int, step_chars: int, extra: str = "") -> str:
    budget = step_budget(trace.n_steps, context_chars, step_chars)
    return (
        f"{_problem_block(trace, step_chars)}\n\n"
        f"The conversation, steps 0 to {trace.n_steps - 1}:\n{render_steps(trace.steps, budget)}\n\n{extra}"
        "Which agent's mistake directly caused the failure, and at which step did it first make it? "
        "If none is obvious, pick the most responsible step.\n"
        f"Answer with only this JSON: {_verdict_example(trace)}"
    )


def all_at_once(trace: Trace, *, llm: LLMConfig | LLMClient | None = None, **options: Any) -> Attribution:
    """Who&When all-at-once: the whole (budgeted) log in one prompt; the judge names agent and step."""
    method = "judge-all"
    _check_trace(trace, method)
    o = _options(options)
    s = _Session(method, get_client(llm), o.retries)
    prompt = _all_at_once_prompt(trace, o.context_chars, o.step_chars)
    schema = _verdict_schema(trace, o.reason_chars)
    agent, step, reason, conf = s.ask(prompt, schema, _verdict_validator(trace), _verdict_example(trace))
    budget = step_budget(trace.n_steps, o.context_chars, o.step_chars)
    return _attribution(trace, method, agent, step, reason, conf, s, step_budget_chars=budget)


def step_by_step(trace: Trace, *, llm: LLMConfig | LLMClient | None = None, **options: Any) -> Attribution:
    """Who&When step-by-step: judge each step given the log so far; the first step judged an error wins.

    One call per step until the first error (up to ``n_steps`` calls). When no step is judged an
    error, the verdict is the last step, as in the paper, with confidence ``1 / n_steps``.
    """
    method = "judge-step"
    _check_trace(trace, method)
    o = _options(options)
    step_chars = o.step_chars
    s = _Session(method, get_client(llm), o.retries)
    budget = step_budget(trace.n_steps, o.context_chars, o.step_chars)
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
    for i, st in enumerate(trace.steps):
        prompt = (
            f"{_problem_block(trace, step_chars)}\n\n"
            f"The conversation so far:\n{render_steps(trace.steps[: i + 1], budget)}\n\n"
            f"Does the latest step ({i}, by {st.agent}) contain an error that clearly derails solving the task? "
            f"Do not be overly critical.\nAnswer with only this JSON: {example}"
        )
        is_error, reason, conf = s.ask(prompt, schema, validate, example)
        judged.append({"step": i, "error": is_error})
        if is_error:
            return _attribution(trace, method, st.agent, i, reason, conf, s, judged_steps=judged, step_budget_chars=budget)
    last = trace.n_steps - 1
    return _attribution(
        trace, method, trace.steps[last].agent, last,
        "No step was judged an error; the last step is reported, as in the Who&When paper.",
        1.0 / trace.n_steps, s, judged_steps=judged, step_budget_chars=budget, no_error_found=True,
    )  # fmt: skip


def binary_search(trace: Trace, *, llm: LLMConfig | LLMClient | None = None, **options: Any) -> Attribution:
    """Who&When binary search: ask which half of the segment holds the decisive mistake; recurse.

    ``ceil(log2 n_steps)`` calls. Confidence is the product of the halvings' reported confidences.
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

    lo, hi, conf, path, reason = 0, trace.n_steps - 1, 1.0, [], ""
    while lo < hi:
        mid = (lo + hi) // 2
        seg = trace.steps[lo : hi + 1]
        budget = step_budget(len(seg), context_chars, step_chars)
        prompt = (
            f"{_problem_block(trace, step_chars)}\n\n"
            f"A segment of the conversation, steps {lo} to {hi}:\n{render_steps(seg, budget)}\n\n"
            "The mistake that caused the failure is in this segment. Is it in the upper half (steps "
            f"{lo} to {mid}) or the lower half (steps {mid + 1} to {hi})? If unclear, pick the half most "
            f"responsible.\nAnswer with only this JSON: {example}"
        )
        half, reason, c = s.ask(prompt, schema, validate, example)
        conf *= DEFAULT_CONFIDENCE if c is None else c
        path.append({"segment": [lo, hi], "half": half})
        lo, hi = (lo, mid) if half == "upper" else (mid + 1, hi)
    return _attribution(trace, method, trace.steps[lo].agent, lo, reason, conf, s, search_path=path)


def hybrid(trace: Trace, *, llm: LLMConfig | LLMClient | None = None, **options: Any) -> Attribution:
    """All-at-once with the offline ranking shown as evidence.

    Runs the registry's offline default (``attrib.methods.DEFAULT_METHOD``) and puts its top steps
    and agent blame in the prompt, and its conformal step set when it gives one ("the decisive step is one of
    these with probability 90 %"). With no offline default registered, or if it fails with an
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
    if offline is not None:
        lines = [
            f"- step {b.step} by {b.agent}: score {b.score:.3g}"
            + (f", probability {b.probability:.2f}" if b.probability is not None else "")
            for b in offline.top_steps(top_k)
        ] or [f"- step {offline.step} by {offline.agent}: confidence {offline.confidence:.2f}"]
        agents = ", ".join(f"{a.agent} {a.score:.2f}" for a in offline.agents[:top_k])
        ss = offline.evidence.get("step_set") or {}
        in_set = (f"Measured on annotated runs, the decisive step is one of steps "
                  f"{', '.join(map(str, sorted(ss['steps'])))} with probability {ss['level']:.0%}.\n"
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
    prompt = _all_at_once_prompt(trace, o.context_chars, o.step_chars, extra)
    schema = _verdict_schema(trace, o.reason_chars)
    agent, step, reason, conf = s.ask(prompt, schema, _verdict_validator(trace), _verdict_example(trace))
    off_ev: dict[str, Any] = (
        {"method": offline.method, "agent": offline.agent, "step": offline.step, "confidence": offline.confidence,
         "agrees": offline.step == step}
        if offline is not None else {"fallback": note}
    )  # fmt: skip
    return _attribution(trace, method, agent, step, reason, conf, s, offline=off_ev)
