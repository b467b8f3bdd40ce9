"""Causal discovery of the critical step with causal-learn's PC and temporal background knowledge.

Samples are traces of one system (or re-runs of one task). Each trace becomes a row of variables
``signal@tier``: whether any step in a time tier (relative position, ``n_tiers`` bins) shows an
error, a novel (unsourced) number, a hedge/assumption, or an inability -- plus one outcome variable
``failure``. PC (Fisher-z) learns the graph with background knowledge that puts each variable in its
time tier, so no edge may point from a later tier to an earlier one, and ``failure`` is last.

The causal effect of a variable on failure is the least-squares coefficient of ``failure`` on it,
adjusted for its parents in the learned graph (back-door), and zero unless the graph has a directed
path to ``failure``. A step's score is the sum of the effects of the signals it shows at its tier;
steps are ranked by score, the earliest winning ties.

``failure`` is the trace outcome (1 = failed) when traces disagree on it. When every trace failed (as in
Who&When) the outcome has no variance, so ``failure`` becomes the *visible failure symptom*: how many
error/inability signals the last tier shows. That choice is documented in the eval output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attrib.errors import AttribError, check_fitted
from attrib.trace import AgentBlame, Attribution, StepBlame, Trace

SIGNALS = ("kw_error", "novel_numbers_any", "kw_hedge", "kw_unable", "next_tool_error")


def _tier(i: int, n: int, n_tiers: int) -> int:
    return min(int(i / max(n - 1, 1) * n_tiers), n_tiers - 1)


def _signals(trace: Trace) -> np.ndarray:
    from attrib.features.steps import INDEX
    from attrib.methods.ranker import featurize

    X = featurize(trace)
    S = X[:, [INDEX[s] for s in SIGNALS]] > 0
    S[X[:, INDEX["is_tool"]] > 0] = False  # tools report errors; deciders make them
    return S.astype(float)


class CausalStepModel:
    """PC over ``signal@tier`` variables pooled across traces; scores steps by causal effect on failure."""

    def __init__(self, n_tiers: int = 6, alpha: float = 0.05, random_state: int = 0) -> None:
        self.n_tiers = n_tiers
        self.alpha = alpha
        self.random_state = random_state

    def _row(self, trace: Trace) -> np.ndarray:
        S = _signals(trace)
        n = len(S)
        row = np.zeros((self.n_tiers, len(SIGNALS)))
        for i in range(n):
            row[_tier(i, n, self.n_tiers)] = np.maximum(row[_tier(i, n, self.n_tiers)], S[i])
        return row.ravel()

    def fit(self, traces: Sequence[Trace]) -> CausalStepModel:
        from causallearn.graph.GraphNode import GraphNode
        from causallearn.search.ConstraintBased.PC import pc
        from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

        if len(traces) < 10:
            raise AttribError(f"causal discovery needs at least 10 traces of one system, got {len(traces)}")
        D = np.array([self._row(t) for t in traces])
        outcomes = np.array([t.outcome == "failed" for t in traces], dtype=float)
        if outcomes.std() > 0:
            y, self.outcome_ = outcomes, "outcome"
        else:
            last = D[:, (self.n_tiers - 1) * len(SIGNALS):]
            y, self.outcome_ = last[:, [0, 3, 4]].sum(axis=1), "symptom"
            D[:, (self.n_tiers - 1) * len(SIGNALS):] = 0  # the symptom tier is the outcome, not a cause
        names_all = [f"{s}@{t}" for t in range(self.n_tiers) for s in SIGNALS]
        keep = [j for j in range(D.shape[1]) if D[:, j].std() > 0]
        # drop exact duplicate columns (singular correlation for Fisher-z)
        uniq: dict[bytes, int] = {}
        for j in keep:
            uniq.setdefault(D[:, j].tobytes(), j)
        keep = sorted(uniq.values())
        self.effects_ = np.zeros(len(names_all))
        self.graph_edges_: list[tuple[str, str]] = []
        if not keep or y.std() == 0:
            return self
        rng = np.random.default_rng(self.random_state)
        data = np.column_stack([D[:, keep], y]) + rng.normal(scale=1e-6, size=(len(D), len(keep) + 1))
        names = [names_all[j] for j in keep] + ["failure"]
        bk = BackgroundKnowledge()
        for j, nm in zip(keep, names[:-1], strict=True):
            bk.add_node_to_tier(GraphNode(nm), j // len(SIGNALS))
        bk.add_node_to_tier(GraphNode("failure"), self.n_tiers)
        cg = pc(data, self.alpha, "fisherz", background_knowledge=bk, show_progress=False, node_names=names)
        G = cg.G.graph
        m = len(names)
        directed = {(a, b) for a in range(m) for b in range(m) if G[b, a] == 1 and G[a, b] == -1}
        undirected = {(a, b) for a in range(m) for b in range(m) if G[a, b] == -1 and G[b, a] == -1}
        # undirected edges get the temporal orientation (earlier tier -> later)
        tier = [j // len(SIGNALS) for j in keep] + [self.n_tiers]
        for a, b in undirected:
            if tier[a] < tier[b] or (tier[a] == tier[b] and a < b):
                directed.add((a, b))
        self.graph_edges_ = sorted((names[a], names[b]) for a, b in directed)
        import networkx as nx

        g = nx.DiGraph(list(directed))
        g.add_nodes_from(range(m))
        target = m - 1
        anc = nx.ancestors(g, target)
        for a in anc:
            parents = [p for p in g.predecessors(a)]
            Z = np.column_stack([data[:, a], *(data[:, p] for p in parents), np.ones(len(data))])
            coef, *_ = np.linalg.lstsq(Z, data[:, target], rcond=None)
            self.effects_[keep[a]] = coef[0]
        return self

    def step_scores(self, trace: Trace) -> np.ndarray:
        """Per-step causal score: the sum of the effects of the signals each step shows at its tier."""
        check_fitted(self, "effects_")
        S = _signals(trace)
        n = len(S)
        E = self.effects_.reshape(self.n_tiers, len(SIGNALS))
        return np.array([S[i] @ E[_tier(i, n, self.n_tiers)] for i in range(n)])


def attribute(trace: Trace, model: CausalStepModel | None = None, top_k: int = 5) -> Attribution:
    """Rank steps by estimated causal effect on failure (earliest wins ties). Needs a fitted model (default: one
    fitted on the Algorithm-Generated logs). ``top_k``: how many top steps the evidence lists."""
    if model is None:
        from attrib.evaluate.data import load_subset

        model = _pooled_model(tuple(t.id for t in load_subset("algorithm")))
    from attrib.features.text import is_human_agent

    sc = model.step_scores(trace)
    # the human's own message (the task) is never the mistake; among the agents' steps, earliest wins ties
    cand = [i for i, s in enumerate(trace.steps) if not is_human_agent(s.agent)] or list(range(trace.n_steps))
    top = max(sc[i] for i in cand)
    tied = [i for i in cand if sc[i] == top]
    best = tied[0]
    agents: dict[str, float] = {}
    for i, s in enumerate(trace.steps):
        agents[s.agent] = agents.get(s.agent, 0.0) + max(float(sc[i]), 0.0)
    return Attribution(
        trace_id=trace.id, method="causal", agent=trace.steps[best].agent, step=best,
        confidence=float(1 / len(tied)),
        agents=tuple(AgentBlame(agent=a, score=v) for a, v in sorted(agents.items(), key=lambda kv: -kv[1])),
        steps=tuple(StepBlame(step=i, agent=s.agent, score=float(sc[i])) for i, s in enumerate(trace.steps)),
        evidence={"causal_edges": [list(e) for e in model.graph_edges_[:20]], "outcome_variable": model.outcome_,
                  "confidence_kind": "1 / the number of steps tied for the top score (not calibrated)",
                  "agent_blame": "summed positive step scores",
                  "top_k": [int(i) for i in np.argsort(-sc, kind="stable")[:top_k]]},
        reason=f"Step {best} shows the signals with the largest estimated causal effect on failure at its time tier.",
    )


_POOLED: dict[tuple[str, ...], CausalStepModel] = {}


def _pooled_model(key: tuple[str, ...]) -> CausalStepModel:
    from attrib.evaluate.data import load_subset

    if key not in _POOLED:
        _POOLED[key] = CausalStepModel().fit(load_subset("algorithm") + load_subset("hand"))
    return _POOLED[key]
