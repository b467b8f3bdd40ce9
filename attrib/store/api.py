"""``ingest``: read files, folders and globs into the store, one transaction per file.

The library twin of ``attrib ingest``. A file that fails (unreadable, bad activation shapes, ...)
is reported with one line and leaves nothing in the store; the other files still go in. When every file fails, a
store file this call created is removed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrib.errors import AttribError, InputError
from attrib.readers import (
    MAX_BYTES,
    check_ids,
    expand_paths,
    file_error,
    read_path,
    read_sources,
    read_stdin,
    reader_named,
    utf8_text,
)
from attrib.store import Store, is_interrupt, open_store
from attrib.trace import Trace


@dataclass
class FileResult:
    """What happened to one input file."""

    path: str
    ok: bool
    traces: int = 0
    steps: int = 0
    new: int = 0
    unchanged: int = 0
    error: str | None = None
    formats: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = ()
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
    def n_unchanged(self) -> int:
        """Traces already stored with the same content (left as they were)."""
        return sum(f.unchanged for f in self.files)

    def summary(self) -> dict[str, Any]:
        """The counts as a dict (files, failed, traces, steps, new_or_changed, unchanged), for JSON output."""
        return {"files": len(self.files), "failed": len(self.failed), "traces": self.n_traces, "steps": self.n_steps,
                "new_or_changed": self.n_new, "unchanged": self.n_unchanged}


def _join_parts(traces: list[Trace], path: Path, format: str | None, max_bytes: int,
                seen: dict[str, str] | None, parts: dict[str, list[str]] | None) -> list[tuple[Trace, str]] | None:
    """This file's traces joined with the earlier files of this ingest that hold other spans of the same OTLP trace
    ids (a collector's file exporter rotating mid-trace), read together as :func:`read_sources` joins them, each
    with the file of its root span; None when no id repeats, or when a repeat is no such split (another format, or
    copies of the same spans: the id check then refuses the file, as before)."""
    if seen is None or parts is None or str(path) == "-":
        return None
    here = Path(path).resolve()
    clash = [t for t in traces if t.id in seen and Path(seen[t.id]).resolve() != here]
    if not clash or any(t.source_format != "otlp" for t in clash):
        return None
    earlier = dict.fromkeys(f for t in clash for f in parts.get(t.id, [seen[t.id]]))
    try:
        got = read_sources([*earlier, path], format, max_bytes, seen={})
    except AttribError:
        return None
    own = {t.id for t in traces}
    return [(t, str(f)) for t, f in got if t.id in own]  # this file's runs, whole; the earlier files' others stay


def ingest_file(store: Store, path: Path, format: str | None = None, max_bytes: int = MAX_BYTES,
                check_activations: bool = True, model_config: Any = None,
                seen: dict[str, str] | None = None, parts: dict[str, list[str]] | None = None) -> FileResult:
    """Read one file and upsert its traces in one transaction; errors become a failed :class:`FileResult`.

    ``seen`` (trace id -> file) spans one :func:`ingest` call, so two files that map to the same id fail loudly;
    except the parts of one OTLP trace split over files (``parts``: trace id -> the files holding its spans so far),
    which are joined and stored as one run, replacing the part stored from the earlier file.
    """
    try:
        if str(path) == "-":  # standard input: `cat run.json | attrib ingest -`, ids made from the content
            traces = read_stdin(format, max_bytes)
        else:
            traces = read_path(path, format, max_bytes=max_bytes)
        joined = _join_parts(traces, path, format, max_bytes, seen, parts)
        sources: str | list[str | None] = utf8_text(str(path))  # a file name's non-UTF-8 bytes, escaped
        if joined is not None:  # the parts of one OTLP trace split over files: stored as one run, replacing the part
            traces, sources = [t for t, _ in joined], [f for _, f in joined]
        else:
            # ids come from file names for some formats, and the store keeps one trace per id: a repeat would
            # silently replace the other run
            check_ids(traces, path, seen, hint=" in this ingest; the store keeps one trace per id (rename one "
                      "file, or give the run its own id)")
        if check_activations and any(s.activation is not None for t in traces for s in t.steps):
            from attrib.activations import check_trace

            for t in traces:
                check_trace(t, model_config, source=path)
            del t
        # what the result needs, taken now: the store is handed the traces and lets each go once its rows are in
        ids, n_steps = tuple(t.id for t in traces), sum(t.n_steps for t in traces)
        formats = tuple(sorted({t.source_format for t in traces}))
        new = sum(store.upsert_traces(traces, source_path=sources, release=True))
    except AttribError as e:
        if isinstance(e, InputError) and e.path is None:  # the store's own complaint (memory cap): name the file
            e = type(e)(path, e.field, e.message)
        return FileResult(str(path), False, error=str(e), exception=e)
    except Exception as e:  # a bug, not bad input: keep going, but say so
        if is_interrupt(e):  # Ctrl-C caught by DuckDB mid-query: stop the ingest, as the user asked
            raise KeyboardInterrupt from e
        return FileResult(str(path), False, error=f"{path}: internal error ({type(e).__name__}: {e})")
    if seen is not None:
        for i in ids:
            seen.setdefault(i, str(path))
            if parts is not None and str(path) not in parts.setdefault(i, []):
                parts[i].append(str(path))
    return FileResult(str(path), True, traces=len(ids), steps=n_steps, new=new, unchanged=len(ids) - new,
                      formats=formats, trace_ids=ids)


def ingest(paths: str | Path | Iterable[str | Path], store: Store | str | Path | None = None,
           format: str | None = None, progress: bool = False, max_bytes: int = MAX_BYTES,
           model_config: Any = None, on_file: Callable[[FileResult], None] | None = None) -> IngestReport:
    """Ingest files, folders and globs into ``store`` (a :class:`Store`, a path, or the default store).

    Returns an :class:`IngestReport`; it never raises for bad input files (check ``report.ok``). The path
    ``"-"`` reads standard input. Two files that give the same trace id fail the second (one trace per id).
    ``progress=True`` draws a rich progress bar on stderr when that is a terminal; ``on_file`` is called after each
    file.
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
    parts: dict[str, list[str]] = {}  # trace id -> the files holding its spans (an OTLP trace split over files)
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # a bar only for a person watching: on a pipe or in a log it left a blank line on stderr
        err = Console(stderr=True)
        with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.description}"), console=err, transient=True,
                      disable=not (progress and err.is_terminal)) as bar:
            task = bar.add_task("", total=len(files))
            for f in files:
                bar.update(task, description=f.name)
                r = ingest_file(st, f, format, max_bytes, model_config=model_config, seen=seen, parts=parts)
                report.files.append(r)
                if on_file:
                    on_file(r)
                bar.advance(task)
    finally:
        if own:
            st.close()
            if st.created and report.n_traces == 0:  # every file failed: leave no new, empty store behind
                st.discard()
    return report


__all__ = ["FileResult", "IngestReport", "expand_paths", "ingest", "ingest_file"]
