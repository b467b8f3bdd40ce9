"""Helpers every inspector page uses: say why there is no trace, get a verdict (or show its error), open a trace.

Text the app did not write (from a trace, a verdict, a file) goes into Markdown through
:func:`inspector_data.md_escape`, or :func:`inspector_data.md_code` inside a code span, so it shows as written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import inspector_data as data
import inspector_state as state
import streamlit as st
from inspector_data import md_code, md_escape

from attrib.render import rankers_differ
from attrib.trace import Attribution


def need_trace(ctx: state.Ctx) -> bool:
    """True when a trace is loaded; otherwise say why on the page."""
    if ctx.trace is not None:
        return True
    if ctx.trace_error:
        st.error(ctx.trace_error)
    elif not ctx.has_store:
        st.info("No trace to show: open a store (`attrib app --store PATH`) or upload a trace on the Upload page.")
    elif state.store_is_empty(ctx):
        st.info(empty_store_line(ctx))
    else:
        st.info("Pick a trace on the Traces page.")
    return False


def empty_store_line(ctx: state.Ctx) -> str:
    """What to do when the store holds no trace yet (the Traces page would have nothing to pick from)."""
    path = ctx.store_path
    return (f"The store {md_code(path)} is empty: run {md_code(f'attrib ingest PATH --store {path}')} to add traces "
            "(or upload one on the Upload page).")


def verdict(ctx: state.Ctx, method: str | None = None, source: bool = True) -> Attribution | None:
    """The chosen (or given) method's verdict on the current trace; shows the error line when it fails. Says where
    the verdict comes from and which ranker made it (``source``; a page that has its own caption for the verdict
    puts :func:`verdict_source` in it instead), and warns when it was analysed now with another ranker than the
    store's verdict on this trace id (:func:`ranker_warning`)."""
    m = method or ctx.method
    if not m:
        st.info("No attribution method is registered yet, so there is no verdict to show.")
        return None
    try:
        with st.spinner(f"running {m} on this trace…"):
            a = ctx.attribution(m)
    except Exception as e:
        st.error(f"{m}: {data.error_md(e)}")
        return None
    if source:
        st.caption(f"method {md_code(a.method)} · {verdict_source(ctx, a)}")
    if warning := ranker_warning(ctx, a):
        st.warning(warning)
    return a


def verdict_source(ctx: state.Ctx, a: Attribution) -> str:
    """Where a shown verdict comes from, "stored verdict" or "analysed now", and the ranker that made it where the
    method has one ("shipped" or the ranker file's name): a store can hold verdicts of a ranker other than the one
    the app analyses with (``attrib analyze --all --model my_ranker.json``)."""
    where = "stored verdict" if ctx.is_stored(a) else "analysed now"
    ranker = data.verdict_ranker(a)
    return where + (f" · ranker {md_code(ranker)}" if ranker else "")


def ranker_warning(ctx: state.Ctx, a: Attribution) -> str | None:
    """A warning when ``a`` was analysed now (an uploaded copy of a stored id, say) with another ranker than the
    store's verdict of the same method on this trace id, whose step and agent can then differ; else None."""
    if ctx.is_stored(a):
        return None
    stored = ctx.stored_verdict(a.method)
    if stored is None:
        return None
    if (differ := rankers_differ(a, stored)) is None:
        return None
    short_now, short_then = differ
    copy = "its stored copy of " if ctx.upload_name is not None else ""
    return (f"This verdict was analysed now with ranker {md_code(short_now)}; the store's {md_code(stored.method)} "
            f"verdict on {copy}this trace came from ranker {md_code(short_then)} (step {stored.step}, "
            f"{md_escape(stored.agent)}), so the two can differ.")


def open_trace(trace_id: str, page: str = "Timeline", copy: str | None = None) -> None:
    """Button callback: make ``trace_id`` current and go to ``page`` (runs before the next script run); ``copy``
    ('store' or 'upload') picks which copy shows when this session uploaded a trace with an id the store holds too."""
    st.session_state["trace_id"] = trace_id
    st.session_state["page"] = page
    if copy is not None:
        state.choose_copy(trace_id, copy)


def open_picker(label: str, trace_ids: list[str], key: str, copy: str) -> None:
    """A box to pick one of ``trace_ids`` (widget ``key``) and a button (``key``_btn) that opens it in the timeline,
    showing its ``copy`` ('store' or 'upload', see :func:`open_trace`)."""
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")  # the button level with the box, not its label
    chosen = c1.selectbox(label, trace_ids, key=key)
    c2.button("Open timeline", on_click=open_trace, args=(chosen, "Timeline", copy), type="primary", key=f"{key}_btn")


def copy_note(ctx: state.Ctx) -> str | None:
    """Where the open trace comes from when that is not simply the store: an upload (and whether the store holds a
    trace with the same id), or the store while this session uploaded one with that id too; None otherwise."""
    tid = md_code(ctx.trace_id)
    if ctx.upload_name is not None:
        return f"Showing the **uploaded copy** of {tid} (from {md_code(ctx.upload_name)})" + (
            "; the store holds a trace with this id too, with its stored verdicts." if ctx.stored_too else ".")
    if ctx.uploaded_too is not None:  # said even when the stored copy cannot be read now (its error shows)
        shown = "Showing the **stored copy**" if ctx.trace is not None else "The **stored copy** cannot be read now"
        return f"{shown} of {tid}; this session also uploaded a trace with this id (from {md_code(ctx.uploaded_too)})."
    return None


def copy_switch(ctx: state.Ctx) -> None:
    """Which copy of the open trace shows (:func:`copy_note`) and, for an id both uploaded in this session and in the
    store, a button to the other (drawn once per run, in the sidebar, so every page says it once)."""
    if note := copy_note(ctx):
        st.info(note)
    if ctx.stored_too:
        st.button("Show the stored copy", key="copy_store", on_click=state.choose_copy, args=(ctx.trace_id, "store"))
    elif ctx.uploaded_too is not None:
        st.button("Show the uploaded copy", key="copy_upload", on_click=state.choose_copy,
                  args=(ctx.trace_id, "upload"))


#: session_state key: {widget key: the value it last had}. Streamlit keeps a widget's value only while the widget is
#: drawn, so a page's filters, page number or step box would fall back to their defaults (or be missing, for code
#: that reads them) after a visit to another page; :func:`kept` gives them back from here.
KEPT = "_kept_widgets"


def kept(key: str, draw: Callable[[], Any], allowed: Callable[[Any], bool] = lambda v: True,
         default: Any = None) -> Any:
    """Draw the widget ``key`` (``draw()``, which returns its value) keeping its value across pages: if Streamlit
    dropped it while its page was not shown, the value it last had is put back first (when ``allowed`` still accepts
    it), else ``default`` when one is given. Returns the widget's value."""
    if key not in st.session_state:
        last = st.session_state.get(KEPT, {})
        if key in last and allowed(last[key]):
            st.session_state[key] = last[key]
        elif default is not None:
            st.session_state[key] = default
    value = draw()
    st.session_state.setdefault(KEPT, {})[key] = value
    return value
