"""Per-step feature matrix for any trace: structure, lexical signals, answer provenance and flow graph.

One row per step, ``FEATURES`` names the columns. Everything is computed from the trace alone (any
format), in one pass plus the flow graph; features that need the ground-truth answer are zero when
the trace has none (Who&When's "without ground truth" setting). Trace-level quantities enter only
through interactions with step position, because the ranker is a per-trace softmax in which a
constant column cancels out.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import networkx as nx

from attrib.features.text import (
    contains_normalized,
    final_answer_text,
    is_human_agent,
    jaccard,
    numbers,
    words,
)
from attrib.trace import Trace, tool_steps

#: Keyword groups, matched as lower-case substrings (plain ``in`` is ~50x faster than re.I on long pages).
_KW: dict[str, tuple[str, ...]] = {
    "kw_error": ("error", "exception", "traceback", " failed", "failure", "exitcode: 1", "not found", " 404",
                 "invalid"),
    "kw_hedge": ("assum", "hypothetical", "placeholder", "simulat", "for example", "for illustration", " mock",
                 "dummy", "sample data", "let's say", "suppose"),
    "kw_unable": ("sorry", " unable", "cannot", "can't", "couldn't", "no results", "not available",
                  "unfortunately", "did not find"),
    "kw_verify": ("verif", "confirm", "double-check", "cross-check", "validat"),
    "kw_conclude": ("final answer", "the answer is", "therefore", "in conclusion", "result is", "conclude"),
    "kw_plan": (" plan", "step 1", "first,", "next step"),
    "kw_search": ("search", " bing", "google", "query", " typed", "clicked", "scroll"),
    "kw_terminate": ("terminat",),
    "kw_code": ("```", "import ", "def "),
    "kw_url": ("http://", "https://"),
    "kw_loop": ("repeat", "again", "loop"),
    "kw_noprogress": ('"is_progress_being_made": {',),
    "kw_request": ("please search", "please find", "please visit", "please click", "please check",
                   "please provide", "please open", "please run", "please look"),
    "kw_replan": ("replanning", "new plan", "stalled"),
    "kw_satisfied": ("request satisfied", '"is_request_satisfied": {'),
    "kw_traceback": ("traceback (most recent call last)",),
    "kw_estimate": ("approximately", "roughly", "estimate", "likely", "probably", " might "),
}
_NAME_TOKENS = ("verif", "valid", "check", "review", "surfer", "orchestr", "assistant", "plan", "coder", "debug")
_CAP = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{3,}\b")
_NOPROGRESS = re.compile(r'"is_progress_being_made": \{[^}]*"answer": false')
_SATISFIED = re.compile(r'"is_request_satisfied": \{[^}]*"answer": true')
_NEGATIVE = re.compile(
    r"code output:\s*(\[\]|\{\}|none|nan|null|0|false)?\s*$|not found|no [\w ]{0,40}(found|available|information)"
    r"|does not contain|did not (return|find)|could not|couldn't|unable to|empty|no results|no data|no matching"
)
_INLOOP = re.compile(r'"is_in_loop": \{[^}]*"answer": true')

FEATURES: tuple[str, ...] = (
    "bias_pos0",
    "pos1",
    "pos2",
    "pos_rel",
    "pos_rel2",
    "log_pos",
    "is_last",
    "pos1_x_logn",
    "pos0_x_logn",
    "first_turn_of_agent",
    "agent_turn_idx_log",
    "agent_share",
    "agent_is_first_speaker",
    "first_decision_after_0",
    "is_tool",
    "is_human",
    "is_instruction",
    "is_thought",
    "log_len",
    "n_lines_log",
    *(f"{k}" for k in _KW),
    *(f"name_{t}" for t in _NAME_TOKENS),
    "novel_numbers_log",
    "novel_numbers_any",
    "novel_numbers_untooled",
    "next_tool_error",
    "next_tool_ok",
    "prev_tool_error",
    "final_value_first",
    "final_value_frac",
    "final_value_seen_before",
    "is_final_step",
    "sim_task",
    "restates_task",
    "restates_task_x_sim",
    "sim_prev_same_agent",
    "sim_prev",
    "gt_in_step",
    "gt_seen_before",
    "gt_first",
    "gt_available_x_final_first",
    "graph_mass",
    "graph_mass_rank1",
    "graph_out_content",
    "graph_in",
    "graph_ancestor_of_failure",
    "first_error_step",
    "first_hedge_step",
    "first_replan",
    "first_satisfied",
    "next_tool_negative",
    "first_next_tool_negative",
    "first_next_tool_error",
    "first_code_step",
    "prev_tool_negative",
    "concludes_after_negative",
)
INDEX = {n: i for i, n in enumerate(FEATURES)}

#: Features that are quantities, not flags: a report says "high ..." or "low ..." of them.
QUANTITIES = frozenset({"pos_rel", "pos_rel2", "log_pos", "agent_turn_idx_log", "agent_share", "log_len", "n_lines_log",
                        "novel_numbers_log", "final_value_frac", "sim_task", "restates_task_x_sim",
                        "sim_prev_same_agent", "sim_prev", "graph_mass", "graph_out_content", "graph_in"})
#: What each feature says about a step, in words, for reports ("why this step?"): a noun phrase that reads after
#: "not" (flags) or "high" / "low" (:data:`QUANTITIES`).
MEANING: dict[str, str] = {
    "bias_pos0": "the run's first step",
    "pos1": "the second step",
    "pos2": "the third step",
    "pos_rel": "relative position in the run",
    "pos_rel2": "relative position in the run, squared",
    "log_pos": "step index",
    "is_last": "the last step",
    "pos1_x_logn": "the second step of a long run",
    "pos0_x_logn": "the first step of a long run",
    "first_turn_of_agent": "the agent's first turn",
    "agent_turn_idx_log": "number of the agent's earlier turns",
    "agent_share": "share of the run's steps by this agent",
    "agent_is_first_speaker": "a step by the run's first speaking agent",
    "first_decision_after_0": "the first decision after the task",
    "is_tool": "a tool's or code executor's output",
    "is_human": "a human's message",
    "is_instruction": "an instruction to another agent",
    "is_thought": "an orchestrator's thought",
    "log_len": "step length",
    "n_lines_log": "number of lines",
    "kw_error": "error words (error, exception, failed, not found)",
    "kw_hedge": "assumption or placeholder words (assume, hypothetical, mock, sample data)",
    "kw_unable": "inability words (sorry, unable, cannot, no results)",
    "kw_verify": "verification words (verify, confirm, validate)",
    "kw_conclude": "a conclusion (final answer, therefore, the result is)",
    "kw_plan": "a plan",
    "kw_search": "a web search or browsing action",
    "kw_terminate": "a request to terminate",
    "kw_code": "code",
    "kw_url": "a URL",
    "kw_loop": "repetition words (again, repeat, loop)",
    "kw_noprogress": "a ledger saying no progress is made",
    "kw_request": "a request to another agent (please search / find / visit ...)",
    "kw_replan": "replanning or a stalled run",
    "kw_satisfied": "a ledger saying the request is satisfied",
    "kw_traceback": "a Python traceback",
    "kw_estimate": "estimation words (approximately, likely, probably)",
    "name_verif": "an agent named verifier",
    "name_valid": "an agent named validator",
    "name_check": "an agent named checker",
    "name_review": "an agent named reviewer",
    "name_surfer": "a web/file surfer agent",
    "name_orchestr": "an orchestrator agent",
    "name_assistant": "an assistant agent",
    "name_plan": "a planner agent",
    "name_coder": "a coder agent",
    "name_debug": "a debugger agent",
    "novel_numbers_log": "count of new numbers it introduces",
    "novel_numbers_any": "new numbers no earlier step or the task had",
    "novel_numbers_untooled": "new numbers not read off a tool output just before (possibly made up)",
    "next_tool_error": "code whose execution failed right after",
    "next_tool_ok": "code that ran without error right after",
    "prev_tool_error": "a reply to a failed execution",
    "final_value_first": "the first step with the final answer's value",
    "final_value_frac": "share of the final answer's value it contains",
    "final_value_seen_before": "the final answer's value was already stated before",
    "is_final_step": "the step that gives the final answer",
    "sim_task": "overlap with the task's words",
    "restates_task": "a restatement of the task",
    "restates_task_x_sim": "a restatement of the task that stays close to it",
    "sim_prev_same_agent": "overlap with the agent's previous turn",
    "sim_prev": "overlap with the previous step",
    "gt_in_step": "contains the correct answer",
    "gt_seen_before": "the correct answer was already stated before",
    "gt_first": "the first step with the correct answer",
    "gt_available_x_final_first": "with the correct answer given, the first step with the final answer's value",
    "graph_mass": "blame mass flowing back from the failure along the information-flow graph",
    "graph_mass_rank1": "the step where the most blame mass from the failure arrives",
    "graph_out_content": "reuse of its content by later steps",
    "graph_in": "number of earlier steps it consumes",
    "graph_ancestor_of_failure": "its output reaches the failure",
    "first_error_step": "the first step that mentions an error",
    "first_hedge_step": "the first assumption or placeholder",
    "first_replan": "the first replanning",
    "first_satisfied": "the first claim that the request is satisfied",
    "next_tool_negative": "code whose run came back empty or 'not found'",
    "first_next_tool_negative": "the first code whose run came back empty or 'not found'",
    "first_next_tool_error": "the first code whose execution failed",
    "first_code_step": "the first code that was run",
    "prev_tool_negative": "a reply to an empty or 'not found' result",
    "concludes_after_negative": "a conclusion after an empty or 'not found' result",
}


def signal_name(name: str, column: np.ndarray, step: int, quantities: frozenset[str] = QUANTITIES) -> str:
    """A feature as a reason for blaming ``step``: a flag as is, or "not is_human" when the step scores for *lacking*
    what the trace's other steps have; a quantity as "high log_len" / "low log_len" (signals are relative to the
    trace's mean step). :func:`meaning` reads these names back. The agent head names its signals the same way, over
    agents (``quantities``: its own)."""
    above = column[step] >= column.mean()
    if name in quantities:
        return ("high " if above else "low ") + name
    return name if above else "not " + name


#: The words for a signal the step *lacks*, where "not " + its words would not read ("not its output reaches ...").
NEGATED = {
    "graph_ancestor_of_failure": "its output does not reach the failure",
    "final_value_seen_before": "the final answer's value not stated before",
    "gt_seen_before": "the correct answer not stated before",
    "gt_in_step": "does not contain the correct answer",
}


def meaning(signal: str, meanings: dict[str, str] | None = None) -> str:
    """The words for a signal as the learned ranker names it ("kw_error", "not is_human", "high log_len");
    ``meanings``: another table of words (the agent head's), else :data:`MEANING` (and :data:`NEGATED`)."""
    table = MEANING if meanings is None else meanings
    if meanings is None and signal.startswith("not ") and signal[4:] in NEGATED:
        return NEGATED[signal[4:]]
    for prefix in ("not ", "low ", "high "):
        if signal.startswith(prefix):
            return prefix + table.get(signal[len(prefix):], signal[len(prefix):])
    return table.get(signal, signal)


def _tool_error(text: str) -> bool:
    low = text[:3000].lower()
    return "exitcode: " in low and "exitcode: 0" not in low or "traceback" in low or "error" in low


def _final_value_tokens(final: str, task: str) -> set[str]:
    toks = set(numbers(final)) - set(numbers(task))
    if not toks:
        caps = {m.lower() for m in _CAP.findall(final)}
        toks = {"w:" + w for w in (words(final) & caps) - words(task) if len(w) >= 4}
    return toks


def _has(tokens: set[str], nums: frozenset[str], wds: frozenset[str]) -> set[str]:
    return {t for t in tokens if (t[2:] in wds if t.startswith("w:") else t in nums)}


def step_features(trace: Trace, graph_mass: dict[int, float] | None = None, graph: nx.DiGraph | None = None
                  ) -> np.ndarray:
    """The ``(n_steps, len(FEATURES))`` float matrix for ``trace`` (see module docstring); ``graph``: its flow graph
    when the caller has built it already (``flow_graph.build_graph``), so it is not built twice."""
    from attrib.methods.flow_graph import build_graph, failure_node, invert

    steps = trace.steps
    n = len(steps)
    X = np.zeros((n, len(FEATURES)), dtype=np.float64)
    contents = [s.content or "" for s in steps]
    tool = tool_steps(steps)
    # each tool output is read once: did it fail, or run but come back empty / "not found"?
    tool_err = [t and _tool_error(c) for t, c in zip(tool, contents, strict=True)]
    tool_neg = [t and not e and bool(_NEGATIVE.search(c[:2000].lower().strip()))
                for t, e, c in zip(tool, tool_err, contents, strict=True)]
    human = [is_human_agent(s.agent) for s in steps]
    task = trace.task or (contents[0] if contents else "")
    task_nums, task_words = numbers(task), words(task)
    fin_idx, fin_text = final_answer_text(contents, tool)
    fin_tokens = _final_value_tokens(fin_text, task) if fin_text else set()
    gt = trace.ground_truth
    g = build_graph(trace) if graph is None else graph
    sink = failure_node(trace)
    mass = graph_mass if graph_mass is not None else invert(g, sink)
    ancestors = __import__("networkx").ancestors(g, sink) if sink in g else set()
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.agent] = counts.get(s.agent, 0) + 1
    first_agent = next((s.agent for s, t, h in zip(steps, tool, human, strict=True) if not t and not h), "")
    first_decision = next((i for i in range(1, n) if not tool[i] and not human[i]), -1)
    logn = math.log(n + 1)
    seen_nums: set[str] = set(task_nums)
    turns: dict[str, int] = {}
    last_by_agent: dict[str, frozenset[str]] = {}
    fin_seen: set[str] = set()
    gt_seen = False
    first_err = first_hedge = seen_replan = seen_satisfied = False
    seen_neg = seen_terr = seen_code = False
    max_mass = max((mass.get(i, 0.0) for i in range(n) if not tool[i]), default=0.0)
    prev_words: frozenset[str] = frozenset()
    for i, s in enumerate(steps):
        c = contents[i]
        x = X[i]
        nums, wds = numbers(c[:20000]), words(c[:8000])
        x[INDEX["bias_pos0"]] = i == 0
        x[INDEX["pos1"]] = i == 1
        x[INDEX["pos2"]] = i == 2
        x[INDEX["pos_rel"]] = i / max(n - 1, 1)
        x[INDEX["pos_rel2"]] = x[INDEX["pos_rel"]] ** 2
        x[INDEX["log_pos"]] = math.log(i + 1)
        x[INDEX["is_last"]] = i == n - 1
        x[INDEX["pos1_x_logn"]] = (i == 1) * logn
        x[INDEX["pos0_x_logn"]] = (i == 0) * logn
        k = turns.get(s.agent, 0)
        x[INDEX["first_turn_of_agent"]] = k == 0
        x[INDEX["agent_turn_idx_log"]] = math.log(k + 1)
        turns[s.agent] = k + 1
        x[INDEX["agent_share"]] = counts[s.agent] / n
        x[INDEX["agent_is_first_speaker"]] = s.agent == first_agent
        x[INDEX["first_decision_after_0"]] = i == first_decision
        x[INDEX["is_tool"]] = tool[i]
        x[INDEX["is_human"]] = human[i]
        raw = str(s.metadata.get("raw_name", "")) if s.metadata else ""
        x[INDEX["is_instruction"]] = "->" in raw
        x[INDEX["is_thought"]] = "thought" in raw
        x[INDEX["log_len"]] = math.log(len(c) + 1)
        x[INDEX["n_lines_log"]] = math.log(c.count("\n") + 1)
        head = c[:6000]
        low = head.lower()
        for kname, keys in _KW.items():
            x[INDEX[kname]] = any(k in low for k in keys)
        if x[INDEX["kw_noprogress"]]:
            x[INDEX["kw_noprogress"]] = bool(_NOPROGRESS.search(low))
        if x[INDEX["kw_satisfied"]] and "request satisfied" not in low:
            x[INDEX["kw_satisfied"]] = bool(_SATISFIED.search(low))
        if x[INDEX["kw_replan"]] and not seen_replan:
            x[INDEX["first_replan"]] = 1
            seen_replan = True
        if x[INDEX["kw_satisfied"]] and not seen_satisfied:
            x[INDEX["first_satisfied"]] = 1
            seen_satisfied = True
        if x[INDEX["kw_loop"]] and '"is_in_loop"' in low:
            x[INDEX["kw_loop"]] = bool(_INLOOP.search(low))
        alow = s.agent.lower()
        for t in _NAME_TOKENS:
            x[INDEX[f"name_{t}"]] = t in alow
        novel = nums - seen_nums
        x[INDEX["novel_numbers_log"]] = math.log(len(novel) + 1) if not tool[i] else 0.0
        x[INDEX["novel_numbers_any"]] = bool(novel) and not tool[i]
        prev_tool = i > 0 and tool[i - 1]
        x[INDEX["novel_numbers_untooled"]] = bool(novel) and not tool[i] and not prev_tool
        seen_nums |= nums
        if i + 1 < n and tool[i + 1]:
            err = tool_err[i + 1]
            x[INDEX["next_tool_error"]] = err
            x[INDEX["next_tool_ok"]] = not err
            if not tool[i] and tool_neg[i + 1]:
                x[INDEX["next_tool_negative"]] = 1
                if not seen_neg:
                    x[INDEX["first_next_tool_negative"]] = 1
                    seen_neg = True
            if err and not tool[i] and not seen_terr:
                x[INDEX["first_next_tool_error"]] = 1
                seen_terr = True
        if prev_tool:
            x[INDEX["prev_tool_error"]] = tool_err[i - 1]
            x[INDEX["prev_tool_negative"]] = tool_neg[i - 1] and not tool[i]
        if fin_tokens:
            have = _has(fin_tokens, nums, wds)
            new = have - fin_seen
            x[INDEX["final_value_first"]] = bool(new) and not tool[i]
            x[INDEX["final_value_frac"]] = len(have) / len(fin_tokens)
            x[INDEX["final_value_seen_before"]] = bool(fin_seen)
            fin_seen |= have
        x[INDEX["is_final_step"]] = i == fin_idx
        own = words(c.replace(trace.task, " ")) if trace.task and trace.task in c else wds
        x[INDEX["sim_task"]] = jaccard(own, task_words)
        x[INDEX["restates_task"]] = bool(trace.task) and trace.task[:200] in c
        x[INDEX["restates_task_x_sim"]] = x[INDEX["restates_task"]] * x[INDEX["sim_task"]]
        x[INDEX["sim_prev_same_agent"]] = jaccard(wds, last_by_agent.get(s.agent, frozenset()))
        x[INDEX["sim_prev"]] = jaccard(wds, prev_words)
        last_by_agent[s.agent] = wds
        prev_words = wds
        if gt:
            hit = contains_normalized(head, gt) if i > 0 or not trace.task else contains_normalized(
                head.replace(trace.task, ""), gt
            )
            x[INDEX["gt_in_step"]] = hit
            x[INDEX["gt_seen_before"]] = gt_seen
            x[INDEX["gt_first"]] = hit and not gt_seen
            gt_seen = gt_seen or hit
            x[INDEX["gt_available_x_final_first"]] = x[INDEX["final_value_first"]]
        m = mass.get(i, 0.0)
        x[INDEX["graph_mass"]] = m
        x[INDEX["graph_mass_rank1"]] = (m == max_mass) and not tool[i] and m > 0
        x[INDEX["graph_out_content"]] = math.log(
            1 + sum(1 for _, _, d in g.out_edges(i, data=True) if "content" in d["kinds"])
        )
        x[INDEX["graph_in"]] = math.log(1 + g.in_degree(i))
        x[INDEX["graph_ancestor_of_failure"]] = i in ancestors
        x[INDEX["concludes_after_negative"]] = seen_neg and not tool[i] and bool(x[INDEX["kw_conclude"]])
        if x[INDEX["kw_code"]] and not tool[i] and i + 1 < n and tool[i + 1] and not seen_code:
            x[INDEX["first_code_step"]] = 1
            seen_code = True
        if x[INDEX["kw_error"]] and not first_err and not tool[i]:
            x[INDEX["first_error_step"]] = 1
            first_err = True
        if x[INDEX["kw_hedge"]] and not first_hedge and not tool[i]:
            x[INDEX["first_hedge_step"]] = 1
            first_hedge = True
    return X
