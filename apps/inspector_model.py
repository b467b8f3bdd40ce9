"""Inside the model: the head-localization heatmap (``bench/results/heads.json``) and, for steps with recorded
activations, the per-step layer × head attention heatmap and per-token attributions.

Activations are read lazily through :mod:`attrib.activations` (the same loader the CLI uses); numpy
reductions here are a few lines over the loaded patterns (no model is loaded by the app).
"""

from __future__ import annotations

from typing import Any

import inspector_data as data
import inspector_figures as figs
import inspector_state as state
import numpy as np
import streamlit as st
from inspector_pages import need_trace

from attrib.trace import Step, Trace

STATS = {
    "scores": "combined drift S(l,h) (z-score)",
    "magnitude": "magnitude shift (rule → conflict)",
    "direction": "direction change (1 - cos)",
    "js": "distribution change (Jensen-Shannon)",
    "sink_clean": "attention-sink mass, plain run",
    "sink_conflict": "attention-sink mass, conflict run",
}


def heads_section() -> None:
    """The benchmark's layer × head drift heatmap, focal heads and layers, and the patching check."""
    st.subheader("Head localization (instruction-conflict probes)")
    try:
        res = data.heads_result()
    except Exception as e:
        st.error(data.error_line(e))
        return
    if res is None:
        st.info("No head-localization result yet: run `attrib heads --model smollm2-135m --json` "
                "(or its benchmark, which writes `bench/results/heads.json`) and reload.")
        return
    body = res.get("result", res) if isinstance(res, dict) else res
    present = [k for k in STATS if data.find_matrix(body, (k,)) is not None]
    if not present:
        st.warning("`bench/results/heads.json` holds no layer × head matrix this page understands.")
        st.json(res)
        return
    stat = st.selectbox("Statistic", present, format_func=lambda k: STATS[k], key="heads_stat")
    matrix = data.find_matrix(body, (stat,))
    focal = data.focal_heads(body)
    model = body.get("model", "") if isinstance(body, dict) else ""
    st.plotly_chart(figs.heatmap_figure(matrix, f"{STATS[stat]} — {model}", focal, stat), width="stretch",
                    key="heads_fig")
    if isinstance(body, dict):
        cols = st.columns(3)
        cols[0].metric("focal heads", len(focal))
        if body.get("focal_layers") is not None:
            cols[1].metric("focal layers", ", ".join(map(str, body["focal_layers"])) or "—")
        if body.get("n_pairs") is not None:
            cols[2].metric("probe pairs", body["n_pairs"])
        patch = body.get("patching")
        if isinstance(patch, dict):
            st.markdown("**Patching check** (focal heads vs random head sets of the same size)")
            st.json(patch, expanded=False)
        comp = body.get("family_compliance")
        if isinstance(comp, dict) and comp:
            st.markdown("**Base compliance per probe family**")
            st.dataframe([{"family": f, **(v if isinstance(v, dict) else {"value": v})} for f, v in comp.items()],
                         hide_index=True, width="stretch")


def pattern_stack(acts: dict[str, np.ndarray]) -> tuple[np.ndarray, list[int]] | None:
    """Stack ``blocks.{l}.attn.hook_pattern`` arrays into ``[L, H, Q, K]`` (batch of 1 dropped), with layer ids."""
    items = []
    for hook, arr in acts.items():
        if hook.startswith("blocks.") and hook.endswith("attn.hook_pattern"):
            a = np.asarray(arr, dtype=np.float64)
            items.append((int(hook.split(".")[1]), a[0] if a.ndim == 4 else a))
    if not items:
        return None
    items.sort(key=lambda x: x[0])
    shapes = {a.shape for _, a in items}
    if len(shapes) != 1:
        return None
    return np.stack([a for _, a in items]), [la for la, _ in items]


def head_matrix(patterns: np.ndarray, step: Step) -> tuple[np.ndarray, str]:
    """One number per (layer, head) for a step: attention mass on the system-rule span when the step records its
    token span (``metadata['spans']['rule']``), else on the first token (the attention sink), at the last query."""
    last = patterns[:, :, -1, :]  # [L, H, K]: what the position producing the next token attends to
    spans = step.metadata.get("spans") if isinstance(step.metadata, dict) else None
    if isinstance(spans, dict) and "rule" in spans:
        a, b = (int(x) for x in spans["rule"])
        rest = np.clip(1.0 - last[..., 0], 1e-12, None)
        return last[..., a:b].sum(-1) / rest, f"attention on the system rule (tokens {a}–{b}, sink removed)"
    return last[..., 0], "attention-sink mass (first token); the step records no rule span"


def token_attributions(step: Step, acts: dict[str, np.ndarray]) -> tuple[list[str], list[float]] | None:
    """Per-token attributions recorded for a step: ``metadata['token_attributions'] = {tokens, weights}``."""
    md = step.metadata if isinstance(step.metadata, dict) else {}
    ta = md.get("token_attributions")
    if isinstance(ta, dict) and ta.get("tokens") and ta.get("weights"):
        return [str(t) for t in ta["tokens"]], [float(w) for w in ta["weights"]]
    tokens = md.get("tokens")
    for key in ("token_attributions", "attributions"):
        if key in acts and tokens:
            w = np.asarray(acts[key], dtype=np.float64).reshape(-1)
            return [str(t) for t in tokens][: w.size], w[: len(tokens)].tolist()
    return None


def _load(step: Step) -> dict[str, Any]:
    from attrib.activations import load_step

    return load_step(step)


def steps_section(trace: Trace) -> None:
    """Per-step heatmap and per-token attributions for the steps that carry activations."""
    st.subheader("Recorded activations in this trace")
    with_acts = [s for s in trace.steps if s.activation is not None]
    if not with_acts:
        st.info("No step of this trace has recorded activations. Record them with `attrib.record` while the "
                "agents run a local model (see the heads section of the README), then ingest the trace.")
        return
    idx = st.selectbox("Step", [s.index for s in with_acts], key="act_step",
                       format_func=lambda i: f"step {i} · {trace.steps[i].agent}")
    step = trace.steps[idx]
    st.caption(f"`{step.activation.path}` ({step.activation.format}) · hooks: "
               f"{', '.join(step.activation.hooks) or 'all in file'}")
    try:
        acts = _load(step)
    except Exception as e:
        st.error(data.error_line(e))
        return
    stacked = pattern_stack(acts)
    if stacked is None:
        st.info("This step's activations hold no attention patterns (`blocks.L.attn.hook_pattern`), so there is "
                "no head map; recorded hooks: " + ", ".join(sorted(acts)))
    else:
        pats, layers = stacked
        m, what = head_matrix(pats, step)
        st.plotly_chart(figs.heatmap_figure(m.tolist(), f"step {idx}: {what}", zlabel="mass"), width="stretch",
                        key="step_heat")
        if layers != list(range(len(layers))):
            st.caption(f"rows are layers {layers}")
    ta = token_attributions(step, acts)
    if ta is None:
        st.info("No per-token attributions recorded for this step.")
    else:
        st.markdown("**Per-token attributions** (red pushes toward the output, blue away; hover for the value)")
        st.html(figs.token_html(*ta))


def inside_model(ctx: state.Ctx) -> None:
    st.header("Inside the model")
    heads_section()
    if ctx.trace is not None:
        steps_section(ctx.trace)
    else:
        need_trace(ctx)
