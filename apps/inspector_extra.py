"""Pages around the verdict: two methods side by side, benchmark results, report export and trace upload."""

from __future__ import annotations

from typing import Any

import inspector_data as data
import inspector_figures as figs
import inspector_state as state
import plotly.graph_objects as go
import streamlit as st
from inspector_common import kept, need_trace, open_picker, open_trace, verdict
from inspector_data import md_code, md_escape
from inspector_views import step_owner_note, trace_page

from attrib.render import confidence_figure, confidence_word
from attrib.trace import Trace


def compare(ctx: state.Ctx) -> None:
    """Two methods' verdicts on the same trace, their agent blame and their step scores side by side."""
    trace = trace_page(ctx)
    if trace is None:
        return
    if not ctx.methods:
        st.info("No attribution method is registered yet.")
        return
    names = ctx.methods
    if len(names) < 2:
        st.info(f"Only one attribution method is registered ({names[0]}): there is nothing to compare it with.")
        return
    c1, c2 = st.columns(2)
    ma = c1.selectbox("Method A", names, index=names.index(ctx.method) if ctx.method in names else 0, key="cmp_a")
    # B never offers A: a method compared with itself always "agrees". When A is set to B's method, B moves on
    # to the first other one.
    others = [n for n in names if n != ma]
    if st.session_state.get("cmp_b") not in others:
        st.session_state["cmp_b"] = others[0]
    mb = c2.selectbox("Method B", others, key="cmp_b")
    results = {}
    for col, m in ((c1, ma), (c2, mb)):
        with col:
            a = verdict(ctx, m)
            results[m] = a
            if a is None:
                continue
            with st.container(border=True):
                st.markdown(f"**{md_escape(m)}** → **{md_escape(a.agent)}**, step **{a.step}**"
                            f"{step_owner_note(trace, a)} ({confidence_word(a)} {confidence_figure(a, a.confidence)})")
                st.caption(md_escape(a.reason) if a.reason else "(no reason given)")
            if a.agents:
                st.plotly_chart(figs.blame_figure(a), width="stretch", key=f"cmp_fig_{col is c1}")
    a, b = results.get(ma), results.get(mb)
    if a is None or b is None:
        return
    agree = "agree" if (a.agent, a.step) == (b.agent, b.step) else (
        "agree on the agent, not the step" if a.agent == b.agent else "disagree")
    lb = trace.label
    truth = f" · annotation: {md_escape(lb.mistake_agent)}, step {lb.mistake_step}" if lb else ""
    st.markdown(f"The two methods **{agree}**{truth}.")
    fig = go.Figure()
    for m, att in ((ma, a), (mb, b)):
        fig.add_trace(go.Scatter(x=list(range(trace.n_steps)), y=figs.step_scores(trace, att), mode="lines+markers",
                                 name=m))
    if lb is not None:
        fig.add_vline(x=lb.mistake_step, line_dash="dot", line_color=figs.ANNOTATED, annotation_text="annotated")
    fig.update_xaxes(dtick=figs.step_dtick(trace.n_steps))
    fig.update_layout(title="step blame (each scaled to its maximum)", xaxis_title="step", height=320,
                      margin={"l": 10, "r": 10, "t": 40, "b": 40})
    st.plotly_chart(fig, width="stretch", key="cmp_steps")


def evaluation(ctx: state.Ctx) -> None:
    """Who&When benchmark results (``bench/results/who_and_when*.json``): default method, every method, anchors."""
    st.header("Evaluation on Who&When")
    try:
        results = data.eval_results()
    except Exception as e:
        st.error(data.error_md(e))
        return
    if not results:
        st.info("No benchmark run yet: `attrib eval who-and-when --json` writes `bench/results/who_and_when*.json`.")
        return
    name = st.selectbox("Result file", list(results), key="eval_file")
    res = results[name]
    if not isinstance(res, dict):
        st.json(res, expanded=False)
        return
    meta = [f"{k}: {res[k]}" for k in ("default_method", "setting", "folds", "model", "context_chars", "fold_seed")
            if k in res]
    if isinstance(res.get("wall_s"), int | float):
        meta.append(f"wall time {res['wall_s']:.1f} s")
    scoring = "top-1 exact match in %" + (", out of sample" if data.out_of_sample(res) else "")
    st.caption(" · ".join([*meta, scoring]))
    summary = data.eval_table(res)
    if summary:
        st.subheader(f"Default method ({res.get('default_method', '?')})")
        st.dataframe(summary, hide_index=True, width="stretch", column_config=percent_columns(summary))
    rows = data.eval_rows(res)
    if rows:
        st.subheader("Every method and baseline")
        c1, c2 = st.columns(2)
        sub = c1.selectbox("Subset", sorted({str(r.get("subset")) for r in rows}), key="eval_subset")
        settings = sorted({str(r.get("setting", "")) for r in rows})
        setting = c2.selectbox("Setting", settings, key="eval_setting",
                               help="with_gt: the ground-truth answer is visible to the methods; without_gt: it is not")
        shown = [r for r in rows if str(r.get("subset")) == sub and str(r.get("setting", "")) == setting]
        st.dataframe(shown, hide_index=True, width="stretch", column_config=percent_columns(shown))
        fig = go.Figure()
        labels = [f"{r.get('method')} ({r['protocol']})" if r.get("protocol") else str(r.get("method")) for r in shown]
        for metric in ("step_accuracy", "agent_accuracy"):
            fig.add_trace(go.Bar(y=labels, x=[r.get(metric) for r in shown], name=metric, orientation="h"))
        fig.update_layout(barmode="group", height=max(260, 28 * len(shown) + 120), xaxis_title="%",
                          margin={"l": 10, "r": 10, "t": 30, "b": 40})
        st.plotly_chart(fig, width="stretch", key="eval_fig")
    misses = data.eval_misses(res)
    if misses:
        with st.expander(f"Runs the default gets wrong ({len(misses)}), the most confident first"):
            misses_table(ctx, misses)
    pub = data.published_rows(res)
    if pub:
        st.subheader("Published LLM-based methods (for reference)")
        st.dataframe(pub, hide_index=True, width="stretch", column_config=percent_columns(pub))
    with st.expander("Full result JSON"):
        st.json(res, expanded=False)


def percent_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Column formats for a table of benchmark numbers: every fractional column (accuracies, ECE: all in %) to one
    decimal, as the CLI prints them, where the table showed 46.8254."""
    keys = dict.fromkeys(k for r in rows for k in r)
    fractional = [k for k in keys
                  if any(isinstance(r.get(k), float) for r in rows)
                  and all(r.get(k) is None or (isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool))
                          for r in rows)]
    return {k: st.column_config.NumberColumn(format="%.1f") for k in fractional}


def misses_table(ctx: state.Ctx, misses: list[dict[str, Any]]) -> None:
    """The wrong verdicts with, for the runs the store holds, an Open box as on the Traces page."""
    ids = [str(m["trace_id"]) for m in misses if m.get("trace_id")]
    held, unreadable = state.held_ids(ctx, ids)
    if unreadable:  # locked by `attrib ingest`, say: which runs it holds is not known now, not "none of them"
        st.error(unreadable)
    known = ctx.has_store and not unreadable
    st.caption("annotated agent @ step against the verdict step of each fold seed"
               + ("; `in store`: the run can be opened below" if known else ""))
    rows = [{**m, "in store": str(m.get("trace_id")) in held} for m in misses] if known else misses
    st.dataframe(rows, hide_index=True, width="stretch")
    openable = [i for i in dict.fromkeys(ids) if i in held]
    if openable:
        open_picker("Open trace", openable, "eval_open", "store")
    elif known:
        st.info(f"None of these runs is in the store {md_code(ctx.store_path)}: ingest the Who&When logs "
                f"({md_code(f'attrib ingest PATH --store {ctx.store_path}')}) to open them here.")


def export(ctx: state.Ctx) -> None:
    """Download the current trace's report as Markdown or JSON (the same renderers as ``attrib analyze``)."""
    if not need_trace(ctx):
        return
    trace = ctx.trace
    assert trace is not None
    st.header(f"Export the report for {md_escape(trace.id)}")
    a = verdict(ctx)
    if a is None:
        return
    md = data.report(a, trace, "markdown")
    js = data.report(a, trace, "json")
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{trace.id}.{a.method}")
    c1, c2 = st.columns(2)
    c1.download_button("Download Markdown", md, file_name=f"{stem}.md", mime="text/markdown", key="dl_md")
    c2.download_button("Download JSON", js, file_name=f"{stem}.json", mime="application/json", key="dl_json")
    # the file as written: drawn as Markdown, the trace's own text in it (agents, steps, the reason) would be read
    # as Markdown too (a `**Bold**` agent in bold, a `[x](url)` in a step a link), and the report does not escape it
    st.markdown("**Preview** (the Markdown file as it is downloaded)")
    st.code(md.decode(), language="markdown", wrap_lines=True)


def upload(ctx: state.Ctx) -> None:
    """Read a trace file from the browser with the CLI's readers; bad input shows the CLI's one-line error.

    The traces read are kept in the session and listed here, the latest file first, also after a visit to another
    page (which empties the file box: Streamlit drops a widget that is not drawn, and the browser its file)."""
    from attrib.readers import READERS

    st.header("Upload a trace")
    st.caption("Who&When JSON, OTLP JSON (OpenTelemetry GenAI / OpenInference) or chat logs (JSON/JSONL). "
               "The file is read exactly as `attrib analyze FILE` reads it; nothing is written to the store.")
    formats = ["auto-detect", *READERS]
    fmt = kept("up_format", lambda: st.selectbox("Format", formats, key="up_format"), lambda v: v in formats)
    f = st.file_uploader("Trace file", type=["json", "jsonl", "ndjson"], key="up_file")
    current = None
    if f is not None:
        # read once per upload and format, not on every click on this page (file_id: Streamlit's id of this upload,
        # new for each file dropped in); the error line stays while the file does
        read_key = (f.file_id, fmt)
        last = st.session_state.get(LAST_READ)
        if last is None or last[0] != read_key:
            try:
                state.keep_upload(data.read_upload(f.name, f.getvalue(), None if fmt == "auto-detect" else fmt), f.name)
                last = (read_key, None)
            except Exception as e:
                last = (read_key, data.error_md(e))
            st.session_state[LAST_READ] = last
        if last[1] is not None:
            st.error(last[1])
        else:
            current = f.name
    kept_files = state.uploaded_files()
    if kept_files and current is None:
        st.subheader("Uploaded in this session")
        st.caption("Kept while this browser tab is open; the file box above takes another file.")
        st.button("Forget these uploads", key="up_forget", on_click=state.forget_uploads,
                  help="Drop every trace uploaded in this session; the store's runs stay.")
    for k, (name, traces) in enumerate(kept_files):
        if k == 1:
            st.subheader("Earlier uploads in this session")
        # an earlier file's list is keyed by its name, so a new upload does not move a choice made in it
        show_uploaded(traces, name, latest=name == current, notes=k == 0,
                      picker_key="up_open_any" if k == 0 else f"up_open_any:{name}")


#: session_state key: ((upload id, format), error line or None) of the file last read on the Upload page
LAST_READ = "_upload_last_read"


def show_uploaded(traces: list[Trace], name: str, latest: bool = True, notes: bool = True,
                  picker_key: str = "up_open_any") -> None:
    """What was read from the uploaded file ``name`` (kept in the session: :func:`state.keep_upload`), with a button
    to open each trace (past ten, one list, ``picker_key``); ``latest``: the file now in the file box; ``notes``: say
    which traces come without their activation files (for the latest file: Inside the model says it for each)."""
    shown, more = traces[:10], len(traces) - 10
    line = (f"{len(traces)} trace(s): " + ", ".join(f"{md_escape(t.id)} ({t.n_steps} steps)" for t in shown)
            + (f", and {more} more" if more > 0 else ""))
    if latest:
        st.success(f"Read {line}")
    else:
        st.markdown(f"{md_code(name)}: {line}")
    for t in shown if notes else ():
        if note := data.upload_activation_note(t, name):
            st.warning(note)
    for t in shown:
        st.button(f"Open {md_escape(t.id)} in the timeline", key=f"open_up_{t.id}", on_click=open_trace,
                  args=(t.id, "Timeline", "upload"))
    if more > 0:  # past ten buttons: every trace of the file from one list
        open_picker(f"Open any of the {len(traces)} traces", [t.id for t in traces], picker_key, "upload")
