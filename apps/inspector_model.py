"""Inside the model: the head-localization heatmap (``bench/results/heads.json``) and, for steps with recorded
activations, the per-step layer × head attention map and per-token weights on the system rule.

Activations are read lazily through :mod:`attrib.activations` in the recorder's layout (:mod:`attrib.record`);
the segment math is :mod:`attrib.heads.drift`'s. No model is loaded by the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import inspector_data as data
import inspector_figures as figs
import inspector_state as state
import numpy as np
import streamlit as st
from inspector_common import kept, need_trace
from inspector_data import md_code, md_escape

from attrib.errors import InputError
from attrib.heads.drift import MIN_OFF_SINK
from attrib.trace import Step, Trace

STATS = {
    "scores": "combined drift S(l,h) (z-score)",
    "magnitude": "magnitude shift (rule → conflict)",
    "direction": "direction change (1 - cos)",
    "js": "distribution change (Jensen-Shannon)",
    "sink_clean": "attention-sink mass, plain run",
    "sink_conflict": "attention-sink mass, conflict run",
}


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(None, field, f"expected a number, got {value!r}")
    return float(value)


def sparse_matrix(body: dict[str, Any]) -> tuple[list[list[float | None]], str] | None:
    """A layer × head matrix holding only the ranked heads a benchmark file lists (``top_heads``: [layer, head, S]),
    the rest left empty; sized by ``n_layers``/``layer_profile`` and ``n_heads`` (else the largest index seen).

    A malformed entry raises :class:`InputError` naming its field (``top_heads[2][1]``, ``n_layers``, ...)."""
    raw = body.get("top_heads")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InputError(None, "top_heads", f"expected a list of [layer, head, score], got {type(raw).__name__}")
    top: list[tuple[int, int, float]] = []
    for k, t in enumerate(raw):
        if not isinstance(t, list | tuple) or len(t) < 3:
            raise InputError(None, f"top_heads[{k}]", f"expected [layer, head, score], got {t!r}")
        top.append((data.head_index(t[0], f"top_heads[{k}][0]"), data.head_index(t[1], f"top_heads[{k}][1]"),
                    _number(t[2], f"top_heads[{k}][2]")))
    if not top:
        return None
    profile = body.get("layer_profile")
    n_layers = (data.head_index(body["n_layers"], "n_layers") if body.get("n_layers") is not None
                else len(profile) if isinstance(profile, list) and profile else max(t[0] for t in top) + 1)
    n_heads = (data.head_index(body["n_heads"], "n_heads") if body.get("n_heads") is not None
               else max(t[1] for t in top) + 1)
    m: list[list[float | None]] = [[None] * n_heads for _ in range(n_layers)]
    for la, h, sc in top:
        if la < n_layers and h < n_heads:
            m[la][h] = sc
    return m, f"only the {len(top)} top-ranked heads are in this file; `attrib heads --save FILE` keeps every head"


def read_heads_file(box: str | None) -> tuple[Path, Any]:
    """The head-localization file named in the "Result file" box (empty: ``bench/results/heads.json``) and its
    content (None when that default file has not been written yet).

    A named file that is missing, a folder, or not JSON raises :class:`InputError` naming it.
    """
    default = data.results_dir() / "heads.json"
    given = (box or "").strip()
    path = Path(given).expanduser() if given else default
    if not path.exists():
        if path == default:
            return path, None
        raise InputError(path, None, "no such file")
    if path.is_dir():
        raise InputError(path, None, "is a folder: give a head-localization result JSON file")
    return path, data.read_json_file(path)


def heads_section() -> None:
    """The head-localization result: layer × head drift heatmap, focal heads and layers, the patching checks."""
    st.subheader("Head localization (instruction-conflict probes)")
    default = str(data.results_dir() / "heads.json")
    # a file typed here stays after a visit to another page
    box = kept("heads_file", lambda: st.text_input(
        "Result file", key="heads_file", help="bench/results/heads.json (python bench/heads/run.py) or a file "
        "written by `attrib heads --model smollm2-135m --save FILE` (every head's scores). Empty: "
        "bench/results/heads.json."), default=default)
    try:
        path, res = read_heads_file(box)
    except Exception as e:
        st.error(data.error_md(e))
        return
    if res is None:
        st.info("No head-localization result yet: run `python bench/heads/run.py` (writes bench/results/heads.json) "
                "or `attrib heads --model smollm2-135m --save heads.json`, then reload.")
        return
    body = res.get("result", res) if isinstance(res, dict) else {}
    if not isinstance(body, dict):
        st.json(res, expanded=False)
        return
    try:
        focal = data.focal_heads(body)
        present = [k for k in STATS if data.find_matrix(body, (k,)) is not None]
        sparse = None if present else sparse_matrix(body)
    except InputError as e:  # the field the file gets wrong, named with the file
        st.error(data.md_escape(InputError(path, e.field, e.message)))
        return
    model = str(body.get("model", ""))
    if present:
        stat = st.selectbox("Statistic", present, format_func=lambda k: STATS[k], key="heads_stat")
        matrix, note = data.find_matrix(body, (stat,)) or [], ""
    else:
        if sparse is None:
            st.warning(f"{md_code(path)} holds no layer × head scores this page understands.")
            st.json(res, expanded=False)
            return
        stat, (matrix, note) = "scores", sparse
    st.plotly_chart(figs.heatmap_figure(matrix, f"{STATS[stat]} — {model}", focal, stat), width="stretch",
                    key="heads_fig")
    if note:
        st.caption(note)
    cols = st.columns(3)
    cols[0].metric("focal heads", len(focal))
    if body.get("focal_layers") is not None:
        cols[1].metric("focal layers", ", ".join(map(str, body["focal_layers"])) or "—")
    pairs = body.get("n_pairs", (body.get("scan") or {}).get("pairs_scored") if isinstance(body.get("scan"), dict) else None)
    if pairs is not None:
        cols[2].metric("probe pairs", pairs)
    for key, label in (("patching", "Patching check"), ("patching_train", "Patching check (probes it was localized on)"),
                       ("patching_heldout", "Patching check (held-out probe templates)")):
        patch = body.get(key)
        if isinstance(patch, dict):
            st.markdown(f"**{label}** — focal heads vs random head sets of the same size")
            if patch.get("summary"):
                st.markdown(f"> {patch['summary']}")
            with st.expander("details"):
                st.json(patch, expanded=False)
    comp = body.get("family_compliance") or body.get("family_compliance_train")
    if isinstance(comp, dict) and comp:
        st.markdown("**Base compliance per probe family**")
        st.dataframe([{"family": f, **(v if isinstance(v, dict) else {"value": v})} for f, v in comp.items()],
                     hide_index=True, width="stretch")


SEG_SUFFIX = ":segment_mass"


def _layer_arrays(acts: dict[str, Any], suffix: str) -> list[tuple[int, np.ndarray]]:
    out = []
    for hook, arr in acts.items():
        if hook.startswith("blocks.") and hook.endswith("attn.hook_pattern" + suffix):
            a = np.asarray(arr, dtype=np.float64)
            out.append((int(hook.split(".")[1]), a[0] if a.ndim == 4 else a))  # batch of 1 dropped
    return sorted(out, key=lambda x: x[0])


def segment_stack(acts: dict[str, Any], layout: dict[str, Any] | None) -> tuple[np.ndarray, list[int]] | None:
    """Per-segment attention ``[L, H, Q, S]`` at the answer positions, with the layer ids.

    From the recorder's ``blocks.{l}.attn.hook_pattern:segment_mass`` [H, Q, S] directly; from full patterns
    ``blocks.{l}.attn.hook_pattern`` [H, T, T] through :mod:`attrib.heads.drift` when the step's
    ``activation_layout`` gives the token spans and the prompt length.
    """
    seg = _layer_arrays(acts, SEG_SUFFIX)
    if seg and len({a.shape for _, a in seg}) == 1:
        return np.stack([a for _, a in seg]), [la for la, _ in seg]
    full = _layer_arrays(acts, "")
    if not full or not layout or "spans" not in layout or len({a.shape for _, a in full}) != 1:
        return None
    from attrib.heads import drift

    pats = np.stack([a for _, a in full])  # [L, H, T, T]
    t = pats.shape[-1]
    n_given = layout.get("n_prompt")
    n_prompt = int(t if n_given is None else n_given)
    spans = {k: (int(v[0]), int(v[1])) for k, v in layout["spans"].items()}
    q = np.arange(n_prompt - 1, max(t - 1, n_prompt))
    masses = drift.segment_masses(pats[:, :, q, :], drift.segment_ids(t, spans, n_prompt))
    return masses, [la for la, _ in full]


#: Below this much non-sink attention a row's segment shares are undefined (NaN), not blown up: the threshold below
#: which ``attrib heads`` gives a head no drift (drift imports numpy only).
MIN_REST = MIN_OFF_SINK


def shares(masses: np.ndarray, min_rest: float = MIN_REST) -> np.ndarray:
    """Segment shares with the attention sink removed: each non-sink mass over the sum of the non-sink masses.

    As ``drift.drop_sink`` (the non-sink masses over their sum), except that a row with less than ``min_rest`` of
    its attention off the sink gives NaN (skipped by the averages) instead of shares of rounding noise: float16
    recordings where the sink rounds to 1.0, and sink-parked heads.
    """
    from attrib.heads import drift

    m = np.asarray(masses, dtype=np.float64)
    out = np.where(drift.off_sink_mass(m)[..., None] >= min_rest, drift.drop_sink(m), np.nan)
    out[..., drift.SINK] = 0.0  # a skipped row too: its segments are unknown, the sink is out either way
    return out


def _nanmean(x: np.ndarray, axis: Any) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.sum(~np.isnan(x), axis=axis)
        return np.where(n > 0, np.nansum(x, axis=axis) / np.maximum(n, 1), np.nan)


def head_stats(masses: np.ndarray, layout: dict[str, Any] | None) -> dict[str, tuple[np.ndarray, str]]:
    """Layer × head maps of one step, averaged over its answer positions (attention sink removed where noted)."""
    from attrib.heads import drift

    spans = (layout or {}).get("spans", {})
    clean = _nanmean(shares(masses), axis=2)  # [L, H, S]
    out: dict[str, tuple[np.ndarray, str]] = {}
    if "conflict" in spans:
        out["rule - conflict"] = (clean[..., drift.RULE] - clean[..., drift.CONFLICT],
                                  "attention on the system rule minus on the conflicting text (sink removed); "
                                  "negative = the head was pulled to the conflict")
    out["rule"] = (clean[..., drift.RULE], "share of attention on the system rule (sink removed)")
    if "conflict" in spans:
        out["conflict"] = (clean[..., drift.CONFLICT], "share of attention on the conflicting text (sink removed)")
    out["sink"] = (masses[..., drift.SINK].mean(axis=2), "attention-sink mass (first token)")
    return out


def token_weights(masses: np.ndarray, layers: list[int], focal: list[tuple[int, int]]) -> tuple[np.ndarray, str]:
    """Per answer token: the mean share of attention on the system rule over the focal heads (SAIL's w_t), or over
    all heads when the step's layers do not hold the focal heads."""
    from attrib.heads import drift

    clean = shares(masses)[..., drift.RULE]  # [L, H, Q]
    row = {la: i for i, la in enumerate(layers)}
    heads = [(row[la], h) for la, h in focal if la in row and h < clean.shape[1]]
    if heads:
        return _nanmean(np.stack([clean[i, h] for i, h in heads]), axis=0), f"mean over the {len(heads)} focal heads"
    return _nanmean(clean.reshape(-1, clean.shape[-1]), axis=0), "mean over all heads (no focal heads for this model)"


def recorded_attributions(step: Step) -> tuple[list[str], list[float]] | None:
    """Per-token attributions stored with a step: ``metadata['token_attributions'] = {tokens, weights}``."""
    ta = step.metadata.get("token_attributions") if isinstance(step.metadata, dict) else None
    if isinstance(ta, dict) and ta.get("tokens") and ta.get("weights"):
        return [str(t) for t in ta["tokens"]], [float(w) for w in ta["weights"]]
    return None


def _load(step: Step) -> dict[str, Any]:
    from attrib.activations import load_step

    return load_step(step)


def _focal(n_heads: int, layers: list[int]) -> list[tuple[int, int]]:
    """The head result's focal heads, only when its model has this step's shape (heads per layer, the layers).
    An unreadable result file (its error shows above, in the head section) outlines nothing."""
    try:
        _, res = read_heads_file(st.session_state.get("heads_file"))
        body = res.get("result", res) if isinstance(res, dict) else None
        if not isinstance(body, dict):
            return []
        focal = data.focal_heads(body)
        n_layers = int(body.get("n_layers") or len(body.get("layer_profile") or []))
        same_heads = body["n_heads"] == n_heads if "n_heads" in body else all(h < n_heads for _, h in focal)
    except (InputError, TypeError, ValueError):
        return []
    return focal if same_heads and n_layers > max(layers) else []


def steps_section(trace: Trace, upload_name: str | None = None) -> None:
    """Per-step layer × head attention map and per-token weights for the steps that carry activations.

    ``upload_name``: the file an uploaded trace came from; its relative activation paths point beside a file the
    browser never sent, so those steps say so instead of failing to load."""
    st.subheader("Recorded activations in this trace")
    with_acts = [s for s in trace.steps if s.activation is not None]
    if not with_acts:
        st.info("No step of this trace has recorded activations. Record them with `attrib.record.Recorder` while "
                "the agents run a local model (e.g. `python -m attrib.demo_agents`), then ingest the trace.")
        return
    if upload_name is not None:
        note = data.upload_activation_note(trace, upload_name)
        if note:
            st.warning(note)
        with_acts = [s for s in with_acts if s.activation is not None and Path(s.activation.path).is_absolute()]
        if not with_acts:
            return
    idx = st.selectbox("Step", [s.index for s in with_acts], key="act_step",
                       format_func=lambda i: f"step {i} · {trace.steps[i].agent}")
    step = trace.steps[idx]
    ref = step.activation
    assert ref is not None
    st.caption(f"{md_code(ref.path)} ({md_escape(ref.format)})")
    try:
        acts = _load(step)
    except Exception as e:
        st.error(data.error_md(e))
        return
    layout = step.metadata.get("activation_layout") if isinstance(step.metadata, dict) else None
    stacked = segment_stack(acts, layout)
    if stacked is None:
        st.info("This step's activations hold no attention statistics this page can read "
                "(`blocks.L.attn.hook_pattern:segment_mass`, or full patterns with an `activation_layout`); "
                "recorded hooks: " + ", ".join(md_code(k) for k in sorted(acts)))
    else:
        masses, layers = stacked
        stats = head_stats(masses, layout)
        name = st.selectbox("Head statistic", list(stats), key="act_stat")
        m, what = stats[name]
        focal = _focal(m.shape[1], layers)
        shown = [(layers.index(la), h) for la, h in focal if la in layers]
        st.plotly_chart(figs.heatmap_figure(m.tolist(), f"step {idx}: {name}", shown, name), width="stretch",
                        key="step_heat")
        st.caption(what + (f"; rows are layers {layers}" if layers != list(range(len(layers))) else "")
                   + ("; focal heads of the head-localization result outlined" if shown else ""))
        w, how = token_weights(masses, layers, focal)
        toks = (step.metadata or {}).get("response_tokens")
        labels = [str(t) for t in toks][: len(w)] if isinstance(toks, list) and len(toks) >= len(w) else None
        st.markdown(f"**Per-token weight on the system rule** ({how}); low weight = the token was written "
                    "while the heads looked away from the rule")
        st.plotly_chart(figs.token_bar_figure(w.tolist(), labels), width="stretch", key="step_tokens")
    ta = recorded_attributions(step)
    if ta is not None:
        st.markdown("**Recorded per-token attributions** (red pushes toward the output, blue away; hover for values)")
        st.html(figs.token_html(*ta))


def inside_model(ctx: state.Ctx) -> None:
    st.header("Inside the model")
    heads_section()
    if ctx.trace is not None:
        steps_section(ctx.trace, ctx.upload_name)
    else:
        need_trace(ctx)
