"""The simple baselines printed beside every method: random, always step 1, most active agent,
first WebSurfer step, always WebSurfer. None is fitted; each is a rule stated in the issue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrib.evaluate.metrics import Verdict
from attrib.trace import Trace

Baseline = Callable[[Trace], Verdict]


def _v(t: Trace, step: int, agent: str, **kw: Any) -> Verdict:
    assert t.label is not None
    return Verdict(t.id, step, agent, t.label.mistake_step, t.label.mistake_agent, **kw)


#: Code executors relay tool output and are never the annotated mistake agent; FACTS.md's 54.0 % excludes them.
_EXECUTORS = frozenset({"computer_terminal"})


def _most_active(t: Trace) -> str:
    """The agent with most steps, code executors and tool-only agents left out (earliest agent wins ties)."""
    counts: dict[str, int] = {}
    for s in t.steps:
        if s.agent.lower() in _EXECUTORS or s.role == "tool":
            continue
        counts[s.agent] = counts.get(s.agent, 0) + 1
    if not counts:
        counts = {a: sum(s.agent == a for s in t.steps) for a in t.agents}
    return max(counts, key=lambda a: (counts[a], -t.agents.index(a)))


def random_baseline(t: Trace) -> Verdict:
    """Uniform over steps and over agents: reported as the expected accuracy (no sampling noise)."""
    assert t.label is not None
    return _v(t, 0, t.agents[0], expected_step_acc=1 / t.n_steps, expected_agent_acc=(
        1 / len(t.agents) if t.label.mistake_agent in t.agents else 0.0))


def always_step_1(t: Trace) -> Verdict:
    k = min(1, t.n_steps - 1)
    return _v(t, k, t.steps[k].agent)


def most_active_agent(t: Trace) -> Verdict:
    a = _most_active(t)
    return _v(t, next(i for i, s in enumerate(t.steps) if s.agent == a), a)


def first_websurfer_step(t: Trace) -> Verdict:
    k = next((i for i, s in enumerate(t.steps) if s.agent.lower() == "websurfer"), 0)
    return _v(t, k, t.steps[k].agent)


def always_websurfer(t: Trace) -> Verdict:
    k = next((i for i, s in enumerate(t.steps) if s.agent.lower() == "websurfer"), 0)
    return _v(t, k, "WebSurfer")


BASELINES: dict[str, Baseline] = {
    "random": random_baseline,
    "always-step-1": always_step_1,
    "most-active-agent": most_active_agent,
    "first-websurfer-step": first_websurfer_step,
    "always-websurfer": always_websurfer,
}
