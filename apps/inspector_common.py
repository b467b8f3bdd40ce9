"""Helpers every inspector page uses: say why there is no trace, get a verdict (or show its error), open a trace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import inspector_data as data
import inspector_state as state
import streamlit as st

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
    return (f"The store `{ctx.store_path}` is empty: run `attrib ingest PATH --store {ctx.store_path}` to add "
            "traces (or upload one on the Upload page).")


def verdict(ctx: state.Ctx, method: str | None = None) -> Attribution | None:
    """The chosen (or given) method's verdict on the current trace; shows the error line when it fails."""
    m = method or ctx.method
    if not m:
        st.info("No attribution method is registered yet, so there is no verdict to show.")
        return None
    try:
        with st.spinner(f"running {m} on this trace…"):
            return ctx.attribution(m)
    except Exception as e:
        st.error(f"{m}: {data.error_line(e)}")
        return None


def open_trace(trace_id: str, page: str = "Timeline", copy: str | None = None) -> None:
    """Button callback: make ``trace_id`` current and go to ``page`` (runs before the next script run); ``copy``
    ('store' or 'upload') picks which copy shows when this session uploaded a trace with an id the store holds too."""
    st.session_state["trace_id"] = trace_id
    st.session_state["page"] = page
    if copy is not None:
        state.choose_copy(trace_id, copy)


def copy_switch(ctx: state.Ctx) -> None:
    """When the open id is both uploaded in this session and in the store: which copy shows, and a button to the other
    (drawn once per run, in the sidebar)."""
    tid = ctx.trace_id
    if tid is None:
        return
    if ctx.stored_too:
        st.info(f"Showing the **uploaded copy** of `{tid}` (from `{ctx.upload_name}`); the store holds a trace with "
                "this id too, with its stored verdicts.")
        st.button("Show the stored copy", key="copy_store", on_click=state.choose_copy, args=(tid, "store"))
    elif ctx.uploaded_too is not None:  # offered even when the stored copy cannot be read now (its error shows)
        shown = "Showing the **stored copy**" if ctx.trace is not None else "The **stored copy** cannot be read now"
        st.info(f"{shown} of `{tid}`; this session also uploaded a trace with this id (from `{ctx.uploaded_too}`).")
        st.button("Show the uploaded copy", key="copy_upload", on_click=state.choose_copy, args=(tid, "upload"))


#: session_state key: {widget key: the value it last had}. Streamlit keeps a widget's value only while the widget is
#: drawn, so a page's filters, page number or step box would fall back to their defaults (or be missing, for code
#: that reads them) after a visit to another page; :func:`restore` gives them back from here.
KEPT = "_kept_widgets"


def restore(key: str, allowed: Callable[[Any], bool] = lambda v: True, default: Any = None) -> None:
    """Before drawing the widget ``key``: if Streamlit dropped its value while its page was not shown, put back the
    value :func:`keep` saw last (when ``allowed`` still accepts it), else ``default`` when one is given."""
    if key in st.session_state:
        return
    kept = st.session_state.get(KEPT, {})
    if key in kept and allowed(kept[key]):
        st.session_state[key] = kept[key]
    elif default is not None:
        st.session_state[key] = default


def keep(key: str, value: Any) -> Any:
    """After drawing the widget ``key``: remember its value for :func:`restore`; returns ``value``."""
    st.session_state.setdefault(KEPT, {})[key] = value
    return value
