"""attrib inspector: a failed multi-agent run, its blame, its information flow and its heads in one place.

Run ``attrib app --store PATH`` or ``streamlit run apps/inspector.py -- --store PATH``. The sidebar
picks the page, the trace and the attribution method; the URL carries the page and, where the page uses them, the
trace and method (``?page=Timeline&trace=ID&method=M``) so a view can be shared. The app reads the store read-only
and calls the same library functions as the CLI (readers, methods, renderers); it never imports ``attrib.cli``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # `streamlit run` adds it; AppTest and `python -m` may not
    sys.path.insert(0, _HERE)

import inspector_data as data  # noqa: E402
import inspector_pages as pages  # noqa: E402
import inspector_state as state  # noqa: E402
import streamlit as st  # noqa: E402
from inspector_common import copy_switch  # noqa: E402
from inspector_data import md_code  # noqa: E402


def _init_from_query() -> None:
    """On a session's first run, take page and trace from the URL."""
    if st.session_state.get("_init"):
        return
    st.session_state["_init"] = True
    qp = st.query_params
    if qp.get("page") in pages.PAGES:
        st.session_state["page"] = qp["page"]
    if qp.get("trace"):
        st.session_state["trace_id"] = qp["trace"]
    if qp.get("method"):
        st.session_state["method"] = qp["method"]


def main() -> None:
    st.set_page_config(page_title="attrib inspector", page_icon="🔎", layout="wide")
    _init_from_query()
    store_path = data.resolve_store_path(sys.argv[1:])
    err = state.store_error(store_path)
    names, default = data.methods()

    with st.sidebar:
        st.title("attrib inspector")
        page = st.radio("Page", list(pages.PAGES), key="page")
        if err is None:
            st.caption(f"store: {md_code(store_path)}")
        else:
            st.warning(err)
        if not st.session_state.get("trace_id") and err is None:  # a trace from the URL or the session wins
            latest = state.cached_default_id(str(store_path), data.store_stamp(store_path))
            if latest:
                st.session_state["trace_id"] = latest
        st.text_input("Trace id", key="trace_id", help="Pick one on the Traces page, or type an id.")
        copy_slot = st.container()  # filled once the trace is loaded: which copy of an uploaded + stored id shows
        if names:
            if st.session_state.get("method") not in names:
                st.session_state["method"] = default
            method = st.selectbox("Method", names, key="method", help="Stored verdicts are used when present.")
        else:
            method = ""
            st.info("No attribution method is registered yet (attrib.methods.METHODS is empty).")
        if st.button("Reload store", help="Clear cached queries (they also refresh when the store file changes)."):
            st.cache_data.clear()

    # an id pasted with a space or a newline around it (from a table, a log) is the same id
    ctx = state.Ctx(store_path=store_path, store_error=err, method=method, methods=names,
                    trace_id=(st.session_state.get("trace_id") or "").strip() or None)
    state.load_trace(ctx)
    with copy_slot:
        copy_switch(ctx)
    params = pages.url_params(page, ctx.trace_id, method)
    if st.query_params.to_dict() != params:  # the current view only: a trace or method it does not use is dropped
        st.query_params.from_dict(params)
    pages.PAGES[page].render(ctx)


main()
