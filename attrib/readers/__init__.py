"""Readers: one module per input format, registered here; :func:`read_path` detects and dispatches.

Adding a format is one file with a class that has ``name``, ``sniff(data, path)`` and
``read(data, path)``, plus one line in ``READERS``.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import msgspec

from attrib.errors import EXIT_BAD_INPUT, AttribError, InputError, UsageError
from attrib.readers._common import check_encoding, file_stem, looks_jsonl, utf8_text
from attrib.readers.base import Reader
from attrib.readers.chat import ChatReader
from attrib.readers.native import NativeReader
from attrib.readers.otlp import OTLPReader
from attrib.readers.otlp.spans import SpanRecord
from attrib.readers.whowhen import WhoWhenReader
from attrib.trace import Trace


class FormatError(UsageError):
    """The format choice is the problem: none was given and none is detected (no field: the line says what the file
    holds and what each reader looks for), or the one given does not fit the file while another does (field
    ``format``, the argument a library caller sets; the CLI shows it as the ``--format`` flag a user typed,
    :meth:`UsageError.as_flag`). Exit code 3, as any file that cannot be read."""

    exit_code = EXIT_BAD_INPUT


OTLP = OTLPReader()
READERS: dict[str, Reader] = {r.name: r for r in (WhoWhenReader(), OTLP, ChatReader(), NativeReader())}

#: What a folder given as input is searched for.
SUFFIXES = (".json", ".jsonl", ".ndjson")

#: Files larger than this are refused with a clear error instead of exhausting memory.
MAX_BYTES = 512 * 1024 * 1024


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


def _scores(data: bytes, path: Path) -> dict[str, float]:
    """Each reader's confidence that ``data`` is its format, in registration order."""
    return {name: r.sniff(data, path) for name, r in READERS.items()}


def _best(scores: dict[str, float]) -> tuple[str, float]:
    """The reader most confident (the first registered on a tie) and its confidence."""
    best = max(scores, key=scores.__getitem__)
    return best, scores[best]


#: A sniff at least this confident picks its reader outright (a Who&When log, OTLP, attrib's JSON with its
#: ``source_format`` up front); below it, the document's top-level keys decide where they name a format.
SURE = 0.9


class _Keys(msgspec.Struct):
    """The top-level keys that name a format (values skipped, never decoded: see :func:`format_by_keys`)."""

    source_format: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    steps: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    resourceSpans: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    history: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    messages: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    chat_history: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    conversation: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_KEYS = msgspec.json.Decoder(_Keys)
_LIST = msgspec.json.Decoder(list[msgspec.Raw])


def format_by_keys(data: bytes) -> str | None:
    """The format a JSON document's top-level keys name, wherever in the file they are: ``source_format`` and
    ``steps`` (attrib's own JSON, one trace or a list), ``resourceSpans`` (OTLP), ``messages`` / ``chat_history`` /
    ``conversation`` (a chat log), ``history`` (Who&When), the first that the document has. None for JSON Lines, a document that is not
    JSON, or one whose keys name none. One pass that skips every value (no objects are built), for a file whose
    first bytes do not say what it is."""
    if looks_jsonl(data):
        return None
    try:
        if data.lstrip()[:1] == b"[":
            items = _LIST.decode(data)
            if not items:
                return None
            keys = _KEYS.decode(items[0])
            return "attrib" if keys.source_format is not msgspec.UNSET and keys.steps is not msgspec.UNSET else None
        keys = _KEYS.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):  # not JSON, or not an object: the readers say why
        return None
    if keys.source_format is not msgspec.UNSET and keys.steps is not msgspec.UNSET:
        return "attrib"
    if keys.resourceSpans is not msgspec.UNSET:
        return "otlp"
    if any(k is not msgspec.UNSET for k in (keys.messages, keys.chat_history, keys.conversation)):
        return "chat"
    if keys.history is not msgspec.UNSET:
        return "whowhen"
    return None


def detect(data: bytes, path: Path) -> Reader:
    """The reader whose ``sniff`` is most confident about ``data``; where none is sure (:data:`SURE`), the one the
    document's top-level keys name (:func:`format_by_keys`), if any."""
    name, score = _best(_scores(data, path))
    if score < SURE:
        keyed = format_by_keys(data)
        if keyed is not None:
            return READERS[keyed]
    if score <= 0:
        from attrib.readers._common import iter_jsonl, loads, looks_jsonl

        # broken JSON sniffs as nothing: name the syntax error (file, line:col), not the format
        lines = looks_jsonl(data)
        first = next((v for _, v in iter_jsonl(data, path)), None) if lines else loads(data, path)
        # no field: no format was given, so the line says what the file holds and what each reader looks for
        holds = _holds(first, "its first line" if lines else "it")
        raise FormatError(path, None, f"unknown format: {holds}; attrib reads 'messages', 'chat_history' or "
                          "'conversation' (chat), 'history' (whowhen), 'resourceSpans' or span lists (otlp), "
                          "'source_format' with 'steps' (attrib), or lists and JSON Lines of messages with 'content', "
                          f"'text' or 'tool_calls' (chat); name one ({', '.join(READERS)}) to see what it lacks")
    return READERS[name]


def _holds(value: object, it: str) -> str:
    """What a document (``it``: "it", or "its first line" of JSON Lines) that no reader recognises holds, in words:
    its top-level keys, or its list's first item's."""
    from attrib.readers._common import json_kind
    from attrib.trace import some_names

    if isinstance(value, dict):
        return f"{it} has the keys {some_names(value)}" if value else f"{it} is an empty object"
    if isinstance(value, list):
        if not value:
            return f"{it} is an empty list"
        first = value[0]
        if isinstance(first, dict):
            return f"{it} is a list of objects with the keys {some_names(first)}" if first else \
                f"{it} is a list of empty objects"
        return f"{it} is a list whose first item is {json_kind(first)}"
    return f"{it} is {json_kind(value)}"


def read_path(path: str | Path, format: str | None = None, max_bytes: int = MAX_BYTES) -> list[Trace]:
    """Read every trace in one file. Raises :class:`InputError` naming the file and field."""
    path = Path(path)
    return read_bytes(_file_bytes(path, max_bytes), path, format)


def file_error(path: str | Path, max_bytes: int = MAX_BYTES) -> InputError | None:
    """Why ``path`` cannot be read as a trace file, as the :class:`InputError` to raise or report; None when it can:
    no such file, a folder, not a regular file (a device such as /dev/null, a named pipe, a socket: reading one
    would block or read nothing), or over ``max_bytes``."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return InputError(path, None, "no such file")
    except OSError as e:  # a broken link, no permission on the folder, a name too long
        return InputError(path, None, f"cannot be read ({e.strerror or e})")
    if stat.S_ISDIR(st.st_mode):
        return InputError(path, None, "is a folder, not a trace file (read_paths reads every trace in a folder)")
    if not stat.S_ISREG(st.st_mode):
        what = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "no regular file")
        return InputError(path, None, f"not a regular file: {what}; give a trace file, or pipe it in with -")
    if st.st_size > max_bytes:
        return InputError(path, None, f"file is {_size(st.st_size)}, over the {_size(max_bytes)} limit "
                          "(split it, or raise the limit with --max-bytes)")
    return None


def _file_bytes(path: Path, max_bytes: int) -> bytes:
    error = file_error(path, max_bytes)
    if error is not None:
        raise error
    try:
        return path.read_bytes()
    except OSError as e:  # no permission, an I/O error
        raise InputError(path, None, f"cannot be read ({e.strerror or e})") from None


def otlp_trace_ids(path: str | Path, format: str | None = None, max_bytes: int = MAX_BYTES) -> set[str]:
    """The OTLP trace ids a file holds spans of (no traces built); empty for a file of another format or one that
    cannot be read (reading it for real then says why). ``attrib ingest`` asks it to find one trace's parts in
    several files before it reads them together."""
    path = Path(path)
    try:
        reader, data = _reader(_file_bytes(path, max_bytes), path, format)
        return set(OTLP.records(data, path)) if reader is OTLP else set()
    except AttribError:
        return set()


def read_bytes(data: bytes, path: str | Path, format: str | None = None) -> list[Trace]:
    """Read every trace in ``data`` (a file's bytes, or standard input's); ``path`` names it in errors and
    default trace ids, and anchors relative activation paths."""
    path = Path(path)
    reader, data = _reader(data, path, format)
    traces = _read_with(reader, data, path, format, lambda r: r.read(data, path))
    for t in traces:
        validate(t, path)
    return traces


_T = TypeVar("_T")


def _read_with(reader: Reader, data: bytes, path: Path, format: str | None, read: Callable[[Reader], _T]) -> _T:
    """``read(reader)``. When it fails: with a format given, the error as :func:`misfit` puts it; with the format
    detected, the reader the document's top-level keys name (:func:`format_by_keys`) reads it instead where that
    is another (a cheap sniff misled by a key further down: attrib's JSON with ``steps`` before ``source_format``
    and a label, whose ``mistake_agent`` looks like Who&When), its errors then the ones that count."""
    try:
        return read(reader)
    except InputError as e:
        if format is not None:
            raise misfit(e, data, path, format) from None
        keyed = format_by_keys(data)
        if keyed is None or keyed == reader.name:
            raise
    return read(READERS[keyed])


def _reader(data: bytes, path: Path, format: str | None) -> tuple[Reader, bytes]:
    """The reader for ``data`` (the one named, else the one detected) and the bytes it reads."""
    if not data.strip():
        raise InputError(path, None, "empty file")
    data = check_encoding(data, path)
    return (reader_named(format, path) if format is not None else detect(data, path)), data


def reader_named(format: str, path: str | Path | None = None) -> Reader:
    """The reader called ``format``; a :class:`UsageError` (field ``format``) listing the known ones otherwise."""
    if format not in READERS:
        raise UsageError(path, "format", f"unknown format {format!r} (known: {', '.join(READERS)})")
    return READERS[format]


def misfit(error: InputError, data: bytes, path: Path, format: str) -> InputError:
    """``error`` (the reader of the format given failed on ``data``) as a :class:`FormatError` when another reader
    is confident the file is its format, so the line says the format choice is the likely cause; else as is."""
    scores = _scores(data, path)
    best, score = _best(scores)
    if best == format or score < 0.5 or score <= scores[format]:
        return error
    what = f"{error.field}: {error.message}" if error.field else error.message
    return FormatError(path, "format", f"{format!r} does not fit this file ({what}); it looks like {best}: "
                       "choose that, or leave --format out to detect it")


def read_stdin(format: str | None = None, max_bytes: int = MAX_BYTES) -> list[Trace]:
    """Every trace piped in on standard input (``cat run.json | attrib ingest -``), named "stdin" in errors.

    Ids a reader derives from the file name would all be ``...-stdin``: those get the first 8 hex digits of the
    run's content hash appended, so two different runs piped in one after the other never share an id (the same
    run piped twice keeps one). Standard input that is a terminal (nothing piped in) is a :class:`UsageError`, not a
    wait for a trace to be typed."""
    import sys

    import msgspec

    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("stdin", None, "nothing is piped in (standard input is a terminal; pipe a trace file in)")
    data = sys.stdin.buffer.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError("stdin", None, f"more than {max_bytes} bytes (raise the limit with --max-bytes)")
    return [msgspec.structs.replace(t, id=f"{t.id}-{t.content_hash()[:8]}") if t.id.endswith("stdin") else t
            for t in read_bytes(data, Path("stdin"), format)]


def validate(trace: Trace, path: str | Path | None = None) -> Trace:
    """Check the trace model's invariants (:meth:`Trace.check`): steps numbered 0..n-1, parents point to earlier
    steps, step agents listed, the label a step and an agent. Raises one :class:`InputError`."""
    # readers build typed traces, so no type pass; hand-built ones get it in analyze
    return trace.check(str(path) if path is not None else None, check_types=False)


def load_trace(path: str | Path, format: str | None = None) -> Trace:
    """Read a file that holds exactly one trace."""
    traces = read_path(path, format)
    if len(traces) != 1:
        raise InputError(path, None, f"expected one trace, found {len(traces)}")
    return traces[0]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for JSON/JSONL, globs expanded; order kept, no repeats (one
    file reached twice, by another spelling or a link, is kept once, as first named).

    A path that matches nothing is returned as-is so that reading it reports 'no such file'.
    """
    out: dict[Path, Path] = {}  # resolved -> as named

    def add(f: Path) -> None:
        out.setdefault(f.resolve(), f)

    for p in paths:
        s = str(p)
        path = Path(s)
        if is_folder_or_glob(s):
            if path.is_dir():
                for f in sorted(path.rglob("*")):
                    hidden = any(x.startswith(".") for x in f.relative_to(path).parts)
                    if f.is_file() and f.suffix.lower() in SUFFIXES and not hidden:
                        add(f)
                continue
            for m in sorted(glob.glob(s, recursive=True)):
                mp = Path(m)
                if mp.is_file():
                    add(mp)
                elif mp.is_dir():
                    for f in expand_paths([mp]):
                        add(f)
        else:
            add(path)
    return list(out.values())


def is_folder_or_glob(target: str | Path) -> bool:
    """Whether ``target`` names many files: a folder, or a glob pattern that is not itself a file name."""
    path = Path(target)
    return path.is_dir() or (not path.exists() and any(c in str(target) for c in "*?["))


def looks_like_trace_file(target: str) -> bool:
    """Whether a name that matches no file was meant as one (a suffix attrib reads, or a folder in it), rather than
    a trace id: a missing file is then reported as such."""
    return Path(target).suffix.lower() in SUFFIXES or "/" in target or os.sep in target


def read_paths(paths: Iterable[str | Path], format: str | None = None, max_bytes: int = MAX_BYTES) -> list[Trace]:
    """Every trace in the files, folders and globs given (see :func:`expand_paths`), in order; an error when
    they name no file at all (an empty folder, a glob that matches nothing). The spans of one OTLP trace that
    several of the files hold make one trace (see :func:`read_sources`)."""
    return [t for t, _ in read_sources(paths, format, max_bytes)]


#: How to fix a trace id that two runs share (the end of :func:`check_ids`' message).
ID_HINT = "; give each run its own id (a re-run of one task shares metadata.question_id, not the id)"


def check_ids(traces: Iterable[Trace], path: str | Path, seen: Mapping[str, str] | None = None,
              hint: str = ID_HINT) -> None:
    """Refuse a trace id that repeats within ``traces`` (one file's, read from ``path``) or that ``seen`` (trace id
    -> file) already has from another file: one :class:`InputError` on field ``id`` naming both files. ``seen`` is
    only read; add the file's ids to it once the file is accepted."""
    here: set[str] = set()
    for t in traces:
        if t.id in here:
            raise InputError(path, "id", f"trace id {t.id!r} appears twice in this file; give each run its own id")
        first = seen.get(t.id) if seen is not None else None
        if first is not None and Path(first).resolve() != Path(path).resolve():
            raise InputError(path, "id", f"trace id {t.id!r} was already read from {first}{hint}")
        here.add(t.id)


def read_sources(paths: Iterable[str | Path], format: str | None = None, max_bytes: int = MAX_BYTES,
                 errors: list[AttribError] | None = None,
                 seen: dict[str, str] | None = None) -> list[tuple[Trace, Path]]:
    """As :func:`read_paths`, each trace with the file it came from. With ``errors`` (a list), a file that cannot
    be read is appended to it and the other files are still read; without, the first such file raises.

    OTLP files are read to span records first: the spans of one trace id that several files hold as disjoint parts
    (a collector's file exporter rotating files mid-trace, children often flushed before their parent) are joined
    into one trace, listed with the file that holds its root span (else the first of them); an error in building it
    names the file of the span at fault and loses that trace only. Files that hold spans of one trace id twice
    (copies of one export) are read apart, as any files.

    With ``seen`` (a dict, trace id -> file; usually empty), trace ids must be unique: a file whose id repeats
    within it or was already read from another file fails (see :func:`check_ids`), and the ids of each file read
    are added to ``seen``."""
    paths = list(paths)
    files = expand_paths(paths)
    if not files:
        raise InputError(", ".join(map(str, paths)) or "(nothing given)", None, "no trace files here (folders are "
                         f"searched for {', '.join(SUFFIXES)} files; a glob must match one)")

    def failed(e: AttribError) -> None:
        if errors is None:
            raise e
        errors.append(e)

    # each file read: its traces, or (OTLP) its span records by trace id, built once every file is read
    got: list[tuple[Path, list[Trace] | dict[str, list[SpanRecord]]]] = []
    for p in files:
        try:
            got.append((p, _read_source(p, format, max_bytes)))
        except AttribError as e:
            failed(e)
    joined = OTLP.joined([(p, read) for p, read in got if isinstance(read, dict)])
    out: list[tuple[Trace, Path]] = []
    for i, (p, read) in enumerate(got):
        got[i] = (p, [])  # its records go once its traces are built (the joined ones are held by `joined`)
        try:
            if isinstance(read, dict):
                try:
                    traces = [OTLP.build(tid, recs, p) for tid, recs in read.items() if tid not in joined]
                except InputError as e:
                    raise (misfit(e, p.read_bytes(), p, format) if format is not None else e) from None
                for t in traces:
                    validate(t, p)
            else:
                traces = read
            _accept(traces, p, seen, out)
        except AttribError as e:
            failed(e)
        for tid, (home, parts) in joined.items():
            if home == p:
                try:
                    t = validate(OTLP.build(tid, [r for part in parts for r in part], p), p)
                    _accept([t], p, seen, out)
                except AttribError as e:
                    failed(e)
    return out


def _read_source(p: Path, format: str | None, max_bytes: int) -> list[Trace] | dict[str, list[SpanRecord]]:
    """One file of :func:`read_sources`: its traces, or for OTLP its span records by trace id (not yet traces)."""
    reader, data = _reader(_file_bytes(p, max_bytes), p, format)
    read = _read_with(reader, data, p, format, lambda r: OTLP.records(data, p) if r is OTLP else r.read(data, p))
    if isinstance(read, dict):
        return read
    for t in read:
        validate(t, p)
    return read


def _accept(traces: list[Trace], p: Path, seen: dict[str, str] | None, out: list[tuple[Trace, Path]]) -> None:
    if seen is not None:
        check_ids(traces, p, seen)
        seen.update((t.id, str(p)) for t in traces)
    out += [(t, p) for t in traces]


__all__ = ["ID_HINT", "READERS", "SUFFIXES", "FormatError", "Reader", "check_ids", "detect", "expand_paths", "file_error",
           "file_stem", "format_by_keys", "load_trace", "otlp_trace_ids", "read_bytes", "read_path", "read_paths",
           "read_sources", "utf8_text", "validate"]
