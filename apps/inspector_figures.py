"""Pure figure builders for the inspector: a trace and its attribution in, a plotly figure (or HTML) out.

No Streamlit and no I/O here, so every figure can be built and checked in a plain test.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from attrib.trace import Attribution, Trace

DECISIVE = "#d62728"  # the verdict: red
ANNOTATED = "#1f77b4"  # the ground-truth annotation (evaluation only): blue
PATH = "#ff7f0e"  # the blame path through the flow graph: orange
NEUTRAL = "#b0b0b0"


def snippet(text: str, n: int = 160) -> str:
    """One line of at most ``n`` characters, for hovers and tables."""
    one = " ".join((text or "").split())
    return one if len(one) <= n else one[: n - 1] + "…"


def step_scores(trace: Trace, attribution: Attribution | None) -> list[float]:
    """Blame per step, in step order, scaled to [0, 1] by the largest score (0 where a step has none)."""
    raw = [0.0] * trace.n_steps
    if attribution is not None:
        for s in attribution.steps:
            if 0 <= s.step < trace.n_steps:
                raw[s.step] = max(float(s.score), 0.0)
    top = max(raw, default=0.0)
    return [r / top for r in raw] if top > 0 else raw


#: Up to this many steps a step marker keeps its full size; beyond, markers shrink so that neighbours stay apart
#: on a plot about a thousand pixels wide (a 130-step run gets 7-8 px squares instead of overlapping 16 px ones).
FULL_SIZE_STEPS = 50


def marker_size(n_steps: int, full: int) -> int:
    """The size of one step's marker in a chart of ``n_steps`` steps (``full`` up to :data:`FULL_SIZE_STEPS`)."""
    if n_steps <= FULL_SIZE_STEPS:
        return full
    return max(6, round(full * FULL_SIZE_STEPS / n_steps))


def step_dtick(n_steps: int) -> int | None:
    """The step axis ticks every step on runs short enough for it (else plotly's own integer spacing): left to plotly,
    a short run's axis reads 0, 0.5, 1, 1.5, ... though steps are whole."""
    return 1 if n_steps <= 40 else None


def reaches_failure(trace: Trace) -> bool:
    """False for a run recorded as successful: its flow graph ends at the final answer, not at a failure."""
    return trace.outcome != "succeeded"


def _lanes(trace: Trace) -> list[str]:
    return list(trace.agents) or sorted({s.agent for s in trace.steps})


def _hover(trace: Trace, i: int, score: float) -> str:
    s = trace.steps[i]
    body = html.escape(snippet(s.content, 220))
    return f"<b>step {i}</b> · {html.escape(s.agent)} · blame {score:.2f}<br>{body}"


def timeline_figure(trace: Trace, attribution: Attribution | None = None, height: int | None = None) -> go.Figure:
    """Agents as lanes, steps as squares coloured by blame; the decisive step starred, the annotated one ringed."""
    lanes = _lanes(trace)
    scores = step_scores(trace, attribution)
    xs = [s.index if s.index is not None else i for i, s in enumerate(trace.steps)]
    ys = [s.agent for s in trace.steps]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#dddddd", "width": 1}, hoverinfo="skip", showlegend=False)
    )
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name="step (colour = blame)",
            marker={
                "symbol": "square",
                "size": marker_size(trace.n_steps, 16),
                "color": scores,
                "colorscale": "Reds",
                "cmin": 0.0,
                "cmax": 1.0,
                "line": {"color": "#888888", "width": 1},
                "colorbar": {"title": "blame", "thickness": 12, "len": 0.8},
            },
            hovertext=[_hover(trace, i, scores[i]) for i in range(trace.n_steps)],
            hoverinfo="text",
            customdata=list(range(trace.n_steps)),  # the step a click opens (inspector_views.clicked_step)
        )
    )
    if trace.label is not None and 0 <= trace.label.mistake_step < trace.n_steps:
        k = trace.label.mistake_step
        fig.add_trace(
            go.Scatter(
                x=[xs[k]],
                y=[ys[k]],
                mode="markers",
                name=f"annotated mistake (step {k})",
                marker={"symbol": "circle-open", "size": 30, "color": ANNOTATED, "line": {"width": 3}},
                hoverinfo="skip",
            )
        )
    if attribution is not None and 0 <= attribution.step < trace.n_steps:
        k = attribution.step
        fig.add_trace(
            go.Scatter(
                x=[xs[k]],
                y=[ys[k]],
                mode="markers+text",
                name=f"decisive step {k} ({attribution.method})",
                marker={"symbol": "star", "size": 24, "color": DECISIVE, "line": {"color": "black", "width": 1}},
                text=["decisive"],
                textposition="top center",
                hovertext=[_hover(trace, k, scores[k])],
                hoverinfo="text",
                customdata=[k],
            )
        )
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)), title=None)
    fig.update_xaxes(title="step", dtick=step_dtick(trace.n_steps))
    fig.update_layout(
        height=height or max(220, 70 * len(lanes) + 120),
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.12, "x": 0},
        plot_bgcolor="white",
    )
    return fig


def blame_figure(attribution: Attribution, compact: bool = False) -> go.Figure:
    """Agent blame as horizontal bars with confidence intervals; the decisive agent in red."""
    rows = sorted(attribution.agents, key=lambda a: a.score)
    names = [a.agent for a in rows]
    scores = [a.score for a in rows]
    has_ci = any(a.ci_low is not None and a.ci_high is not None for a in rows)
    err: dict[str, Any] | None = None
    if has_ci:
        plus = [(a.ci_high - a.score) if a.ci_high is not None else 0.0 for a in rows]
        minus = [(a.score - a.ci_low) if a.ci_low is not None else 0.0 for a in rows]
        err = {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "color": "#333333"}
    colors = [DECISIVE if n == attribution.agent else NEUTRAL for n in names]
    fig = go.Figure(
        go.Bar(
            x=scores,
            y=names,
            orientation="h",
            marker_color=colors,
            error_x=err,
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    zero = has_ci and all((a.ci_high or a.score) - (a.ci_low or a.score) <= 1e-12 for a in rows)
    title = "agent blame" + (" (this method reports zero-width CIs)" if zero else
                             " (bars: the method's CI)" if has_ci else " (no CI from this method)")
    fig.update_layout(
        title={"text": title, "font": {"size": 13 if compact else 16}},
        height=max(160, (30 if compact else 45) * len(names) + 80),
        margin={"l": 10, "r": 10, "t": 40, "b": 30},
        plot_bgcolor="white",
    )
    return fig


def flow_figure(
    trace: Trace,
    edges: Sequence[tuple[int, int, float, str]],
    attribution: Attribution | None = None,
    path: Sequence[int] = (),
    failure_step: int | None = None,
) -> go.Figure:
    """The information-flow DAG laid out as the timeline (x = step, y = agent lane); ``path`` edges in orange.

    ``edges`` are ``(i, j, weight, kinds)``. Node colour is blame; hovering an edge's midpoint names its kinds.
    """
    lanes = _lanes(trace)
    lane_y = {a: len(lanes) - 1 - k for k, a in enumerate(lanes)}
    pos = {i: (i, lane_y.get(s.agent, 0)) for i, s in enumerate(trace.steps)}
    on_path = {(a, b) for a, b in zip(path, path[1:], strict=False)}
    fig = go.Figure()
    for highlighted in (False, True):
        ex: list[float | None] = []
        ey: list[float | None] = []
        for i, j, _w, _k in edges:
            if ((i, j) in on_path) != highlighted or i not in pos or j not in pos:
                continue
            ex += [pos[i][0], pos[j][0], None]
            ey += [pos[i][1], pos[j][1], None]
        if ex:
            fig.add_trace(
                go.Scatter(
                    x=ex,
                    y=ey,
                    mode="lines",
                    line={"color": PATH if highlighted else "#cccccc", "width": 4 if highlighted else 1},
                    name=(f"blame path to the {'failure' if reaches_failure(trace) else 'final answer'}"
                          if highlighted else "information flow"),
                    hoverinfo="skip",
                )
            )
    mid_x = [(pos[i][0] + pos[j][0]) / 2 for i, j, _, _ in edges if i in pos and j in pos]
    mid_y = [(pos[i][1] + pos[j][1]) / 2 for i, j, _, _ in edges if i in pos and j in pos]
    mid_t = [f"{i} → {j}: {k} (w {w:.1f})" for i, j, w, k in edges if i in pos and j in pos]
    fig.add_trace(
        go.Scatter(
            x=mid_x, y=mid_y, mode="markers", marker={"size": 5, "color": "rgba(0,0,0,0.05)"},
            hovertext=mid_t, hoverinfo="text", showlegend=False,
        )
    )
    scores = step_scores(trace, attribution)
    nodes = list(pos)
    size = marker_size(len(nodes), 20)
    fig.add_trace(
        go.Scatter(
            x=[pos[n][0] for n in nodes],
            y=[pos[n][1] for n in nodes],
            mode="markers+text" if size >= 16 else "markers",  # step numbers fit inside full-size nodes only
            text=[str(n) for n in nodes],
            textposition="middle center",
            textfont={"size": 9},
            marker={
                "size": size,
                "color": [scores[n] for n in nodes],
                "colorscale": "Reds",
                "cmin": 0.0,
                "cmax": 1.0,
                "line": {
                    "color": [DECISIVE if attribution and n == attribution.step else "#666666" for n in nodes],
                    "width": [4 if attribution and n == attribution.step else 1 for n in nodes],
                },
            },
            hovertext=[_hover(trace, n, scores[n]) for n in nodes],
            hoverinfo="text",
            customdata=nodes,  # the step a click opens; edge midpoints carry none, so clicking one opens nothing
            name="step (colour = blame, red ring = decisive)",
        )
    )
    if failure_step is not None and failure_step in pos:
        fig.add_trace(
            go.Scatter(
                x=[pos[failure_step][0]],
                y=[pos[failure_step][1]],
                mode="markers",
                marker={"symbol": "x-open", "size": 30, "color": "black"},
                name=(f"failure shows (step {failure_step})" if reaches_failure(trace)
                      else f"final answer (step {failure_step}; the run succeeded)"),
                hoverinfo="skip",
            )
        )
    fig.update_yaxes(tickvals=list(lane_y.values()), ticktext=list(lane_y), title=None, zeroline=False)
    fig.update_xaxes(title="step", zeroline=False, dtick=step_dtick(trace.n_steps))
    fig.update_layout(
        height=max(260, 80 * len(lanes) + 140),
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.12, "x": 0},
        plot_bgcolor="white",
    )
    return fig


def heatmap_figure(
    matrix: Sequence[Sequence[float]], title: str, focal: Sequence[tuple[int, int]] = (), zlabel: str = "score"
) -> go.Figure:
    """A layer × head heatmap (rows = layers, columns = heads); focal heads outlined."""
    n_layers = len(matrix)
    n_heads = len(matrix[0]) if n_layers else 0
    fig = go.Figure(
        go.Heatmap(
            z=[[None if v != v else v for v in r] for r in matrix],  # NaN (undefined) -> a gap, valid JSON
            x=list(range(n_heads)),
            y=list(range(n_layers)),
            colorscale="RdBu_r",
            zmid=0.0,
            colorbar={"title": zlabel, "thickness": 12},
            hovertemplate="layer %{y} head %{x}: %{z:.3f}<extra></extra>",
        )
    )
    if focal:
        fig.add_trace(
            go.Scatter(
                x=[h for _, h in focal],
                y=[layer for layer, _ in focal],
                mode="markers",
                marker={"symbol": "square-open", "size": 14, "color": "black", "line": {"width": 2}},
                name="focal heads",
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title="head", dtick=1)
    fig.update_yaxes(title="layer", autorange="reversed")
    fig.update_layout(title=title, height=max(300, 18 * n_layers + 120), margin={"l": 10, "r": 10, "t": 40, "b": 40})
    return fig


def token_bar_figure(weights: Sequence[float], labels: Sequence[str] | None = None) -> go.Figure:
    """One bar per answer token (its weight), labelled with the token text when known."""
    x = list(range(len(weights)))
    alpha = [0.25 + 0.75 * min(max(w, 0.0), 1.0) if w == w else 0.1 for w in weights]  # w != w: NaN
    fig = go.Figure(go.Bar(x=x, y=[w if w == w else None for w in weights],
                           marker_color=[f"rgba(214,39,40,{a:.2f})" for a in alpha],
                           hovertext=list(labels) if labels else None,
                           hovertemplate="token %{x}: %{y:.3f}<extra>%{hovertext}</extra>" if labels else
                           "token %{x}: %{y:.3f}<extra></extra>"))
    if labels:
        fig.update_xaxes(tickvals=x, ticktext=[html.escape(t) for t in labels], tickangle=-45)
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 20, "b": 60}, xaxis_title="answer token",
                      yaxis_title="weight", plot_bgcolor="white")
    return fig


def token_html(tokens: Sequence[str], weights: Sequence[float]) -> str:
    """Tokens as inline spans shaded by attribution (red = pushes toward the output, blue = away)."""
    top = max((abs(w) for w in weights), default=0.0) or 1.0
    parts = []
    for tok, w in zip(tokens, weights, strict=False):
        a = min(abs(w) / top, 1.0)
        rgb = "214,39,40" if w >= 0 else "31,119,180"
        parts.append(
            f'<span title="{w:+.3f}" style="background: rgba({rgb},{a:.2f}); padding: 1px 2px; '
            f'border-radius: 3px">{html.escape(tok)}</span>'
        )
    return '<div style="line-height: 2; font-family: monospace">' + "".join(parts) + "</div>"
