"""Information-flow graph of a run and *performance causal inversion* over it.

:func:`build_graph` puts an edge ``i -> j`` (``i < j``) when step ``j`` consumes step ``i``'s output:

* ``parent``   -- the trace says so (``Step.parents``, e.g. OpenTelemetry span links);
* ``tool``     -- a tool call answered by a tool result (matching ``call_id``), or a tool/terminal step
  that runs the code of the step right before it;
* ``handoff``  -- step ``i`` addresses agent X by name and ``j`` is X's next turn;
* ``content``  -- ``j`` reuses a salient token (number, URL, code identifier) that ``i`` introduced first;
* ``plan``     -- ``j`` refers to "the plan" laid out in ``i``;
* ``sequence`` -- ``j`` directly follows ``i`` (weak: every chat member sees the last message).

Edges only ever point forward in time, so the graph is a DAG. :func:`invert` then runs the
inversion: the failure shows at the sink (the step that states the final answer); blame mass 1 starts
there and flows backwards along edges in proportion to their weight, each step keeping a share
``keep`` of what reaches it. Steps that *originate* what the failure rests on end up with most mass.
networkx holds the graph (paths for evidence, ancestry); the mass propagation is a reverse
topological sweep written here because it is a few lines and must run in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import networkx as nx

from attrib.features.text import final_answer_text, salient_tokens
from attrib.trace import (
    Attribution,
    StepBlame,
    Trace,
    deciding_agents,
    is_agent_step,
    tool_steps,
    tools_to_callers,
)

#: Edge weights per kind (content weight grows with the number of tokens reused, capped).
WEIGHTS = {"parent": 3.0, "tool": 2.0, "handoff": 1.5, "content": 1.0, "plan": 0.7, "sequence": 0.2}
_PLAN_DEF = re.compile(r"(^|\n)\s*#*\s*(initial plan|plan for solving|here is the plan|plan:)", re.I)
_PLAN_REF = re.compile(r"\b(the|our|this|updated) plan\b", re.I)


def _add(g: nx.DiGraph, i: int, j: int, kind: str, w: float) -> None:
    if i >= j:
        return
    if g.has_edge(i, j):
        d = g.edges[i, j]
        d["kinds"].add(kind)
        d["weight"] += w
    else:
        g.add_edge(i, j, kinds={kind}, weight=w)


def _shown(tokens: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` reused tokens: numbers first, then identifiers, then URLs (lower-cased, as the graph matches them;
    past 60 characters cut, with "…"); sorted, since token sets have no stable order."""
    order = {"#": 0, "i": 1, "u": 2}
    toks = sorted(tokens, key=lambda t: (order.get(t[0], 3), t))[:n]
    return [v if len(v) <= 60 else v[:59] + "…" for v in ((t[1:] if t[0] == "#" else t[2:]) for t in toks)]


_WORD = re.compile(r"\w+")


def build_graph(trace: Trace) -> nx.DiGraph:
    """The information-flow DAG of ``trace`` (nodes = step indices, attrs agent/tool; edges kinds/weight)."""
    g = nx.DiGraph()
    steps = trace.steps
    agents = [a for a in trace.agents if a]
    name_res = {a: re.compile(r"\b" + re.escape(a) + r"\b", re.I) for a in agents if len(a) >= 3}
    # a name's first word must be a whole word of the text for its pattern to match there: checking that first keeps
    # the search off most names (a 5,200-step run of 192 agents spent 17 s in a million searches)
    first_word = {a: m.group(0).lower() for a in name_res if (m := _WORD.match(a))}
    call_owner: dict[str, int] = {}
    origin: dict[str, int] = {}
    plan_step: int | None = None
    pending_handoff: dict[str, int] = {}
    tools = tool_steps(steps)
    for pos, s in enumerate(steps):
        tool = tools[pos]
        g.add_node(pos, agent=s.agent, tool=tool)
        for p in s.parents:
            if 0 <= p < pos:
                _add(g, p, pos, "parent", WEIGHTS["parent"])
        for r in s.tool_results:
            if r.call_id and r.call_id in call_owner:
                _add(g, call_owner[r.call_id], pos, "tool", WEIGHTS["tool"])
        for c in s.tool_calls:
            if c.id:
                call_owner[c.id] = pos
        if pos > 0:
            _add(g, pos - 1, pos, "sequence", WEIGHTS["sequence"])
            if tool and not tools[pos - 1]:
                _add(g, pos - 1, pos, "tool", WEIGHTS["tool"])
        if s.agent in pending_handoff:
            _add(g, pending_handoff.pop(s.agent), pos, "handoff", WEIGHTS["handoff"])
        text = s.content[:20000]
        reused: dict[int, list[str]] = {}
        toks = salient_tokens(text)
        for t in toks:
            o = origin.get(t)
            if o is None:
                origin[t] = pos
            elif o != pos:
                reused.setdefault(o, []).append(t)
        for o, vals in reused.items():
            _add(g, o, pos, "content", WEIGHTS["content"] * min(len(vals), 5) / 2.0)
            g.edges[o, pos]["values"] = vals  # evidence: what the hop carries (worded only for a shown path)
        if plan_step is not None and _PLAN_REF.search(text):
            _add(g, plan_step, pos, "plan", WEIGHTS["plan"])
        if _PLAN_DEF.search(text):
            plan_step = pos
        words = set(_WORD.findall(text.lower())) if name_res else set()
        for a, rx in name_res.items():
            if a != s.agent and (first_word.get(a, "") in words or a not in first_word) and rx.search(text):
                pending_handoff[a] = pos
        g.nodes[pos]["n_tokens"] = len(toks)
    return g


def failure_node(trace: Trace) -> int:
    """Where the failure shows: the step stating the final answer (else the last step)."""
    contents = [s.content for s in trace.steps]
    skip = tool_steps(trace.steps)
    idx, _ = final_answer_text(contents, skip)
    return idx if idx is not None else len(trace.steps) - 1


def invert(g: nx.DiGraph, sink: int, keep: float = 0.3) -> dict[int, float]:
    """Performance causal inversion: blame mass that each step keeps when 1 unit flows back from ``sink``.

    Each node keeps ``keep`` of its incoming mass and passes the rest to its predecessors in
    proportion to edge weight; a node without predecessors keeps everything. Masses sum to 1.
    """
    mass = {n: 0.0 for n in g.nodes}
    if sink not in mass:
        return mass
    inflow = {n: 0.0 for n in g.nodes}
    inflow[sink] = 1.0
    for n in sorted((n for n in g.nodes if n <= sink), reverse=True):
        m = inflow[n]
        if m == 0.0:
            continue
        preds = sorted(g.predecessors(n))  # a fixed order: the float sums then do not depend on how edges were added
        if not preds:
            mass[n] += m
            continue
        mass[n] += keep * m
        total = sum(g.edges[p, n]["weight"] for p in preds)
        for p in preds:
            inflow[p] += (1 - keep) * m * g.edges[p, n]["weight"] / total
    return mass


def blame_path(g: nx.DiGraph, source: int, sink: int) -> list[int]:
    """The strongest forward path from ``source`` to ``sink``: the one with least total 1/weight, so a single
    reused number beats a long chain of weak turn-order edges (evidence a person can follow; the heaviest path
    used before ran through every turn of a long run). A source whose output does not reach the sink gets ``[source]``
    alone (no hop is claimed)."""
    if source >= sink:  # every edge points forward in time: nothing later reaches an earlier step
        return [source]
    try:
        return list(nx.dijkstra_path(g, source, sink, weight=lambda _u, _v, d: 1.0 / d["weight"]))
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return [source]


#: How each kind of edge reads in a path ("4 →(hand-off) 5"); a content edge names the values it reuses.
KIND_WORDS = {"parent": "linked", "tool": "tool", "handoff": "hand-off", "content": "reuses content",
              "plan": "follows the plan", "sequence": "next turn"}


def path_hops(g: nx.DiGraph, path: list[int]) -> list[str]:
    """What each hop (an edge of ``g``) of ``path`` carries, in words: its strongest kind, and for reused content the
    values ("reuses 33.0, 2.2"), so a person can check the hop in the two steps' texts."""
    out = []
    for i, j in zip(path, path[1:], strict=False):
        d = g.edges[i, j]
        kind = max(d["kinds"], key=WEIGHTS.__getitem__)
        values = _shown(d["values"]) if kind == "content" and d.get("values") else None
        out.append(f"reuses {', '.join(values)}" if values else KIND_WORDS[kind])
    return out


def path_text(path: list[int], hops: list[str] | None = None, arrow: str = "→", limit: int = 12,
              label: Callable[[int], str] = str) -> str:
    """``path`` as a person reads it, e.g. "4 →(reuses 33.0) 92" (``hops``: what each edge carries, as in
    ``evidence["graph_path_hops"]``; ``label``: how a step is named); a path over ``limit`` steps keeps its ends
    and says how many it skips."""
    if not path:
        return ""
    hops = [f" {arrow}({h}) " for h in hops] if hops and len(hops) == len(path) - 1 else [f" {arrow} "] * (len(path) - 1)
    parts = [label(path[0])] + [h + label(n) for h, n in zip(hops, path[1:], strict=True)]
    if len(path) > limit:
        head, tail = limit // 2, limit - limit // 2 - 1
        gap = "..." if arrow.isascii() else "…"
        parts = parts[:head] + [f" {arrow} {gap} ({len(path) - head - tail} steps)"] + parts[-tail:]
    return "".join(parts)


def flow_words(path: list[int], hops: list[str] | None, sink: int | None, arrow: str = "→", limit: int = 12,
               label: Callable[[int], str] = str) -> str:
    """The flow-graph evidence in words: the path from the decisive step to ``sink`` (where the failure shows), or
    why there is none (the step *is* that step, or its output does not reach it). Reports, the reason sentence and
    the app all say it this way."""
    if len(path) > 1:
        return path_text(path, hops, arrow, limit, label)
    if path and path[0] == sink:
        return f"step {label(sink)} is itself where the failure shows"
    return f"no path: its output does not reach step {label(sink) if sink is not None else '?'} in the flow graph"


def attribute(trace: Trace, keep: float = 0.3, top_k: int = 5) -> Attribution:
    """Blame the step that keeps most inverted mass (tool steps, the human's and system messages excluded, earliest wins
    ties). The confidence is that mass and the agent scores are summed step mass: scores, not calibrated, so no
    step gets a ``probability``. A tool step's mass counts to the agent that called it (as the learned method's
    agent game counts it: :func:`attrib.trace.deciding_agents`), so the agent tables of the methods compare.
    ``top_k``: how many of the top steps the evidence lists (``evidence["top_k"]``, what reports show)."""
    g = build_graph(trace)
    sink = failure_node(trace)
    mass = invert(g, sink, keep)
    # not a tool's, the human's (by name: AutoGen and Who&When give agents' messages the role "user") or the system's
    agent = [i for i in mass if is_agent_step(trace.steps[i])]
    cands = [i for i in agent if not g.nodes[i]["tool"]] or agent or list(mass)
    best = max(cands, key=lambda i: (mass[i], -i))
    owners = deciding_agents(trace.steps, [g.nodes[i]["tool"] for i in range(trace.n_steps)])
    agent_mass: dict[str, float] = {}
    for i, m in mass.items():
        agent_mass[owners[i]] = agent_mass.get(owners[i], 0.0) + m
    to_callers = tools_to_callers(trace.steps, owners)
    from attrib.trace import AgentBlame

    agents = tuple(
        AgentBlame(agent=a, score=m) for a, m in sorted(agent_mass.items(), key=lambda kv: -kv[1])
    )
    steps = tuple(StepBlame(step=i, agent=trace.steps[i].agent, score=mass[i]) for i in mass)
    path = blame_path(g, best, sink)
    return Attribution(
        trace_id=trace.id,
        method="flow-graph",
        agent=trace.steps[best].agent,
        step=best,
        confidence=mass[best],
        agent_confidence=agent_mass.get(trace.steps[best].agent),
        agents=agents,
        steps=steps,
        evidence={"graph_path": path, "graph_path_hops": path_hops(g, path), "failure_step": sink,
                  "n_edges": g.number_of_edges(),
                  "confidence_kind": "the step's share of the inverted blame mass (a score, not calibrated)",
                  "agent_blame": "summed step mass",
                  **({"tool_steps_to_caller": to_callers} if to_callers else {}),
                  "top_k": sorted(mass, key=lambda i: (-mass[i], i))[:top_k]},
        reason=(
            f"Blame flowing back from step {sink}, where the failure shows, collects most at step {best} "
            f"({trace.steps[best].agent}), which originates content the later steps build on." if best != sink else
            f"Blame flowing back from step {sink} ({trace.steps[best].agent}), where the failure shows, stays mostly "
            "there: no earlier step originates enough of what it rests on to take more of the blame, so read this "
            "verdict as weak."
        ),
    )
