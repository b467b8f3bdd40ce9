"""Pages about one trace's verdict: the timeline, the agent blame chart and the information-flow graph."""

from __future__ import annotations

import inspector_data as data
import inspector_figures as figs
import inspector_state as state
import streamlit as st
from inspector_common import kept, need_trace, verdict, verdict_source
from inspector_data import md_code, md_escape

from attrib.render import (
    RANKER_P,
    confidence_figure,
    confidence_word,
    note_markdown,
    span_words,
    step_probabilities,
    step_set_line,
    verdict_notes,
)
from attrib.trace import Attribution, Trace


def trace_page(ctx: state.Ctx) -> Trace | None:
    """The open trace with its header drawn, or None (after a hint to pick one) when no trace is open."""
    if not need_trace(ctx):
        return None
    assert ctx.trace is not None
    trace_header(ctx.trace)
    return ctx.trace


def trace_header(trace: Trace) -> None:
    """Id, task, outcome and size of the current trace (which copy it is, when it was uploaded: the sidebar says)."""
    st.header(f"Trace {md_escape(trace.id)}")
    subset = trace.metadata.get("subset") if isinstance(trace.metadata, dict) else None
    st.caption(f"{md_escape(trace.source_format)}{f' · {md_escape(subset)}' if subset else ''} · outcome "
               f"**{md_escape(trace.outcome)}** · {trace.n_steps} steps · "
               f"agents: {', '.join(md_escape(a) for a in trace.agents)}")
    if trace.task:
        with st.expander("Task", expanded=False):
            st.markdown(md_escape(figs.snippet(trace.task, 2000)))


def text_box(text: str, max_px: int, chars_per_line: int) -> None:
    """A step's text in a wrapped code box: as tall as the text, up to ``max_px`` (then it scrolls). A fixed height
    left a one-line step in a box mostly empty; ``chars_per_line`` is about what one wrapped line holds there."""
    lines = sum(max(1, -(-len(line) // chars_per_line)) for line in (text.splitlines() or [""]))
    st.code(text, language=None, wrap_lines=True, height="content" if 22 * lines + 40 <= max_px else max_px)


def step_owner_note(trace: Trace, a: Attribution) -> str:
    """`` (the step is X's)`` when the verdict's decisive step was written by another agent than the one it blames
    (a method may blame the agent a step's mistake came from), else ''. Markdown: the agent is escaped."""
    by = trace.steps[a.step].agent if 0 <= a.step < trace.n_steps else a.agent
    return "" if by == a.agent else f" (the step is {md_escape(by)}'s)"


def decisive_box(trace: Trace, a: Attribution, source: str = "") -> None:
    """The verdict: decisive agent and step, confidence, the reason, and the step's own text; ``source``: where the
    verdict comes from and its ranker (:func:`inspector_common.verdict_source`)."""
    with st.container(border=True):
        word = confidence_word(a)  # "score" for a method's score, which is no probability
        conf = f"{word} {confidence_figure(a, a.confidence)}"  # 54% as in every report, not 0.54
        if a.agent_confidence is not None:
            conf += f" · agent {word} {confidence_figure(a, a.agent_confidence)}"
        st.subheader(f"Decisive step {a.step} — {md_escape(a.agent)}{step_owner_note(trace, a)}")
        st.caption(f"method {md_code(a.method)}" + (f" · {source}" if source else "") + f" · {conf}"
                   + (f" · {a.elapsed_s * 1000:.0f} ms" if a.elapsed_s else "")
                   + (f" · {md_escape(span)}" if (span := span_words(a)) else ""))  # to find it in a trace viewer
        for note, level in verdict_notes(a, 5):  # the method's words escaped, attrib's own Markdown already
            (st.warning if level == "warning" else st.info)(note_markdown(a, note, md_escape))
        if sset := step_set_line(a, trace):
            st.info(f"Step set (conformal): {sset}")
        if a.reason:
            st.markdown(f"**Why:** {md_escape(a.reason)}")  # the method's words, quoting the trace's
        if 0 <= a.step < trace.n_steps:
            st.markdown(f"**Step {a.step} text ({md_escape(trace.steps[a.step].agent)}):**")
            text_box(trace.steps[a.step].content or "(empty)", 260, 50)  # a column 3/5 of the page wide


def annotation_box(trace: Trace, a: Attribution | None) -> None:
    """The Who&When annotation where known (evaluation data: methods never see it)."""
    lb = trace.label
    if lb is None:
        return
    msg = ("Annotated mistake (evaluation label, not seen by methods): "
           f"**{md_escape(lb.mistake_agent)}**, step **{lb.mistake_step}**")
    if a is not None:
        same_step, same_agent = a.step == lb.mistake_step, a.agent == lb.mistake_agent
        msg += (" — the verdict matches it." if same_step and same_agent else
                f" — verdict agent {'matches' if same_agent else 'differs'}, step "
                f"{'matches' if same_step else f'is off by {a.step - lb.mistake_step:+d}'}.")
    if reason := " ".join(lb.reason.split()):  # one line: italics end at a paragraph break
        msg += f"  \n_{md_escape(reason)}_"
    st.info(msg)


def clicked_step(event: object, n_steps: int) -> int | None:
    """The step of the point clicked in a timeline/flow chart, if any.

    Only step markers count: they carry their step index as ``customdata`` (:mod:`inspector_figures`). Other
    clickable points, such as an edge's midpoint in the flow graph (x halfway between its two steps), carry none
    and open nothing, where taking their x would open a step that is not on the edge."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    for p in points:
        k = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(k, list | tuple) and len(k) == 1:  # plotly gives per-point customdata as a list or a scalar
            k = k[0]
        if isinstance(k, int | float) and not isinstance(k, bool) and k == int(k) and 0 <= int(k) < n_steps:
            return int(k)
    return None


def step_detail(trace: Trace, k: int) -> None:
    """One step in full: agent, role, text, tool calls and results."""
    s = trace.steps[k]
    st.markdown(f"**Step {s.index} · {md_escape(s.agent)}** ({md_escape(s.role)})")
    text_box(s.content or "(empty)", 320, 100)
    for c in s.tool_calls:
        st.caption(f"tool call {md_code(c.name)}({md_escape(figs.snippet(c.arguments, 200))})")
    for r in s.tool_results:
        st.caption(("tool error: " if r.is_error else "tool result: ") + md_escape(figs.snippet(r.content, 300)))


def timeline(ctx: state.Ctx) -> None:
    """Agents as lanes, steps coloured by blame, the decisive step highlighted with its reason and text."""
    trace = trace_page(ctx)
    if trace is None:
        return
    a = verdict(ctx, source=False)  # the decisive box says where it comes from
    left, right = st.columns([3, 2])
    with left:
        if a is not None:
            decisive_box(trace, a, verdict_source(ctx, a))
    with right:
        annotation_box(trace, a)
        if a is not None and a.agents:
            st.plotly_chart(figs.blame_figure(a, compact=True), width="stretch", key="timeline_blame")
    event = st.plotly_chart(figs.timeline_figure(trace, a), width="stretch", key="timeline_fig",
                            on_select="rerun", selection_mode="points")
    st.caption("Click a step to read it below; hover for its text.")
    scores = figs.step_scores(trace, a)
    rows = [{"step": i, "agent": s.agent, "role": s.role, "blame": round(scores[i], 3),
             "text": figs.snippet(s.content, 140)} for i, s in enumerate(trace.steps)]
    picked = clicked_step(event, trace.n_steps)
    view = (trace.id, a.method if a else "", picked)
    first = min(max(picked if picked is not None else (a.step if a else 0), 0), trace.n_steps - 1)
    if st.session_state.get("_read_view") != view:  # new trace, method or click: show that step
        st.session_state["_read_view"] = view
        st.session_state["read_step"] = first
    # else, back from another page (which dropped the box's value): the step that was being read
    k = kept("read_step", lambda: st.number_input("Read step", min_value=0, max_value=trace.n_steps - 1,
                                                  key="read_step"),
             lambda v: 0 <= v < trace.n_steps, default=first)
    step_detail(trace, int(k))
    with st.expander(f"All {trace.n_steps} steps"):
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"blame": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                              format="%.2f")})


def blame(ctx: state.Ctx) -> None:
    """Agent blame with confidence intervals, and the top steps."""
    trace = trace_page(ctx)
    if trace is None:
        return
    a = verdict(ctx)
    if a is None:
        return
    if not a.agents:
        st.info(f"{md_code(a.method)} gives no per-agent blame; its verdict is {md_escape(a.agent)} at step {a.step}.")
    else:
        st.plotly_chart(figs.blame_figure(a), width="stretch", key="blame_fig")
        st.dataframe([{"agent": b.agent, "blame": b.score, "ci_low": b.ci_low, "ci_high": b.ci_high}
                      for b in sorted(a.agents, key=lambda b: -b.score)], hide_index=True, width="stretch")
    st.subheader("Top steps")
    probs = step_probabilities(a)  # only the learned ranker's steps have one: other methods got a column of None
    st.dataframe([{"step": s.step, "agent": s.agent, "score": s.score, **({RANKER_P: s.probability} if probs else {}),
                   "text": figs.snippet(trace.steps[s.step].content, 140) if 0 <= s.step < trace.n_steps else ""}
                  for s in a.top_steps(10)], hide_index=True, width="stretch")
    if a.evidence:
        with st.expander("Evidence (as the method reports it)"):
            st.json(a.evidence)


def path_line(trace: Trace, path: list[int], failure: int | None = None, ends: int = 4,
              hops: list[str] | None = None) -> str:
    """``3 (Coder) →(reuses 33) 8 (Verifier)``: the flow graph's words for the path (``hops``: the verdict's
    ``graph_path_hops``), steps named with their agents; a path longer than ``2 * ends + 1`` steps keeps its first
    and last ``ends`` steps around a count of the ones left out (the graph above draws them all)."""
    from attrib.methods.flow_graph import flow_words

    def label(i: int) -> str:
        return f"{i} ({trace.steps[i].agent})" if 0 <= i < trace.n_steps else str(i)

    return flow_words(path, hops, failure, limit=2 * ends + 1, label=label)


def flow_graph(ctx: state.Ctx) -> None:
    """The information-flow DAG with blame per node and the path from the decisive step to the failure."""
    trace = trace_page(ctx)
    if trace is None:
        return
    a = verdict(ctx)
    edges, failure, origin = state.cached_flow(trace.content_hash(), trace.to_json())
    path = data.blame_path(trace, a, edges, failure) if a is not None else []
    event = st.plotly_chart(figs.flow_figure(trace, edges, a, path, failure), width="stretch", key="flow_fig",
                            on_select="rerun", selection_mode="points")
    st.caption(f"{len(edges)} edges from {origin}; hover an edge's midpoint for its kinds "
               "(parent, tool, handoff, content, plan, sequence). Drag to zoom, double-click to reset.")
    if a is not None and path:
        to = ("where the failure shows" if figs.reaches_failure(trace) else
              "the final answer (the run is recorded as successful: there is no failure to reach)")
        hops = a.evidence.get("graph_path_hops") if a.evidence and a.evidence.get("graph_path") == path else None
        line = md_escape(path_line(trace, path, failure, hops=hops))  # agents' names and the verdict's hops
        st.markdown(f"**Blame path** from the decisive step to {to}: {line}")
    kinds: dict[str, int] = {}
    for _, _, _, k in edges:
        for kind in k.split(", "):
            kinds[kind] = kinds.get(kind, 0) + 1
    if kinds:
        st.dataframe([{"edge kind": k, "count": n} for k, n in sorted(kinds.items())], hide_index=True)
    picked = clicked_step(event, trace.n_steps)
    if picked is not None:
        step_detail(trace, picked)
    else:
        st.caption("Click a node to read its step here.")
