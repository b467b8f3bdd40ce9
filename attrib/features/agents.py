"""Agent features for the learned ranker's agent head: one row per agent of a trace, built from the step head's
probabilities and the step features (how much of the blame its steps hold, its habits, its name), and each
feature in words so that an agent verdict can say why.

Kept beside the step features (:mod:`.steps`) so that both tables of features, and their words, have one home.
"""

from __future__ import annotations

import math

import numpy as np

from attrib.features.steps import INDEX, MEANING, QUANTITIES
from attrib.trace import Trace

_AGENT_TOKENS = ("verif", "valid", "surfer", "orchestr", "assistant", "file", "expert", "terminal", "human")
#: step features averaged and maxed over an agent's steps (its habits: fabricating, coding, verifying)
_AGG = ("novel_numbers_untooled", "kw_code", "kw_hedge", "final_value_first", "next_tool_error", "kw_verify",
        "sim_task", "log_len", "graph_out_content", "kw_conclude", "kw_url", "gt_in_step", "restates_task")
AGENT_FEATURES: tuple[str, ...] = (
    "log_psum",
    "pmax",
    "is_argmax_agent",
    "share",
    "log_turns",
    "first_speaker",
    "first_turn_rel",
    "is_tool",
    "is_human",
    "novel_numbers",
    "code_errors",
    "hedges",
    "replans",
    "satisfied",
    "tracebacks",
    "instructions",
    "mean_novel_log",
    *(f"name_{t}" for t in _AGENT_TOKENS),
    *(f"mean_{f}" for f in _AGG),
    *(f"max_{f}" for f in _AGG),
)
_TOKEN_WORDS = {"verif": "a verifier", "valid": "a validator", "surfer": "a web or file surfer",
                "orchestr": "an orchestrator", "assistant": "an assistant", "file": "a file agent",
                "expert": "an expert", "terminal": "a terminal", "human": "a human"}
#: Agent features that are quantities: an agent's signal reads "high ..." / "low ..." of them (else "not ...").
AGENT_QUANTITIES = frozenset({"log_psum", "pmax", "share", "log_turns", "first_turn_rel", "novel_numbers",
                              "code_errors", "hedges", "instructions", "mean_novel_log", *(f"mean_{f}" for f in _AGG)})


def _agent_meanings() -> dict[str, str]:
    return {
        "log_psum": "step probability its steps hold together",
        "pmax": "probability of its most suspicious step",
        "is_argmax_agent": "the author of the most likely step",
        "share": "share of the run's steps",
        "log_turns": "number of turns",
        "first_speaker": "the run's first speaker",
        "first_turn_rel": "lateness of its first turn",
        "is_tool": "a tool or code executor",
        "is_human": "a human",
        "novel_numbers": "count of new numbers it introduces",
        "code_errors": "count of its code runs that failed",
        "hedges": "count of its assumption or placeholder words",
        "replans": "replanning in one of its steps",
        "satisfied": "the first claim that the request is satisfied",
        "tracebacks": "a Python traceback after one of its steps",
        "instructions": "share of its steps that instruct another agent",
        "mean_novel_log": "new numbers per step",
        **{f"name_{t}": w for t, w in _TOKEN_WORDS.items()},
        **{f"mean_{f}": f"{MEANING[f]}, averaged over its steps" if f in QUANTITIES
           else f"share of its steps showing: {MEANING[f]}" for f in _AGG},
        **{f"max_{f}": f"{MEANING[f]}, in one of its steps" for f in _AGG},
    }


#: What each agent feature says about an agent, in words (the agent head's signals; see ``features.steps.MEANING``).
AGENT_MEANING: dict[str, str] = _agent_meanings()


def agent_matrix(trace: Trace, step_probs: np.ndarray, X: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Agents of ``trace`` (in order of appearance) and their feature rows for the agent head."""
    agents = list(dict.fromkeys(s.agent for s in trace.steps))
    agg = np.array([INDEX[f] for f in _AGG])
    n = len(trace.steps)
    top = trace.steps[int(np.argmax(step_probs))].agent
    A = np.zeros((len(agents), len(AGENT_FEATURES)))
    for k, a in enumerate(agents):
        idx = np.array([i for i, s in enumerate(trace.steps) if s.agent == a])
        p = step_probs[idx]
        sub = X[np.ix_(idx, agg)]  # the agent's steps x the features averaged and maxed below
        row = [
            math.log(p.sum() + 1e-6),
            p.max(),
            a == top,
            len(idx) / n,
            math.log(len(idx)),
            k == 0,
            idx[0] / max(n - 1, 1),
            X[idx[0], INDEX["is_tool"]],
            X[idx[0], INDEX["is_human"]],
            math.log1p(X[idx, INDEX["novel_numbers_any"]].sum()),
            math.log1p(X[idx, INDEX["next_tool_error"]].sum()),
            math.log1p(X[idx, INDEX["kw_hedge"]].sum()),
            X[idx, INDEX["kw_replan"]].max(),
            X[idx, INDEX["first_satisfied"]].max(),
            X[idx, INDEX["kw_traceback"]].max(),
            X[idx, INDEX["is_instruction"]].mean(),
            X[idx, INDEX["novel_numbers_log"]].mean(),
            *(t in a.lower() for t in _AGENT_TOKENS),
            *sub.mean(axis=0),
            *sub.max(axis=0),
        ]
        A[k] = row
    return agents, A
