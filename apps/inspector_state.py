"""Cached access to the store and the analyses, and the page context (which store, trace and method).

Queries are cached with ``st.cache_data`` keyed by the store path and its file stamp (mtime, size),
so a page re-render costs nothing and an ``attrib ingest`` while the app is open shows up on the next
interaction. Analyses are cached per (trace content hash, method). Uploaded traces live in the session; an id that
is both uploaded and stored shows one copy at a time, and the page says which (:func:`load_trace`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import inspector_data as data
import streamlit as st

from attrib.trace import Attribution, Trace

UPLOADS = "uploads"  # session_state key: {trace id: Trace} read from files uploaded in this session
UPLOAD_NAMES = "upload_names"  # session_state key: {trace id: the uploaded file's name}
#: session_state key: {file name: the trace ids read from it}, the files uploaded in this session, the latest last.
#: The Upload page lists them from here: its file box forgets its file whenever another page is shown.
UPLOAD_FILES = "upload_files"
#: session_state key: {trace id: 'store' or 'upload'}, which copy to show of an id that is both uploaded in this session
#: and in the store (the last one opened: the Traces and Evaluation pages open the store's, the Upload page the
#: uploaded one, the sidebar switches); an id with no choice shows the uploaded copy
COPY = "shown_copy"


@st.cache_data(show_spinner=False, max_entries=256)
def cached_page(path: str, stamp: tuple[int, int], filters: dict[str, Any], page: int, page_size: int
                ) -> tuple[list[dict[str, Any]], int]:
    with data.open_ro(path) as s:
        return data.query_page(s, data.ListFilter(**filters), page, page_size)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_facets(path: str, stamp: tuple[int, int]) -> dict[str, list[str]]:
    with data.open_ro(path) as s:
        return data.facets(s)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_trace_json(path: str, stamp: tuple[int, int], trace_id: str) -> bytes:
    with data.open_ro(path) as s:
        return s.get_trace(trace_id).to_json()


@st.cache_data(show_spinner=False, max_entries=64)
def cached_stored_attributions(path: str, stamp: tuple[int, int], trace_id: str) -> list[bytes]:
    with data.open_ro(path) as s:
        return [a.to_json() for a in s.get_attributions(trace_id)]


@st.cache_data(show_spinner=False, max_entries=16)
def cached_default_id(path: str, stamp: tuple[int, int]) -> str | None:
    """The trace to open when neither the URL nor the session names one: the one the user touched last, the latest
    ingested or analyzed (by `attrib analyze --save`, a batch), so after `attrib ingest run.json` or an analysis the
    app opens on that run. The first id in sorted order, as before, is an arbitrary one in a store of many runs (the
    same one whatever was added since). None for an empty store."""
    with data.open_ro(path) as s:
        return s.touched_last()


@st.cache_data(show_spinner=False, max_entries=64)
def cached_stored_ids(path: str, stamp: tuple[int, int], trace_ids: tuple[str, ...]) -> frozenset[str]:
    with data.open_ro(path) as s:
        return frozenset(s.stored_ids(trace_ids))


@st.cache_data(show_spinner=False, max_entries=512)
def _cached_analysis(content_hash: str, method: str, _trace_json: bytes) -> bytes:
    return data.analyze(Trace.from_json(_trace_json), method).to_json()


@st.cache_data(show_spinner=False, max_entries=128)
def cached_flow(content_hash: str, _trace_json: bytes) -> tuple[list[tuple[int, int, float, str]], int | None, str]:
    return data.flow_edges(Trace.from_json(_trace_json))


@dataclass
class Ctx:
    """What every page is rendered with."""

    store_path: Path
    store_error: str | None  # why the store cannot be read (None when it can)
    method: str  # the chosen attribution method ('' while none is registered)
    methods: list[str]
    trace_id: str | None
    trace: Trace | None = None
    trace_error: str | None = None
    stored: list[Attribution] = field(default_factory=list)
    upload_name: str | None = None  # the file the trace was uploaded from (None: from the store)
    stored_too: bool = False  # an uploaded trace whose id the store holds too (the sidebar offers the stored copy)
    uploaded_too: str | None = None  # a stored trace also uploaded in this session: the file (the sidebar offers it)
    #: the store's verdicts on its copy of an uploaded trace's id (``stored_too``): the uploaded copy is analysed
    #: now, and the pages say when that used another ranker than the stored verdict
    stored_copy: list[Attribution] = field(default_factory=list)

    @property
    def stamp(self) -> tuple[int, int]:
        return data.store_stamp(self.store_path)

    @property
    def has_store(self) -> bool:
        return self.store_error is None

    def attribution(self, method: str | None = None) -> Attribution:
        """The verdict of ``method`` (default: the chosen one) on the current trace: stored, else computed."""
        assert self.trace is not None
        m = method or self.method
        if (a := data.stored_of(self.stored, m)) is not None:
            return a
        return Attribution.from_json(_cached_analysis(self.trace.content_hash(), m, self.trace.to_json()))

    def is_stored(self, a: Attribution) -> bool:
        """Whether ``a`` (from :meth:`attribution`) is a verdict read from the store, not one analysed now."""
        return any(a is s for s in self.stored)

    def stored_verdict(self, method: str) -> Attribution | None:
        """The store's ``method`` verdict on this trace id: the open trace's own, or, for an uploaded copy, its
        stored copy's (None when the store holds none)."""
        return data.stored_of(self.stored or self.stored_copy, method)


def store_is_empty(ctx: Ctx) -> bool:
    """True when the store can be read and holds no trace (False when it cannot be read now: that error shows)."""
    if not ctx.has_store:
        return False
    try:
        return cached_default_id(str(ctx.store_path), ctx.stamp) is None
    except Exception:  # changed and unreadable since store_error looked (e.g. locked): not "empty"
        return False


def store_error(path: Path) -> str | None:
    """None when the store at ``path`` can be opened read-only, else the one-line reason."""
    ingest = data.md_code(f"attrib ingest PATH --store {path}")
    if not path.exists():
        return f"{data.md_escape(path)}: no store here (run {ingest} first, or upload a trace)"
    if empty_file(path):  # `attrib ingest` makes such a file (from mktemp, say) a new store: it is not a broken one
        return (f"{data.md_escape(path)}: the file is empty (0 bytes), not a store yet: {ingest} makes it one "
                "(or upload a trace)")
    try:
        cached_default_id(str(path), data.store_stamp(path))  # one read-only query, cached with the store's stamp
    except Exception as e:  # an unreadable store is shown, not raised
        return data.error_md(e)
    return None


def empty_file(path: Path) -> bool:
    """True for a file of 0 bytes (from ``mktemp``, say), which ``attrib ingest`` turns into a new store."""
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def stored_ids(ctx: Ctx, trace_ids: list[str]) -> frozenset[str]:
    """Which of ``trace_ids`` the store holds (none when it cannot be read now: :func:`held_ids` says why)."""
    return held_ids(ctx, trace_ids)[0]


def held_ids(ctx: Ctx, trace_ids: list[str]) -> tuple[frozenset[str], str | None]:
    """Which of ``trace_ids`` the store holds, and None; or, when the store cannot be read now (it changed since
    :func:`store_error` looked: ``attrib ingest`` holds its lock, say), no ids and the one-line reason, the same
    line the trace pages show, so a page does not take "cannot read" for "not in the store"."""
    if not ctx.has_store or not trace_ids:
        return frozenset(), None
    try:
        return cached_stored_ids(str(ctx.store_path), ctx.stamp, tuple(dict.fromkeys(trace_ids))), None
    except Exception as e:  # an unreadable store is shown, not raised
        return frozenset(), data.error_md(e)


def choose_copy(trace_id: str, copy: str) -> None:
    """Show the ``copy`` ('store' or 'upload') of ``trace_id`` from now on (a callback: runs before the next run)."""
    st.session_state.setdefault(COPY, {})[trace_id] = copy


def keep_upload(traces: list[Trace], name: str) -> None:
    """Keep the traces read from the uploaded file ``name`` for the rest of the session (a trace id uploaded before
    now comes from this file), and make it the latest upload."""
    uploads: dict[str, Trace] = st.session_state.setdefault(UPLOADS, {})
    names: dict[str, str] = st.session_state.setdefault(UPLOAD_NAMES, {})
    files: dict[str, list[str]] = st.session_state.setdefault(UPLOAD_FILES, {})
    for t in traces:
        uploads[t.id] = t
        names[t.id] = name
    files.pop(name, None)
    files[name] = list(dict.fromkeys(t.id for t in traces))


def forget_uploads() -> None:
    """Drop every trace uploaded in this session (a button's callback: runs before the next run), so the pages
    show the store's runs only again."""
    for key in (UPLOADS, UPLOAD_NAMES, UPLOAD_FILES, COPY):
        st.session_state.pop(key, None)


def uploaded_files() -> list[tuple[str, list[Trace]]]:
    """The files uploaded in this session, the latest first, each with its traces (those a later file with the same
    trace ids replaced are left out; a file left with none is too)."""
    uploads: dict[str, Trace] = st.session_state.get(UPLOADS, {})
    names: dict[str, str] = st.session_state.get(UPLOAD_NAMES, {})
    out = []
    for name, ids in reversed(st.session_state.get(UPLOAD_FILES, {}).items()):
        traces = [uploads[i] for i in ids if i in uploads and names.get(i) == name]
        if traces:
            out.append((name, traces))
    return out


def load_trace(ctx: Ctx) -> None:
    """Fill ``ctx.trace`` (from this session's uploads or the store) and the store's verdicts on it.

    An id both uploaded and stored shows the copy last opened (:data:`COPY`; the uploaded one by default), and
    ``ctx`` says that the other copy exists, so one never hides the other for the rest of the session."""
    tid = ctx.trace_id
    if not tid:
        return
    uploads: dict[str, Trace] = st.session_state.get(UPLOADS, {})
    if tid in uploads:
        name = st.session_state.get(UPLOAD_NAMES, {}).get(tid, tid)
        in_store = tid in stored_ids(ctx, [tid])
        if not in_store or st.session_state.get(COPY, {}).get(tid) != "store":
            ctx.trace, ctx.upload_name, ctx.stored_too = uploads[tid], name, in_store
            if in_store:
                try:
                    ctx.stored_copy = [Attribution.from_json(b)
                                       for b in cached_stored_attributions(str(ctx.store_path), ctx.stamp, tid)]
                except Exception:  # the stored copy cannot be read now: nothing to compare the upload's verdict with
                    ctx.stored_copy = []
            return
        ctx.uploaded_too = name
    if not ctx.has_store:
        if ctx.store_path.exists():  # a store that cannot be read now (locked, not a store): that is the reason
            ctx.trace_error = f"cannot read trace {data.md_escape(repr(tid))}: {ctx.store_error}"
        else:
            ctx.trace_error = f"trace {data.md_escape(repr(tid))} is not in this session's uploads and there is no store"
        return
    try:
        ctx.trace = Trace.from_json(cached_trace_json(str(ctx.store_path), ctx.stamp, tid))
        ctx.stored = [Attribution.from_json(b)
                      for b in cached_stored_attributions(str(ctx.store_path), ctx.stamp, tid)]
    except Exception as e:
        ctx.trace_error = data.error_md(e)
