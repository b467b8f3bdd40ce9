"""The page registry and the trace list page.

``PAGES`` maps each sidebar label (what ``?page=`` accepts) to its :class:`Page`: ``render(ctx)`` and the other URL
parameters (``trace``, ``method``) it depends on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import inspector_data as data
import inspector_extra as extra
import inspector_model as model
import inspector_state as state
import inspector_views as views
import streamlit as st
from inspector_common import empty_store_line, kept, open_picker
from inspector_data import md_code, md_escape


def trace_list(ctx: state.Ctx) -> None:
    """Filterable, paged list of the store's traces with the chosen method's stored verdict and the annotation."""
    st.header("Traces")
    if not ctx.has_store:  # the sidebar already says why; here, what to do instead
        st.info("No store to list (the sidebar says why): upload a trace on the Upload page, or start the app with "
                "`attrib app --store PATH`.")
        return
    if state.store_is_empty(ctx):  # nothing to filter or page through: say how to fill it
        st.info(empty_store_line(ctx))
        return
    path, stamp = str(ctx.store_path), ctx.stamp
    fac = state.cached_facets(path, stamp)
    c = st.columns(6)
    any_ = "(any)"

    def pick(col: st.delta_generator.DeltaGenerator, label: str, options: list[str], key: str,
             disabled_why: str | None = None) -> str | None:
        # the filters survive opening a trace and coming back
        v = kept(key, lambda: col.selectbox(label, [any_] + options, key=key, disabled=disabled_why is not None,
                                            help=disabled_why), lambda v: v in options)
        return None if v == any_ or disabled_why is not None else v

    source = pick(c[0], "Source", fac["source"], "f_source")
    outcome = pick(c[1], "Outcome", fac["outcome"], "f_outcome")
    agent = pick(c[2], "Agent speaks", fac["agent"], "f_agent")
    verdict_m = ctx.method if ctx.method in fac["method"] else (fac["method"][0] if fac["method"] else None)
    # without stored verdicts these two filters could only empty the list (or repeat it: every trace is
    # "not analyzed"), so they wait, saying why, until `attrib analyze --store` has stored some
    no_verdicts = None if verdict_m else ("No verdict is stored in this store yet: run "
                                          f"{md_code(f'attrib analyze --all --store {ctx.store_path}')} first.")
    v_agent = pick(c[3], f"Verdict agent ({md_escape(verdict_m) if verdict_m else 'no stored verdicts'})",
                   fac["agent"], "f_verdict", no_verdicts)
    t_agent = pick(c[4], "Annotated agent", fac["truth_agent"], "f_truth")
    agreement = pick(c[5], "Verdict vs annotation", ["agrees", "disagrees", "not analyzed"], "f_agree", no_verdicts)
    filters = data.ListFilter(source=source, outcome=outcome, agent=agent, method=verdict_m, verdict_agent=v_agent,
                              truth_agent=t_agent, agreement=agreement)
    fdict = {k: getattr(filters, k) for k in filters.__struct_fields__}
    key = repr(sorted(fdict.items()))
    if st.session_state.get("_list_key") != key:  # new filters: back to page 1
        st.session_state["_list_key"] = key
        st.session_state["list_page"] = 1
    _, total = state.cached_page(path, stamp, fdict, 0, 1)
    n_pages = max(1, -(-total // data.PAGE_SIZE))
    a, b = st.columns([1, 4])
    page_no = kept("list_page", lambda: a.number_input("Page", min_value=1, max_value=n_pages, step=1,
                                                       key="list_page"), lambda v: 1 <= v <= n_pages)
    rows, _ = state.cached_page(path, stamp, fdict, int(page_no) - 1, data.PAGE_SIZE)
    # whose verdicts these are: a store keeps one per trace and method, of whichever ranker made it (the page
    # query reads each row's), by its short name
    rankers = {r["trace_id"]: data.ranker_name(r["ranker"]) for r in rows if r.get("ranker")}
    b.markdown(f"**{total}** traces match · page {page_no} of {n_pages} · {data.PAGE_SIZE} per page"
               + (f" · verdicts from stored {md_code(verdict_m)} runs{ranker_words(rankers)}" if verdict_m else
                  " · no stored verdicts (run `attrib analyze --store` or the batch engine to fill them)"))
    if not rows:
        st.info("No trace matches these filters.")
        return
    # the ranker column beside the confidence, when some verdict names one
    rows = [{k: (rankers.get(r["trace_id"]) if k == "ranker" else v) for k, v in r.items()
             if k != "ranker" or rankers} for r in rows]
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"confidence": st.column_config.NumberColumn(format="%.2f")})
    open_picker("Open trace", [r["trace_id"] for r in rows], "list_open", "store")


def ranker_words(rankers: dict[str, str]) -> str:
    """`` (ranker `my_ranker.json`)`` naming the ranker(s) of the verdicts on the page, '' when none names one."""
    names = sorted(set(rankers.values()))
    if not names:
        return ""
    if len(names) == 1:
        return f" (ranker {md_code(names[0])})"
    return " (rankers on this page: " + ", ".join(md_code(n) for n in names) + ")"


class Page(NamedTuple):
    """A page: ``render(ctx)`` draws it; ``params`` are the URL parameters besides ``page`` it depends on, the open
    trace and/or the chosen method (the Traces page's verdict column and filters follow the method; Inside the model
    shows the trace's steps, no verdict)."""

    render: Callable[[state.Ctx], None]
    params: tuple[str, ...]


#: The sidebar label of each page (what ``?page=`` accepts) and the page.
PAGES: dict[str, Page] = {
    "Traces": Page(trace_list, ("method",)),
    "Timeline": Page(views.timeline, ("trace", "method")),
    "Blame": Page(views.blame, ("trace", "method")),
    "Flow graph": Page(views.flow_graph, ("trace", "method")),
    "Inside the model": Page(model.inside_model, ("trace",)),
    "Compare methods": Page(extra.compare, ("trace", "method")),
    "Evaluation": Page(extra.evaluation, ()),
    "Export": Page(extra.export, ("trace", "method")),
    "Upload": Page(extra.upload, ()),
}


def url_params(page: str, trace_id: str | None, method: str | None) -> dict[str, str]:
    """What the URL should hold for this view: the page, and the trace and method only where the page uses them and
    they are set, so a shared link never carries a stale one."""
    uses = PAGES[page].params if page in PAGES else ()
    out = {"page": page}
    if trace_id and "trace" in uses:
        out["trace"] = trace_id
    if method and "method" in uses:
        out["method"] = method
    return out
