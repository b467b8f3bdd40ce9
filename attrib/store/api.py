"""``ingest``: read files, folders and globs into the store, one transaction per file.

The library twin of ``attrib ingest``. A file that fails (unreadable, bad activation shapes, ...)
is reported with one line and leaves nothing in the store; the other files still go in. When every file fails, a
store file this call created is removed again. A run whose id the store already holds from another file, with other
content, is refused (its file fails) unless ``replace=True``; a store that cannot be written stops the ingest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrib.errors import AttribError, InputError
from attrib.readers import (
    MAX_BYTES,
    check_ids,
    expand_paths,
    file_error,
    otlp_trace_ids,
    read_path,
    read_sources,
    read_stdin,
    reader_named,
    utf8_text,
)
from attrib.store import Store, StoreWriteError, is_interrupt, matches_stored, open_store
from attrib.trace import Trace


@dataclass(frozen=True)
class Replaced:
    """A stored run that an ingest replaced with other content under its id, dropping its verdicts."""

    trace_id: str
    #: the file the replaced run had been read from (absolute; ``-`` for standard input; None if not known)
    earlier: str | None
    #: how many verdicts were stored on it (all dropped: they were made on the content replaced)
    verdicts: int
    #: read from another file than the one that replaced it (only with ``replace=True``); else the same file, edited
    other_file: bool


@dataclass
class FileResult:
    """What happened to one input file."""

    path: str
    ok: bool
    traces: int = 0
    steps: int = 0
    new: int = 0  # stored anew or replaced (``replaced`` says how many of these replaced a stored run)
    unchanged: int = 0
    error: str | None = None
    formats: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = ()
    #: the stored runs this file's runs replaced (changed content under their ids), with what was lost
    replaced_runs: tuple[Replaced, ...] = ()
    #: the error itself (``error`` is its line): the CLI prints it as it prints any, naming ``format`` as its flag
    exception: AttribError | None = field(default=None, repr=False, compare=False)


@dataclass
class IngestReport:
    """Per-file results and totals of one :func:`ingest` call."""

    files: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every file was read and stored."""
        return all(f.ok for f in self.files)

    @property
    def failed(self) -> list[FileResult]:
        """The files that could not be read or stored (each with its error); nothing of them is in the store."""
        return [f for f in self.files if not f.ok]

    @property
    def n_traces(self) -> int:
        """Traces read from all files."""
        return sum(f.traces for f in self.files)

    @property
    def n_steps(self) -> int:
        """Steps in those traces."""
        return sum(f.steps for f in self.files)

    @property
    def n_new(self) -> int:
        """Traces stored anew or replaced because their content changed."""
        return sum(f.new for f in self.files)

    @property
    def replaced(self) -> list[Replaced]:
        """The stored runs replaced by other content under their ids (their verdicts dropped), over all files."""
        return [r for f in self.files for r in f.replaced_runs]

    @property
    def n_unchanged(self) -> int:
        """Traces already stored with the same content (left as they were)."""
        return sum(f.unchanged for f in self.files)

    def summary(self) -> dict[str, Any]:
        """The counts as a dict (files, failed, traces, steps, new_or_changed, unchanged), for JSON output."""
        return {"files": len(self.files), "failed": len(self.failed), "traces": self.n_traces, "steps": self.n_steps,
                "new_or_changed": self.n_new, "unchanged": self.n_unchanged}


def _split_groups(files: list[Path], format: str | None, max_bytes: int) -> dict[Path, list[Path]]:
    """The files of one ingest that hold parts of one OTLP trace (a collector's file exporter rotating mid-trace,
    children flushed first), each mapped to its whole group in ingest order; files alone are left out. Found by
    the trace ids each OTLP file holds (:func:`attrib.readers.otlp_trace_ids`), before anything is stored, so a
    part is never stored as a whole run: re-ingesting the same files is a no-op, verdicts kept."""
    real = [f for f in files if str(f) != "-"]
    if len(real) < 2:
        return {}
    owner: dict[str, int] = {}  # trace id -> the group (index of its first file) holding it
    parent = list(range(len(real)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, f in enumerate(real):
        for tid in otlp_trace_ids(f, format, max_bytes):
            j = owner.setdefault(tid, i)
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[Path]] = {}
    for i, f in enumerate(real):
        groups.setdefault(root(i), []).append(f)
    return {f: g for g in groups.values() if len(g) > 1 for f in g}


def _with_stored_parts(store: Store, got: list[tuple[Trace, str]], format: str | None,
                       max_bytes: int) -> tuple[list[tuple[Trace, str]], set[str]]:
    """An OTLP trace the store already holds from another file, which is still there, where either part is partial
    (spans whose parents are elsewhere): the two files read together, so a later file of a rotated export completes
    the run instead of replacing its other part (``attrib ingest a.jsonl`` then ``attrib ingest b.jsonl``). Returns
    the traces so joined, and the ids of such runs, the parts of one run (read together or not): their stored part
    is theirs to replace, though it came from another file."""
    out: list[tuple[Trace, str]] = []
    joined: set[str] = set()
    for t, src in got:
        stored = store.stored_otlp_part(t.id) if t.source_format == "otlp" else None
        if stored is None:
            out.append((t, src))
            continue
        stored_partial, earlier = stored
        if t.metadata.get("partial") or stored_partial:
            joined.add(t.id)
        if (t.id not in joined or not earlier or earlier == "-"
                or not Path(earlier).is_file() or Path(earlier).resolve() == Path(src).resolve()):
            out.append((t, src))
            continue
        try:
            parts = [(j, str(f)) for j, f in read_sources([earlier, src], format, max_bytes, seen={}) if j.id == t.id]
        except AttribError:  # copies of the same spans, or the earlier file changed: this part as read
            parts = []
        out.extend(parts or [(t, src)])
    return out, joined


#: A stored trace as :func:`_store` reports it: (id, file, steps, format, new or changed, the run it replaced).
_Row = tuple[str, str, int, str, bool, Replaced | None]


def _same_file(stored: str | None, src: str) -> bool:
    """Whether a stored run's file (``stored``, absolute as the store keeps it) is ``src``, the file being read:
    one path, or one file under two names (a link); standard input is one source."""
    if stored is None:  # stored by a library call that named no file: not known to be this one
        return False
    if stored == src == "-" or stored == os.path.abspath(utf8_text(src)):
        return True
    try:
        return os.path.samefile(stored, src)
    except (OSError, ValueError):  # gone, or not a path
        return False


def _refuse_other_run(t: Trace, src: str, earlier: str | None) -> InputError:
    """The error for a run whose id the store holds from another file, with other content (``replace`` not given):
    replacing it would drop that run and its verdicts without a word."""
    where = f"from {utf8_text(earlier)}" if earlier else "from an unknown source (a library call)"
    if earlier and earlier != "-" and "://" not in earlier and not os.path.exists(earlier):
        where += " (no longer there)"
    return InputError(src, "id", f"trace id {t.id!r} is already stored {where}, with other content; the store keeps "
                      "one trace per id: rename this file or give the run its own id, or pass --replace "
                      "(replace=True) to replace that run and drop its verdicts")


def _store(store: Store, got: list[tuple[Trace, str]], check_activations: bool, model_config: Any,
           format: str | None, max_bytes: int, replace: bool = False, group: Sequence[str] = ()) -> list[_Row]:
    """Upsert ``got`` (each trace with its file) in one transaction, their activation files checked first; per
    trace (id, file, steps, format, new or changed, the stored run it replaced). A run whose id the store holds from
    another file (not one of ``group``, the files read together) with other content is refused unless ``replace``:
    an :class:`InputError` naming this file, the id and the other file, before anything is written."""
    got, joined = _with_stored_parts(store, got, format, max_bytes)
    stored = store.stored_sources(t.id for t, _ in got)
    ours = {os.path.abspath(utf8_text(f)) for f in group}
    other: set[str] = set()  # ids stored from another file, replaced by leave of replace=True
    for t, src in got:
        if t.id not in stored or t.id in joined:
            continue
        earlier, digest, _ = stored[t.id]
        if _same_file(earlier, src) or earlier in ours or matches_stored(t, utf8_text(src), digest):
            continue
        if not replace:
            raise _refuse_other_run(t, src, earlier)
        other.add(t.id)
    if check_activations and any(s.activation is not None for t, _ in got for s in t.steps):
        from attrib.activations import check_trace

        for t, src in got:
            check_trace(t, model_config, source=src)
    # what the result needs, taken now: the store is handed the traces and lets each go once its rows are in
    rows = [(t.id, src, t.n_steps, t.source_format) for t, src in got]
    traces, sources = [t for t, _ in got], [utf8_text(src) for _, src in got]  # a name's non-UTF-8 bytes, escaped
    del got
    changed, replaced = store.upsert(traces, source_path=list(sources), release=True)
    gone = {tid: Replaced(tid, stored[tid][0], stored[tid][2], tid in other) for tid in replaced}
    return [(*r, c, gone.get(r[0]) if c else None) for r, c in zip(rows, changed, strict=True)]


def _result(path: str, rows: list[_Row]) -> FileResult | None:
    """The FileResult of a file that was read and stored: its traces (``rows`` as :func:`_store` gives them);
    None for none (a file of a group whose runs are all counted under another file)."""
    if not rows:
        return None
    new = sum(r[4] for r in rows)
    return FileResult(path, True, traces=len(rows), steps=sum(r[2] for r in rows), new=new, unchanged=len(rows) - new,
                      formats=tuple(sorted({r[3] for r in rows})), trace_ids=tuple(r[0] for r in rows),
                      replaced_runs=tuple(r[5] for r in rows if r[5] is not None))


def _failed(path: str | Path, e: BaseException) -> FileResult:
    """A file that could not be read or stored; a bug (not bad input) is said to be one, and Ctrl-C stops, as does
    a store that cannot be written (:class:`StoreWriteError`: no later file could go in either)."""
    if isinstance(e, StoreWriteError):
        raise e
    if isinstance(e, AttribError):
        if isinstance(e, InputError) and e.path is None:  # the store's own complaint (memory cap): name the file
            e = type(e)(path, e.field, e.message)
        return FileResult(str(path), False, error=str(e), exception=e)
    if is_interrupt(e):  # Ctrl-C caught by DuckDB mid-query: stop the ingest, as the user asked
        raise KeyboardInterrupt from e
    return FileResult(str(path), False, error=f"{path}: internal error ({type(e).__name__}: {e})")


def ingest_file(store: Store, path: Path, format: str | None = None, max_bytes: int = MAX_BYTES,
                check_activations: bool = True, model_config: Any = None,
                seen: dict[str, str] | None = None, replace: bool = False) -> FileResult:
    """Read one file and upsert its traces in one transaction; errors become a failed :class:`FileResult` (a store
    that cannot be written raises :class:`StoreWriteError`).

    ``seen`` (trace id -> file) spans one :func:`ingest` call, so two files that map to the same id fail loudly; a
    run the store holds under the same id from another file, with other content, fails the file unless ``replace``.
    A part of an OTLP trace whose other part the store holds from another file is joined with it.
    """
    try:
        if str(path) == "-":  # standard input: `cat run.json | attrib ingest -`, ids made from the content
            traces = read_stdin(format, max_bytes)
        else:
            traces = read_path(path, format, max_bytes=max_bytes)
        # ids come from file names for some formats, and the store keeps one trace per id: a repeat would
        # silently replace the other run
        check_ids(traces, path, seen, hint=" in this ingest; the store keeps one trace per id (rename one file, "
                  "or give the run its own id)")
        rows = _store(store, [(t, str(path)) for t in traces], check_activations, model_config, format, max_bytes,
                      replace)
        del traces
    except Exception as e:  # noqa: BLE001 (a bug is reported as one, and the ingest goes on)
        return _failed(path, e)
    if seen is not None:
        seen.update((r[0], str(path)) for r in rows)
    return _result(str(path), rows) or FileResult(str(path), True)


def ingest_group(store: Store, group: list[Path], format: str | None = None, max_bytes: int = MAX_BYTES,
                 model_config: Any = None, seen: dict[str, str] | None = None,
                 replace: bool = False) -> list[FileResult]:
    """Files that hold parts of one OTLP trace, read together (:func:`attrib.readers.read_sources` joins the
    parts) and stored in one transaction; one :class:`FileResult` per file, each trace counted under the file that
    holds its root span (a file left with none reads 0 traces)."""
    errors: list[AttribError] = []
    try:
        got = [(t, str(f)) for t, f in read_sources(group, format, max_bytes, errors=errors, seen=seen)]
        rows = _store(store, got, True, model_config, format, max_bytes, replace, [str(f) for f in group])
        del got
    except Exception as exc:  # noqa: BLE001
        return [_failed(f, exc) for f in group]
    names = {str(f) for f in group}
    bad = {str(err.path): err for err in errors if isinstance(err, InputError) and str(err.path) in names}
    formats = tuple(sorted({r[3] for r in rows}))  # a file whose parts went to another's run reads as its format
    out = [_failed(f, bad[str(f)]) if str(f) in bad
           else _result(str(f), [r for r in rows if r[1] == str(f)]) or FileResult(str(f), True, formats=formats)
           for f in group]
    for err in errors:  # an error that names no file of the group: the group's first file carries it
        if not (isinstance(err, InputError) and str(err.path) in names):
            out[0] = _failed(group[0], err)
    return out


def ingest(paths: str | Path | Iterable[str | Path], store: Store | str | Path | None = None,
           format: str | None = None, progress: bool = False, max_bytes: int = MAX_BYTES,
           model_config: Any = None, on_file: Callable[[FileResult], None] | None = None,
           replace: bool = False) -> IngestReport:
    """Ingest files, folders and globs into ``store`` (a :class:`Store`, a path, or the default store).

    Returns an :class:`IngestReport`; it never raises for bad input files (check ``report.ok``). The path
    ``"-"`` reads standard input. Two files that give the same trace id fail the second (one trace per id), and so
    does a file whose run has an id the store holds from another file, with other content, unless ``replace=True``:
    then that run is replaced and its verdicts dropped (``report.replaced`` lists them). The same file re-read after
    an edit replaces its own runs either way; identical content is left as it is.
    ``progress=True`` draws a rich progress bar on stderr when that is a terminal; ``on_file`` is called after each
    file. A store that cannot be written (disk full, read-only) stops the ingest with :class:`StoreWriteError`
    (exit 1), whose ``report`` holds the files stored whole before it.
    """
    if format is not None:  # a misspelt format is one usage error, not one failed file each
        reader_named(format)
    if isinstance(paths, str | Path):
        paths = [paths]
    files = expand_paths(paths)
    own = not isinstance(store, Store)
    report = IngestReport()
    if own and not any(f.is_file() or str(f) == "-" for f in files):  # a typo in every path: report it, create no empty store
        report.files = [FileResult(str(f), False, error=str(file_error(f) or InputError(f, None, "no such file")))
                        for f in files]
        return report
    st = store if isinstance(store, Store) else open_store(store)
    seen: dict[str, str] = {}
    groups = _split_groups(files, format, max_bytes)  # one trace's parts in several files: read together
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # a bar only for a person watching: on a pipe or in a log it left a blank line on stderr
        err = Console(stderr=True)
        with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.description}"), console=err, transient=True,
                      disable=not (progress and err.is_terminal)) as bar:
            task = bar.add_task("", total=len(files))
            done: set[Path] = set()
            for f in files:
                if f in done:
                    continue
                bar.update(task, description=f.name)
                together = groups.get(f, [f])
                results = (ingest_group(st, together, format, max_bytes, model_config, seen, replace)
                           if len(together) > 1 else
                           [ingest_file(st, f, format, max_bytes, model_config=model_config, seen=seen,
                                        replace=replace)])
                done.update(together)
                for r in results:
                    report.files.append(r)
                    if on_file:
                        on_file(r)
                    bar.advance(task)
    except StoreWriteError as e:  # the files before it are stored whole: say which, for the caller to tell
        e.report = report
        raise
    finally:
        if own:
            st.close()
            if st.created and report.n_traces == 0:  # every file failed: leave no new, empty store behind
                st.discard()
    return report


__all__ = ["FileResult", "IngestReport", "Replaced", "expand_paths", "ingest", "ingest_file", "ingest_group"]
