"""Helpers every inspector page uses: say why there is no trace, get a verdict (or show its error), open a trace."""

from __future__ import annotations

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
    else:
        st.info("Pick a trace on the Traces page.")
    return False


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


def open_trace(trace_id: str, page: str = "Timeline") -> None:
    """Button callback: make ``trace_id`` current and go to ``page`` (runs before the next script run)."""
    st.session_state["trace_id"] = trace_id
    st.session_state["page"] = page
