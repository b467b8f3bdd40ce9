"""The embedded store: traces, steps, labels, activation index and attributions in one DuckDB file.

``open_store()`` opens ``./attrib.duckdb`` (or ``$ATTRIB_STORE``, or the path given), applying
schema migrations. Traces are upserted by id + content hash: identical content is a no-op,
changed content replaces the old rows (and drops the attributions computed from them). The full
trace JSON is kept beside the relational rows, so :meth:`Store.get_trace` returns exactly what was
stored, labels included. duckdb and pyarrow are imported on first use to keep ``attrib --help`` fast.
Rows go in through Arrow tables: DuckDB's bulk path, ~10x faster than parameter binding for 100k-step files (it
imports pandas once, about a second), in batches of :data:`STEP_BATCH` rows, each trace's JSON handed over without a
copy, so an ingest's memory follows its largest trace (see :meth:`Store._insert`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec

from attrib.errors import EXIT_FAILURE, AttribError, InputError, NotFoundError, UsageError
from attrib.store.queries import TraceFilter
from attrib.store.schema import LATEST, TABLES, current_version, migrate
from attrib.trace import ActivationRef, Attribution, Label, Step, ToolCall, ToolResult, Trace, tool_agents

DEFAULT_PATH = "attrib.duckdb"
T = TypeVar("T")
_ENC = msgspec.json.Encoder()
_NAMES = msgspec.json.Decoder(tuple[str, ...])

#: A ``traces`` row to insert: the trace without its steps, its step count, content hash, source path, JSON and tools.
_TraceRow = tuple[Trace, int, str, str | None, bytes, tuple[str, ...]]


#: DuckDB's page cache bound (its own default is 80% of RAM); override with $ATTRIB_STORE_MEMORY.
DEFAULT_MEMORY_LIMIT = "256MB"

#: Rows per multi-row INSERT statement in the bulk writes (bounds the bound-parameter count).
WRITE_CHUNK = 1000

#: Step (label, activation) rows per Arrow batch of an ingest: a batch is what Python builds at once, however long
#: the run (the transaction still holds the whole file's rows, so a failure leaves nothing).
STEP_BATCH = 16_384
#: At most this much trace JSON per Arrow batch of ``traces`` rows (a larger trace goes alone, its bytes uncopied).
JSON_BATCH_BYTES = 16 * 2**20
#: After letting go of this much trace (as JSON) in an ingest, hand the freed memory back to the system.
TRIM_BYTES = 64 * 2**20


#: Below this DuckDB cannot even create the schema (measured: 10KB fails with an out-of-memory error).
MIN_MEMORY_BYTES = 16_000_000
_CANONICAL = re.compile(r"([\d.]+) (bytes|[KMGTP]iB)")  # how DuckDB prints a memory setting back


def _string_array(data: bytes, lengths: list[int]) -> Any:
    """An Arrow string array over ``data``, the UTF-8 strings of ``lengths`` back to back, without copying it (64-bit
    offsets: one trace's JSON may pass 2 GiB). msgspec writes valid UTF-8, which is all Arrow asks of the bytes."""
    import numpy as np
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.large_string(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, None where the C library has none (macOS, musl, Windows)."""
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def _hand_back_memory() -> None:
    """Return the heap memory Python freed to the system. glibc keeps freed small blocks (a run's step texts are
    ~1 KB each) for Python's own later use, where DuckDB, which allocates through its own allocator, cannot use them:
    letting go of a 240k-step trace gave back 140 of its 410 MiB without this, all of it with."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _step_rows(batch: list[tuple[str, Any]]) -> Any:
    """An Arrow table of ``steps`` rows, columns in the table's order, from ``(trace id, step)`` pairs."""
    import pyarrow as pa

    enc = _ENC.encode
    s = pa.string()
    steps = [x for _, x in batch]
    return pa.table({
        "trace_id": pa.array([tid for tid, _ in batch], s),
        "step": pa.array([x.index for x in steps], pa.int32()),
        "agent": pa.array([x.agent for x in steps], s),
        "role": pa.array([x.role for x in steps], s),
        "content": pa.array([x.content for x in steps], s),
        "tool_calls": pa.array([enc(x.tool_calls).decode() if x.tool_calls else None for x in steps], s),
        "tool_results": pa.array([enc(x.tool_results).decode() if x.tool_results else None for x in steps], s),
        "parents": pa.array([list(x.parents) for x in steps], pa.list_(pa.int32())),
        "start_time": pa.array([x.start_time for x in steps], pa.float64()),
        "end_time": pa.array([x.end_time for x in steps], pa.float64()),
        "tokens_in": pa.array([x.tokens_in for x in steps], pa.int64()),
        "tokens_out": pa.array([x.tokens_out for x in steps], pa.int64()),
        "metadata": pa.array([enc(x.metadata).decode() if x.metadata else None for x in steps], s),
    })


def _label_rows(batch: list[tuple[str, Any]]) -> Any:
    """``labels`` rows from ``(trace id, label)`` pairs."""
    import pyarrow as pa

    return pa.table({
        "trace_id": pa.array([tid for tid, _ in batch], pa.string()),
        "mistake_agent": pa.array([x.mistake_agent for _, x in batch], pa.string()),
        "mistake_step": pa.array([x.mistake_step for _, x in batch], pa.int32()),
        "reason": pa.array([x.reason for _, x in batch], pa.string()),
    })


def _activation_rows(batch: list[tuple[str, Any]]) -> Any:
    """``activations`` rows from ``(trace id, step with an activation)`` pairs."""
    import pyarrow as pa

    refs = [(x.index, x.activation) for _, x in batch]
    return pa.table({
        "trace_id": pa.array([tid for tid, _ in batch], pa.string()),
        "step": pa.array([i for i, _ in refs], pa.int32()),
        "path": pa.array([a.path for _, a in refs], pa.string()),
        "hooks": pa.array([list(a.hooks) for _, a in refs], pa.list_(pa.string())),
        "format": pa.array([a.format for _, a in refs], pa.string()),
    })


_ROW_BUILDERS: dict[str, Callable[[list[tuple[str, Any]]], Any]] = {
    "steps": _step_rows, "labels": _label_rows, "activations": _activation_rows}


_TOOL_CALLS = msgspec.json.Decoder(tuple[ToolCall, ...])
_TOOL_RESULTS = msgspec.json.Decoder(tuple[ToolResult, ...])


def _tools(cell: str | None) -> tuple[str, ...]:
    """A ``traces.tools`` cell (JSON text; None for no row) as a tuple of names."""
    return _NAMES.decode(cell) if cell else ()


def _step_of(row: tuple[Any, ...]) -> Step:
    """A :class:`Step` from a ``steps`` row joined with its ``activations`` row (the columns of
    :meth:`Store.get_steps`), as it was stored."""
    (index, agent, role, content, calls, results, parents, start, end, tok_in, tok_out, meta, a_path, a_hooks,
     a_format) = row
    return Step(index=index, agent=agent, role=role, content=content if content is not None else "",
                tool_calls=_TOOL_CALLS.decode(calls) if calls else (),
                tool_results=_TOOL_RESULTS.decode(results) if results else (),
                parents=tuple(parents or ()), start_time=start, end_time=end, tokens_in=tok_in, tokens_out=tok_out,
                activation=ActivationRef(path=a_path, hooks=tuple(a_hooks or ()), format=a_format)
                if a_path is not None else None,
                metadata=msgspec.json.decode(meta) if meta else {})


def _absolute(path: str | None) -> str | None:
    """A trace's source file as an absolute path (None, ``-``, standard input, and URLs such as ``s3://...`` as they
    are)."""
    return path if path is None or path == "-" or "://" in path else os.path.abspath(path)


def content_hash(trace: Trace, source_path: str | None = None) -> str:
    """The store's content hash of a trace (its JSON's sha256), by which a re-ingest tells changed content from the
    same: an activation file under the folder of ``source_path`` (the trace's file, absolute) counts by its path
    relative to that folder, not by the absolute path the reader made of it, so a trace moved together with its
    activation folder is the same content (its verdicts kept). A trace without activations hashes as its JSON."""
    return _hashes(trace, _absolute(source_path))[0]


def matches_stored(trace: Trace, source_path: str | None, stored_hash: str) -> bool:
    """Whether ``trace`` read from ``source_path`` is the content a stored trace has (its ``stored_hash``), by
    :func:`content_hash` or by the hash of a store written before it left the activation folder out: what an
    upsert leaves as it is."""
    return stored_hash in _hashes(trace, _absolute(source_path))


def _hashes(trace: Trace, source_path: str | None, blob: bytes | None = None) -> tuple[str, str | None]:
    """The one "same content" rule: a trace's :func:`content_hash`, and the hash a store written before that hash
    left the activation folder out has for it (its JSON's own), or None where the two are one (no activation file
    under its file's folder). ``source_path`` absolute; ``blob``: the trace's JSON, where the caller has it."""
    whole = hashlib.sha256(trace.to_json() if blob is None else blob).hexdigest()
    rel = _relative_hash(trace, source_path)
    return (rel, whole) if rel else (whole, None)


def _relative_hash(trace: Trace, source_path: str | None) -> str | None:
    """:func:`content_hash` of a trace with an activation file under its file's folder; None for any other trace,
    whose hash is its JSON's own (the caller has that JSON at hand)."""
    folder = os.path.dirname(source_path) if source_path and source_path != "-" and "://" not in source_path else None
    if folder is None or not any(s.activation is not None for s in trace.steps):
        return None

    def relative(a: ActivationRef) -> ActivationRef:
        try:
            rel = os.path.relpath(a.path, folder) if os.path.isabs(a.path) else a.path
        except ValueError:  # another drive (Windows)
            return a
        return a if rel.startswith(os.pardir) else msgspec.structs.replace(a, path=rel)

    refs = [relative(s.activation) if s.activation is not None else None for s in trace.steps]
    if all(r is s.activation for r, s in zip(refs, trace.steps, strict=True)):
        return None
    steps = tuple(s if r is s.activation else msgspec.structs.replace(s, activation=r)
                  for r, s in zip(refs, trace.steps, strict=True))
    return hashlib.sha256(msgspec.structs.replace(trace, steps=steps).to_json()).hexdigest()


def _scalar(con: Any, query: str, params: Any = None) -> Any:
    """The one value a query returns (a count, a setting): DuckDB's ``fetchone()[0]``."""
    row = con.execute(query, params).fetchone() if params is not None else con.execute(query).fetchone()
    return row[0] if row is not None else None


def _set_memory_limit(con: Any, value: str | None, name: str) -> tuple[str, float | None]:
    """Set ``value`` (else ``$ATTRIB_STORE_MEMORY``, else the default) as ``con``'s memory limit, refusing what
    DuckDB cannot parse and anything under 16MB; DuckDB itself parses it, so the check and the setting agree.
    ``name`` is what an error calls the setting. Returns the setting as given and in bytes (None if unknown)."""
    import duckdb

    if value is not None and not isinstance(value, str):
        raise UsageError(None, name, f"give a size string such as '512MB', got {value!r}")
    v = (value or os.environ.get("ATTRIB_STORE_MEMORY") or DEFAULT_MEMORY_LIMIT).strip()
    try:
        con.execute("SET memory_limit = '{}'".format(v.replace("'", "''")))
        shown = str(_scalar(con, "SELECT current_setting('memory_limit')"))
    except duckdb.Error as e:
        raise InputError(None, name, f"expected a size such as 256MB or 2GB, got {v!r} "
                         f"({str(e).splitlines()[0]})") from None
    n = _bytes(shown)
    if n is not None and n < MIN_MEMORY_BYTES * 0.99:  # DuckDB prints 16MB back as "15.2 MiB"
        raise InputError(None, name, f"{v} is too small for DuckDB; give at least 16MB")
    return v, n


_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def _bytes(shown: str) -> float | None:
    """A memory setting as DuckDB prints it back ("244.1 MiB") in bytes; None for anything else."""
    m = _CANONICAL.fullmatch(shown)
    return float(m.group(1)) * _UNITS[m.group(2)] if m is not None else None


#: DuckDB holds a row's strings several times over while inserting and committing it (its transaction's copy, the
#: table's, a passing one): for a 240k-step trace of 306 MiB of JSON, 2x of it in its page cache at the commit
#: (1.75x + 64 MiB ran out of memory there). A bulk write whose largest trace needs more than the cap raises the cap
#: for that write (``3 x trace + 64 MiB``), instead of failing on a run the process already holds in memory; so does
#: a checkpoint of a store holding such a trace (:meth:`Store._room_to_checkpoint`).
ROW_MEMORY_FACTOR = 3
ROW_MEMORY_SLACK = 64 * 2**20


def _row_room(largest: int) -> int:
    """The memory cap a write (or a checkpoint) needs for a trace of ``largest`` bytes of JSON."""
    return ROW_MEMORY_FACTOR * largest + ROW_MEMORY_SLACK
#: How often a read that ran out of memory is retried with a higher cap (DuckDB names the allocation that failed).
OOM_RETRIES = 3
_ALLOC = re.compile(r"of size ([\d.]+ (?:bytes|[KMGTP]iB))")
#: The longest string of a column segment in DuckDB's storage statistics (``pragma_storage_info``): a dict's
#: ``'max_string_length': 321319498`` in duckdb 2, ``Max String Length: ...`` in the text of older ones.
_MAX_LEN = re.compile(r"max[_ ]string[_ ]length\W*(\d+)", re.IGNORECASE)


#: DuckDB's words for a file lock held by another process, e.g. (duckdb 2.0.1) ``IO Error: Could not set lock on file
#: "store.duckdb": Conflicting lock is held in /usr/bin/python3 (PID 4242). See also ...``. DuckDB has no exception
#: class or code for this case: a held lock raises ``duckdb.IOException``, the same class as a missing file, a file
#: that is not a database or a permission error, so the class narrows it down and these words decide.
_LOCK_WORDS = re.compile(r"Could not set lock on file|Conflicting lock is held", re.IGNORECASE)
_LOCK_PID = re.compile(r"\(PID (\d+)\)")


class StoreLockedError(InputError):
    """The store file is locked by another process (DuckDB lets one process write, or many read: a write is refused
    while another process holds the file open at all, a read while one writes to it). Exit code 3, as any store that
    cannot be opened; ``pid`` is the holding process's id when DuckDB names it, else None."""

    def __init__(self, path: str | Path | None, field: str | None, message: str, pid: int | None = None) -> None:
        self.pid = pid  # pickled with the rest of __dict__ (InputError.__reduce__)
        super().__init__(path, field, message)


class StoreWriteError(AttribError):
    """The store file cannot be written: the disk is full, the file or its folder is read-only, a file-size limit.
    One line naming the store and the system's reason; exit code 1 (an output that cannot be written), not 3: the
    input is fine. The transaction that failed left nothing; what was committed before it stays."""

    exit_code = EXIT_FAILURE

    def __init__(self, path: str | Path, reason: str, note: str = "") -> None:
        self.path, self.reason, self.note = str(path), reason, note
        #: what the interrupted work had done (an ingest's IngestReport: the files stored whole before it), if known
        self.report: Any = None
        super().__init__(f"cannot write the store {path}: {reason}" + (f"; {note}" if note else ""))

    def __reduce__(self) -> tuple[Any, ...]:  # rebuilt from its parts (Exception pickles the one line only)
        return (type(self), (self.path, self.reason, self.note), self.__dict__)


#: DuckDB's words for a file it could not write, e.g. ``Failed to commit: Could not write file "s.duckdb.wal": No
#: space left on device``: the system's reason follows the file name.
_WRITE_WHY = re.compile(r'(?:Could not \w+ (?:to )?|Cannot open )file "[^"]*": *([^\n]+)', re.IGNORECASE)


#: The system's words for a store opened to write where it may not be (exit 1 as any unwritable output, not 3).
_NO_WRITE = re.compile(r"Permission denied|Read-only file system", re.IGNORECASE)


def _write_reason(error: BaseException) -> str:
    """Why DuckDB could not write the store, in the system's words ("No space left on device"), else its first line."""
    text = str(error)
    m = _WRITE_WHY.search(text)
    return m.group(1).strip() if m else text.splitlines()[0] if text else type(error).__name__


def _out_of_memory(error: BaseException) -> bool:
    """Whether a DuckDB error is its memory cap (told by :meth:`Store._room_for`), not the disk."""
    import duckdb

    return isinstance(error, duckdb.OutOfMemoryException) or "out of memory" in str(error).lower()


def is_interrupt(error: BaseException) -> bool:
    """Whether ``error`` is how DuckDB reports a Ctrl-C it caught during a query: ``duckdb.InterruptException``, or
    (duckdb 2.0.1, in COMMIT) ``RuntimeError: Query interrupted``. Callers turn it back into the user's
    KeyboardInterrupt, so an interrupted ingest or batch stops instead of counting a file or trace as failed."""
    import duckdb

    return isinstance(error, duckdb.InterruptException) or (
        isinstance(error, RuntimeError) and "query interrupted" in str(error).lower())


def default_path() -> Path:
    """``$ATTRIB_STORE`` (an empty or blank value counts as unset: it named the current folder) or
    ``./attrib.duckdb``, with ``~`` expanded."""
    env = os.environ.get("ATTRIB_STORE", "")
    return Path(env if env.strip() else DEFAULT_PATH).expanduser()


def check_store_file(path: str | os.PathLike[str]) -> None:
    """Refuse a folder or an existing file that is not a DuckDB database before DuckDB sees it: DuckDB 2 opens some
    such paths (a ``.json`` file) as a throw-away in-memory database, so writes would vanish without an error.
    ``~`` is expanded, as DuckDB expands it."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(path, None, "is a folder, not a store file (pass --store FILE.duckdb)")
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as f:
            head = f.read(12)
        if head[8:12] != b"DUCK":
            raise InputError(path, None, "not a DuckDB store (an existing file of another kind; pass --store "
                             "FILE.duckdb, a new or an attrib store file)")


def _connect(path: Path, read_only: bool) -> Any:
    """A DuckDB connection to ``path``; a file another process holds is a :class:`StoreLockedError` (told here, once:
    callers test the class, never DuckDB's text), any other failure one :class:`InputError` naming the file."""
    import duckdb

    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as e:
        if _LOCK_WORDS.search(str(e)):
            m = _LOCK_PID.search(str(e))
            pid = int(m.group(1)) if m else None
            who = f" (PID {pid})" if pid is not None else ""
            # to read, only a writer is in the way; to write, any process that has the file open, a reader too
            how = (" writing to it" if read_only else ", or anything else that holds it open, to write or only to "
                   "read (`attrib traces`, the app, a Python session)")
            raise StoreLockedError(path, None, f"the store is locked by another process{who}, e.g. an `attrib ingest` "
                                   f"or `attrib analyze --all`{how}; try again when it is done",
                                   pid=pid) from None
        if not read_only and _NO_WRITE.search(str(e)):  # a read-only file or folder: an output, not bad input
            raise StoreWriteError(path, _write_reason(e)) from None
        raise InputError(path, None, f"cannot open the store ({str(e).splitlines()[0]})") from None
    except duckdb.Error as e:
        raise InputError(path, None, f"not a DuckDB store ({str(e).splitlines()[0]})") from None


class Upserted(NamedTuple):
    """What :meth:`Store.upsert` did."""

    #: per trace given, whether it was stored anew or replaced (False: the same content was stored)
    changed: list[bool]
    #: the ids whose stored trace had other content, so was replaced (its verdicts dropped)
    replaced: list[str]


class Store:
    """A connection to one store file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str] | None = None, read_only: bool = False,
                 memory_limit: str | None = None, create: bool = True) -> None:
        import duckdb

        # ~ expanded here, once: DuckDB expands it, so the checks below must look at the file DuckDB opens
        self.path = Path(path).expanduser() if path is not None else default_path()
        empty = self.path.is_file() and self.path.stat().st_size == 0  # e.g. from mktemp: a new store, not a bad one
        if (read_only or not create) and (not self.path.exists() or empty):
            raise NotFoundError(f"{self.path}: no store here (run `attrib ingest PATH` first, or pass --store)")
        check_store_file(self.path)
        new = not self.path.exists() or empty
        self.created = new  # this call made the store (ingest gives it up again when nothing went in: discard)
        #: folders this call made for a new store (innermost last), so a store that is given up leaves none behind
        self.created_dirs: list[Path] = []
        #: the empty file that was there (resolved), which the store replaced: given up, it is emptied, not removed
        self._was_empty: Path | None = None
        if new:
            if empty:  # DuckDB refuses a zero-byte file; only one seen empty is removed, never a store that another
                real = self.path.resolve()  # a link's target: DuckDB makes the store there, and the link stays
                with contextlib.suppress(FileNotFoundError):  # process created since the check above
                    if real.stat().st_size == 0:
                        real.unlink()
                        self._was_empty = real
            missing = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # as a store file DuckDB cannot open there: bad input (exit 3), one line
                raise InputError(self.path, None, f"cannot open the store (cannot make its folder: "
                                 f"{e.strerror or e})") from None
            self.created_dirs = missing[::-1]
        self.con = _connect(self.path, read_only)
        self._depth = 0
        self._cap_now: float | None = None  # the memory cap in force, in bytes (raised by _set_cap)
        self.read_only = read_only
        #: the longest trace JSON in the store, in bytes (0: unknown or small), which a checkpoint must hold at once
        self._largest = 0
        try:
            # no progress bar on stdout from long inserts; a bounded page cache keeps memory flat over many files
            self.con.execute("SET enable_progress_bar = false")
            #: the cap as given (DuckDB prints it back rounded), to put back after a write that needed more
            self.memory_limit, self._cap_bytes = _set_memory_limit(
                self.con, memory_limit, "memory_limit" if memory_limit else "ATTRIB_STORE_MEMORY")
            self._cap_now = self._cap_bytes
            version = current_version(self.con)
            if read_only and 0 < version < LATEST:
                version = self._migrate_to_read()
            self._check_schema(read_only, version)
            if not read_only:
                migrate(self.con)
                self._largest = self._largest_stored()
        except BaseException as e:
            self.con.close()
            if new:  # nothing half-made left behind: the file did not exist before this call
                self.discard()
            if isinstance(e, duckdb.Error):
                raise InputError(self.path, None, f"cannot set up the store ({str(e).splitlines()[0]})") from None
            raise

    def discard(self) -> None:
        """Give up a store this object created, once closed: its WAL and the folders made for it go, and its file;
        but an empty file that was there before (from ``mktemp``, or ``touch`` behind a link) is left as it was,
        empty, never removed (a link to it stays a link)."""
        self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)  # DuckDB names it after the path given
        if self._was_empty is not None:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self._was_empty, 0)
        else:  # a link that pointed nowhere stays so: what goes is the file DuckDB made behind it
            self.path.resolve().unlink(missing_ok=True)
        for d in reversed(self.created_dirs):
            try:
                d.rmdir()
            except OSError:  # not empty (someone else wrote there) or already gone
                break

    def _migrate_to_read(self) -> int:
        """Read-only, a store an older attrib wrote is migrated first, once, by a short writable :class:`Store` open
        (its migration, lock and error handling), then read as asked; returns the schema version now. The first
        migration since the store shipped (the traces' tools) would otherwise have refused every read (``attrib
        traces list``, the app) until something wrote to it. A store that cannot be opened for writing (another
        process holds it, a read-only file or folder, a failed migration) is left as it is, and
        :meth:`_check_schema` refuses it, saying how to migrate it."""
        self.con.close()
        with contextlib.suppress(InputError, StoreWriteError):  # StoreLockedError included; a failed one rolls back
            Store(self.path, memory_limit=self.memory_limit).close()
        self.con = _connect(self.path, read_only=True)
        self.con.execute("SET enable_progress_bar = false")
        _set_memory_limit(self.con, self.memory_limit, "memory_limit")
        return current_version(self.con)

    def _check_schema(self, read_only: bool, v: int) -> None:
        """Refuse a DuckDB file that is not an attrib store (``v``: its schema version), or one written by a newer
        attrib."""
        if v > LATEST:
            raise InputError(self.path, "schema_version", f"store was written by a newer attrib (schema {v}; this "
                             f"one knows up to {LATEST}): upgrade attrib to use it")
        if v == 0:
            theirs = [r[0] for r in self.con.execute(
                "SELECT table_name FROM information_schema.tables ORDER BY table_name").fetchall()]
            if theirs:  # somebody's own database: never add attrib's tables to it
                raise InputError(self.path, None, f"a DuckDB file with tables of its own ({', '.join(theirs[:5])}), "
                                 "not an attrib store (pass --store with a new or an attrib store file)")
            if read_only:
                raise InputError(self.path, "schema_version", "not an attrib store (no schema_version table)")
        elif read_only and v != LATEST:
            raise InputError(self.path, "schema_version", f"store is at version {v}, this attrib needs {LATEST}; "
                             "open it once for writing to migrate it (an `attrib ingest` into it does, as does "
                             "attrib.open_store(path) in Python)")

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the database (a writable store checkpoints its log into the file first); the ``with`` block does it."""
        import duckdb

        if not self.read_only:  # closing checkpoints the log into the file: give it the room a huge trace needs
            with contextlib.suppress(duckdb.Error):
                self._room_to_checkpoint()
        self.con.close()

    def _largest_stored(self) -> int:
        """The longest trace JSON the store holds, in bytes, from DuckDB's storage statistics (no row is read);
        0 when they do not say."""
        import duckdb

        try:
            rows = self.con.execute("SELECT stats FROM pragma_storage_info('traces') "
                                    "WHERE column_name = 'trace_json'").fetchall()
        except duckdb.Error:
            return 0
        return max((int(m.group(1)) for (st,) in rows if (m := _MAX_LEN.search(str(st)))), default=0)

    def _room_to_checkpoint(self) -> None:
        """Raise the cap (until :meth:`_restore_cap`) so DuckDB can checkpoint a store holding a trace larger than
        the cap: on closing a store, or at a commit whose log passed DuckDB's threshold. Under the 256MB default a
        checkpoint that had to rewrite a 306 MiB trace failed with a FATAL error: the log was never folded into the
        file (each later open replayed all of it, 1 s and 1 GB of RSS), and a later write's commit invalidated the
        connection, so every file after it failed."""
        if self._largest:
            self._set_cap(_row_room(self._largest))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _has_table(self, name: str) -> bool:
        q = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
        return bool(_scalar(self.con, q, [name]))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together or not at all (re-entrant: inner blocks join the outer one)."""
        import duckdb

        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.con.begin()
        self._depth = 1
        failed = True
        try:
            yield self
        except BaseException as e:
            # a connection DuckDB invalidated (a failed write) refuses the rollback too: the error to tell is e
            with contextlib.suppress(duckdb.Error):
                self.con.rollback()
            if is_interrupt(e):  # Ctrl-C inside a DuckDB query: the user's KeyboardInterrupt, not a DuckDB error
                raise KeyboardInterrupt from e
            if isinstance(e, duckdb.IOException | duckdb.FatalException):  # the store's file, not the caller's data
                raise StoreWriteError(self.path, _write_reason(e)) from e
            raise
        else:
            try:
                with contextlib.suppress(duckdb.Error):  # a commit may checkpoint (a failed SET leaves the cap as is)
                    self._room_to_checkpoint()
                self.con.commit()
            except Exception as e:  # Ctrl-C during COMMIT: DuckDB may have committed; either way the block is whole
                if is_interrupt(e):
                    raise KeyboardInterrupt from e
                if isinstance(e, duckdb.Error) and not _out_of_memory(e):  # _room_for names the setting for those
                    raise StoreWriteError(self.path, _write_reason(e)) from e
                raise
            failed = False
        finally:
            self._depth = 0
            # a cap raised inside: an aborted transaction refuses the SET until it ends; after a failed write the
            # connection may refuse it too, and that must not hide the error on its way out
            with contextlib.suppress(*((duckdb.Error,) if failed else ())):
                self._restore_cap()

    # ------------------------------------------------------------------ traces
    def upsert_trace(self, trace: Trace, source_path: str | None = None) -> bool:
        """Insert or replace ``trace``; returns False when the same id with the same content is stored."""
        return self.upsert_traces([trace], source_path)[0]

    def upsert_traces(self, traces: list[Trace], source_path: str | list[str | None] | None = None,
                      release: bool = False) -> list[bool]:
        """:meth:`upsert`'s per-trace changed flags (what replaced what: :meth:`upsert`)."""
        return self.upsert(traces, source_path, release).changed

    def upsert(self, traces: list[Trace], source_path: str | list[str | None] | None = None,
               release: bool = False) -> Upserted:
        """Upsert many traces in one transaction with bulk (Arrow) inserts: per trace, whether it changed, and the
        ids whose stored trace had other content, so was replaced (its verdicts dropped).

        ``source_path``: the file they came from, or a list with each trace's; kept as an absolute path (``-``,
        standard input, as is), so it still names the file when the store is opened from another folder. If an id
        repeats within ``traces`` the last one wins. A trace that breaks the trace model's rules
        (:meth:`Trace.problem`, without the type pass readers make needless) is refused before anything is written.
        Content is compared by :func:`content_hash`: a trace moved together with its activation folder is unchanged,
        its verdicts kept, and its stored rows are rewritten to name the files where they are now.

        ``release=True``: the caller hands ``traces`` over (it holds them nowhere else): the list is emptied, and each
        trace is let go once its step rows are in, before its JSON goes to DuckDB, so a huge run is not in memory
        three times at once (as objects, as JSON, and in DuckDB); ``attrib ingest`` does this.
        """
        n = len(traces)
        for t in traces:
            t.check(check_types=False)
        sources = [_absolute(p) for p in (source_path if isinstance(source_path, list) else [source_path] * n)]
        # each trace's JSON is encoded here for its hash and again as it is inserted, never all at once: holding every
        # trace's JSON beside the traces themselves was one more copy of the whole file
        digests: list[str] = []
        legacy: list[str | None] = []  # the hash a store written before content_hash left paths out has for it
        largest = 0
        for t, src in zip(traces, sources, strict=True):
            blob = t.to_json()
            digest, old = _hashes(t, src, blob)  # the JSON made once, for the hash and the size
            digests.append(digest)
            legacy.append(old)
            largest = max(largest, len(blob))
            del blob, t
        self._largest = max(self._largest, largest)
        with self._room_for(_row_room(largest), largest), self.transaction():
            ids = list(dict.fromkeys(t.id for t in traces))
            stored = dict(self.con.execute("SELECT trace_id, content_hash FROM traces WHERE list_contains(?, trace_id)",
                                           [ids]).fetchall()) if ids else {}
            last = {t.id: i for i, t in enumerate(traces)}
            current = [i for i, t in enumerate(traces) if last[t.id] == i]
            same = {i for i in current if traces[i].id in stored and stored[traces[i].id] in (digests[i], legacy[i])}
            todo = [i for i in current if i not in same]
            replace = [traces[i].id for i in todo if traces[i].id in stored]
            moved = self._moved([(i, traces[i], stored[traces[i].id] == digests[i]) for i in sorted(same)
                                 if legacy[i] is not None])
            if replace or moved:
                gone = replace + [traces[i].id for i in moved]
                for table in ("steps", "labels", "activations", "traces"):
                    self.con.execute(f"DELETE FROM {table} WHERE list_contains(?, trace_id)", [gone])
            if replace:  # the verdicts went with the content they were made on; a moved trace keeps its own
                for table in ("attributions", "analysis_errors"):
                    self.con.execute(f"DELETE FROM {table} WHERE list_contains(?, trace_id)", [replace])
            rows = sorted([*todo, *moved])
            picked = [traces[i] for i in rows]
            if release:
                traces.clear()
            if picked:
                self._insert(picked, [digests[i] for i in rows], [sources[i] for i in rows], release)
        changed = set(todo)
        return Upserted([i in changed for i in range(n)], replace)

    def _moved(self, kept: list[tuple[int, Trace, bool]]) -> list[int]:
        """Of unchanged traces with activations ``(index, trace, hash as content_hash gives it)``, those whose stored
        rows are to be rewritten: the activation paths stored are other than the trace's now (it moved with its
        activation folder), or the stored hash is the older kind that held the paths (upgraded once, verdicts kept)."""
        if not kept:
            return []
        ids = [t.id for _, t, _ in kept]
        paths = dict(self.con.execute("SELECT trace_id, list(path ORDER BY step) FROM activations "
                                      "WHERE list_contains(?, trace_id) GROUP BY trace_id", [ids]).fetchall())
        return [i for i, t, new_hash in kept
                if not new_hash or paths.get(t.id) != [s.activation.path for s in t.steps if s.activation is not None]]

    @contextlib.contextmanager
    def _room_for(self, need: int, largest: int) -> Iterator[None]:
        """DuckDB's memory cap raised to at least ``need`` bytes for one write (a single huge trace, e.g. a 200 MB
        log of one run, does not fit the 256MB default), then put back; a write that still runs out of memory is
        one :class:`InputError` naming the setting to raise, not DuckDB's "could not allocate block"."""
        import duckdb

        self._set_cap(need)
        try:
            yield
        except duckdb.OutOfMemoryException as e:
            raise InputError(None, "ATTRIB_STORE_MEMORY", f"a trace of {largest / 2**20:.0f} MiB of JSON does not fit "
                             f"the store's memory cap ({self.memory_limit}); raise it, e.g. ATTRIB_STORE_MEMORY=4GB, "
                             f"or split the run ({str(e).splitlines()[0]})") from None
        finally:
            self._restore_cap()

    def _roomy(self, read: Callable[[], T]) -> T:
        """``read()`` (a query that writes nothing), rerun with DuckDB's memory cap raised by what DuckDB says it
        could not allocate, up to :data:`OOM_RETRIES` times, then the cap put back: reading one huge trace (a 200 MB
        run) needs more than the 256MB page-cache cap for a moment. Still out of memory: one :class:`InputError`
        naming the setting, not DuckDB's advice to ``SET memory_limit``."""
        import duckdb

        cap = self._cap_now
        try:
            for attempt in range(OOM_RETRIES + 1):
                try:
                    return read()
                except duckdb.OutOfMemoryException as e:
                    m = _ALLOC.search(str(e))
                    size = _bytes(m.group(1)) if m else None
                    # inside a transaction the error aborted it: no retry can run there
                    if size is None or cap is None or attempt == OOM_RETRIES or self._depth:
                        raise InputError(None, "ATTRIB_STORE_MEMORY", f"the store's memory cap ({self.memory_limit}) "
                                         "is too small for its largest trace; raise it, e.g. ATTRIB_STORE_MEMORY=4GB "
                                         f"({str(e).splitlines()[0]})") from None
                    cap += ROW_MEMORY_FACTOR * size
                    self._set_cap(cap)
            raise AssertionError("unreachable")
        finally:
            self._restore_cap()

    def _set_cap(self, n_bytes: float) -> None:
        """Raise DuckDB's memory cap to at least ``n_bytes`` for a huge write or read, never lowering a cap in force
        (two writes in one transaction keep the larger); :meth:`_restore_cap` puts the configured one back."""
        if self._cap_now is None or n_bytes <= self._cap_now:
            return
        self.con.execute(f"SET memory_limit = '{int(n_bytes) // 2**20 + 1}MiB'")
        self._cap_now = n_bytes

    def _restore_cap(self) -> None:
        """Put the configured memory cap back after :meth:`_set_cap`; inside a transaction, once it has ended (an
        aborted one refuses every statement, and the SET would hide the error that aborted it)."""
        if self._cap_now != self._cap_bytes and not self._depth:
            self.con.execute("SET memory_limit = '{}'".format(self.memory_limit.replace("'", "''")))
            self._cap_now = self._cap_bytes

    def _delete(self, trace_id: str, keep_results: bool) -> None:
        tables = ["steps", "labels", "activations", "traces"]
        if not keep_results:
            tables += ["attributions", "analysis_errors"]
        for t in tables:
            self.con.execute(f"DELETE FROM {t} WHERE trace_id = ?", [trace_id])

    def _insert(self, traces: list[Trace], digests: list[str], source_paths: list[str | None],
                release: bool = False) -> None:
        """Insert the rows of ``traces`` (none stored yet), inside the caller's transaction; with ``release``, the
        list is the only reference to them and is emptied as they go in.

        Memory follows the largest trace, not the file. Traces go in groups of at most :data:`JSON_BATCH_BYTES` of
        JSON (a larger trace alone); each JSON is encoded here and handed to DuckDB as an Arrow string array over the
        encoded bytes themselves (no decoded ``str``, no Arrow copy), and steps, labels and activations go in Arrow
        batches of :data:`STEP_BATCH` rows. A group's ``traces`` rows go before its step rows, so DuckDB copies a huge
        JSON while it holds nothing else of the file; with ``release``, after them, once the group's traces are let go
        (and the memory handed back to the system), so the objects and DuckDB's copies are never there together. One
        Arrow table of every step and a decoded copy of the JSON made a 240k-step Who&When run (268 MiB) peak at
        2.4 GiB RSS; 1.3-1.4 GiB now.
        """
        now = datetime.now()
        queue = list(zip(traces, digests, source_paths, strict=True))[::-1]  # the next trace is the last
        traces.clear()
        pending: bytes | None = None  # the JSON of the trace that did not fit the last group
        while queue:
            group: list[Trace] = []
            rows: list[_TraceRow] = []
            size = 0
            while queue:
                t, digest, source = queue[-1]
                blob, pending = (pending if pending is not None else t.to_json()), None
                if rows and size + len(blob) > JSON_BATCH_BYTES:
                    pending = blob
                    break
                queue.pop()
                group.append(t)
                rows.append((msgspec.structs.replace(t, steps=()), t.n_steps, digest, source, blob,
                             tool_agents(t.steps)))
                size += len(blob)
            del t, blob
            if not release:
                self._insert_traces(rows, now)
            self._insert_rows_of(group)
            if release:
                group.clear()
                if size >= TRIM_BYTES:
                    _hand_back_memory()
                self._insert_traces(rows, now)

    def _insert_rows_of(self, traces: list[Trace]) -> None:
        """The step, label and activation rows of ``traces``."""
        self._insert_batches("steps", ((t.id, x) for t in traces for x in t.steps))
        self._insert_batches("labels", ((t.id, t.label) for t in traces if t.label is not None))
        self._insert_batches("activations", ((t.id, x) for t in traces for x in t.steps if x.activation is not None))

    def _insert_traces(self, rows: list[_TraceRow], now: datetime) -> None:
        """The ``traces`` rows of ``(trace without its steps, step count, content hash, source path, JSON, tools)``;
        emptied here, so the JSON is freed as soon as DuckDB has its copy."""
        import pyarrow as pa

        s = pa.string()
        enc = _ENC.encode
        heads = [r[0] for r in rows]
        lengths = [len(r[4]) for r in rows]
        data = rows[0][4] if len(rows) == 1 else b"".join(r[4] for r in rows)  # one trace: its own bytes, no copy
        table = pa.table({
            "trace_id": pa.array([t.id for t in heads], s),
            "source_format": pa.array([t.source_format for t in heads], s),
            "source_path": pa.array([r[3] for r in rows], s),
            "task": pa.array([t.task for t in heads], s),
            "outcome": pa.array([t.outcome for t in heads], s),
            "final_answer": pa.array([t.final_answer for t in heads], s),
            "ground_truth": pa.array([t.ground_truth for t in heads], s),
            "agents": pa.array([list(t.agents) for t in heads], pa.list_(s)),
            "n_steps": pa.array([r[1] for r in rows], pa.int32()),
            "content_hash": pa.array([r[2] for r in rows], s),
            "metadata": pa.array([enc(t.metadata).decode() for t in heads], s),
            "trace_json": _string_array(data, lengths),
            "ingested_at": pa.array([now] * len(heads), pa.timestamp("us")),
            "tools": pa.array([enc(list(r[5])).decode() for r in rows], s),  # migration 2 put it after ingested_at
        })
        rows.clear()
        del data, heads
        self.con.from_arrow(table).insert_into("traces")

    def _insert_batches(self, table: str, items: Iterator[tuple[str, Any]]) -> None:
        """Insert ``(trace id, step or label)`` rows into ``table`` (steps, labels or activations), Arrow batches of
        :data:`STEP_BATCH` rows: what Python builds at once stays small however long the run."""
        build = _ROW_BUILDERS[table]
        while batch := list(itertools.islice(items, STEP_BATCH)):
            self.con.from_arrow(build(batch)).insert_into(table)

    def delete_trace(self, trace_id: str) -> bool:
        """Remove a trace and everything computed from it; False if it was not there."""
        with self.transaction():
            if not self.has_trace(trace_id):
                return False
            self._delete(trace_id, keep_results=False)
        return True

    def stored_otlp_part(self, trace_id: str) -> tuple[bool, str | None] | None:
        """For a stored OTLP trace: whether it is partial (``metadata.partial``: spans whose parents it lacks) and
        the file it was read from (absolute; ``-`` for standard input); None for an absent trace or another format.
        One query: ingest asks it of every OTLP trace it stores, to join a rotated export's parts."""
        row = self.con.execute("SELECT source_format, metadata, source_path FROM traces WHERE trace_id = ?",
                               [trace_id]).fetchone()
        if row is None or row[0] != "otlp":
            return None
        meta = msgspec.json.decode(row[1]) if row[1] else {}
        return bool(isinstance(meta, dict) and meta.get("partial")), row[2]

    def stored_sources(self, trace_ids: Iterable[str]) -> dict[str, tuple[str | None, str, int]]:
        """For those of ``trace_ids`` the store holds: the file each was read from (absolute; ``-`` for standard
        input; None if not known), its content hash (:func:`content_hash`) and how many verdicts it has. One query:
        ingest asks it to tell a changed run of the same file from another file's run under the same id."""
        ids = list(dict.fromkeys(trace_ids))
        if not ids:
            return {}
        rows = self.con.execute(
            "SELECT t.trace_id, t.source_path, t.content_hash, (SELECT count(*) FROM attributions a "
            "WHERE a.trace_id = t.trace_id) FROM traces t WHERE list_contains(?::VARCHAR[], t.trace_id)",
            [ids]).fetchall()
        return {r[0]: (r[1], r[2], int(r[3])) for r in rows}

    def has_trace(self, trace_id: str) -> bool:
        """Whether a trace with this id is stored."""
        return self.con.execute("SELECT 1 FROM traces WHERE trace_id = ?", [trace_id]).fetchone() is not None

    def stored_ids(self, trace_ids: Iterable[str]) -> set[str]:
        """Which of ``trace_ids`` the store holds (one query, however many ids)."""
        ids = list(dict.fromkeys(trace_ids))
        if not ids:
            return set()
        return {r[0] for r in self.con.execute("SELECT trace_id FROM traces WHERE list_contains(?::VARCHAR[], trace_id)",
                                               [ids]).fetchall()}

    def get_trace(self, trace_id: str) -> Trace:
        """The stored trace, exactly as ingested (label included). Raises :class:`NotFoundError`."""
        row = self._roomy(lambda: self.con.execute("SELECT trace_json FROM traces WHERE trace_id = ?",
                                                   [trace_id]).fetchone())
        if row is None:
            raise self.not_found(trace_id)
        return Trace.from_json(row[0])

    def get_trace_head(self, trace_id: str) -> tuple[Trace, int]:
        """The stored trace without its steps, and how many steps it has: every field but ``steps``, which is empty
        (``agents`` and ``label`` are kept), read from the small columns. With :meth:`get_steps` and
        :meth:`step_outline`, a view of a few steps of a huge run reads those rows, not the run's JSON (300 MB for
        240k steps) nor its other steps. Raises :class:`NotFoundError`."""
        row = self.con.execute(
            "SELECT t.source_format, t.task, t.outcome, t.final_answer, t.ground_truth, t.agents, t.metadata, "
            "t.n_steps, l.mistake_agent, l.mistake_step, l.reason FROM traces t LEFT JOIN labels l USING (trace_id) "
            "WHERE t.trace_id = ?", [trace_id]).fetchone()
        if row is None:
            raise self.not_found(trace_id)
        fmt, task, outcome, final, truth, agents, meta, n, m_agent, m_step, reason = row
        label = Label(mistake_agent=m_agent, mistake_step=m_step, reason=reason or "") if m_agent is not None else None
        head = Trace(id=trace_id, source_format=fmt, steps=(), task=task or "", outcome=outcome, final_answer=final,
                     ground_truth=truth, agents=tuple(agents), label=label,
                     metadata=msgspec.json.decode(meta) if meta else {})
        return head, int(n)

    def get_steps(self, trace_id: str, start: int = 0, stop: int | None = None) -> tuple[Step, ...]:
        """Steps ``start`` to ``stop - 1`` of a stored trace (to its last with ``stop`` None), as they were stored,
        activation included: only those rows are read (empty for an unknown id or a range past the end)."""
        sql = (
            "SELECT s.step, s.agent, s.role, s.content, s.tool_calls, s.tool_results, s.parents, s.start_time, "
            "s.end_time, s.tokens_in, s.tokens_out, s.metadata, a.path, a.hooks, a.format FROM steps s "
            "LEFT JOIN (SELECT step, path, hooks, format FROM activations WHERE trace_id = $id) a ON a.step = s.step "
            "WHERE s.trace_id = $id AND s.step >= $start" + (" AND s.step < $stop" if stop is not None else "")
            + " ORDER BY s.step")
        args: dict[str, Any] = {"id": trace_id, "start": int(start)}
        if stop is not None:
            args["stop"] = int(stop)
        rows = self._roomy(lambda: self.con.execute(sql, args).fetchall())
        return tuple(_step_of(r) for r in rows)

    def step_outline(self, trace_id: str, stop: int | None = None) -> tuple[list[int | None], float | None]:
        """What a view of some steps needs from the others, without their texts: the first parent of each step
        before ``stop`` (None for a step without parents; index = step), and the trace's first start time (of the
        earliest step that has one; None if none has)."""
        where = "trace_id = ?" + (" AND step < ?" if stop is not None else "")
        args: list[Any] = [trace_id] + ([int(stop)] if stop is not None else [])
        rows = self.con.execute(f"SELECT parents[1] FROM steps WHERE {where} ORDER BY step", args).fetchall()
        t0 = _scalar(self.con, "SELECT start_time FROM steps WHERE trace_id = ? AND start_time IS NOT NULL "
                     "ORDER BY step LIMIT 1", [trace_id])
        return [r[0] for r in rows], t0

    def not_found(self, trace_id: str) -> NotFoundError:
        """The error for an id the store does not hold, with a did-you-mean hint (to raise)."""
        hint = self._suggest(trace_id)
        return NotFoundError(f"{self.path}: no trace with id {trace_id!r}" + (f" (did you mean {hint}?)" if hint else ""))

    def _suggest(self, trace_id: str) -> str | None:
        """Up to three stored ids like ``trace_id``: containing it (any case), else nearest by edit distance
        (DuckDB's ``jaro_winkler_similarity``, so a typo such as 'whowhen-hand1' finds 'whowhen-hand-1')."""
        rows = self.con.execute("SELECT trace_id FROM traces WHERE trace_id ILIKE ? ORDER BY trace_id LIMIT 3",
                                [f"%{trace_id}%"]).fetchall()
        if not rows:
            rows = self.con.execute(
                "SELECT trace_id FROM traces WHERE jaro_winkler_similarity(lower(trace_id), lower(?)) > 0.9 "
                "ORDER BY jaro_winkler_similarity(lower(trace_id), lower(?)) DESC, trace_id LIMIT 3",
                [trace_id, trace_id]).fetchall()
        return ", ".join(r[0] for r in rows) or None

    def iter_traces(self, ids: Iterable[str] | None = None, **filters: Any) -> Iterator[Trace]:
        """Stored traces one at a time (all matching ``filters`` when ``ids`` is None)."""
        for tid in (ids if ids is not None else self.trace_ids(**filters)):
            yield self.get_trace(tid)

    def _where(self, source: str | None, outcome: str | None, agent: str | None,
               labelled: bool | None = None) -> tuple[str, list[Any]]:
        conds, args = [], []
        if source is not None:
            conds.append("(source_format = ? OR metadata->>'subset' = ?)")
            args += [source, source]
        if outcome is not None:
            conds.append("outcome = ?")
            args.append(outcome)
        if agent is not None:
            conds.append("list_contains(agents, ?)")
            args.append(agent)
        if labelled is not None:
            conds.append(("" if labelled else "NOT ") + "EXISTS (SELECT 1 FROM labels l WHERE l.trace_id = t.trace_id)")
        return (" WHERE " + " AND ".join(conds)) if conds else "", args

    def list_traces(self, source: str | None = None, outcome: str | None = None, agent: str | None = None,
                    limit: int | None = None, offset: int = 0, labelled: bool | None = None) -> list[dict[str, Any]]:
        """Summaries (id, format, outcome, steps, agents, task, label, path, time, tools), ordered by id; ``tools``
        lists which of the agents are tools (:meth:`trace_tools`).

        ``source`` matches the source format ('whowhen', 'otlp', 'chat') or the Who&When subset
        ('algorithm', 'hand'); ``agent`` keeps traces in which that agent speaks.
        """
        where, args = self._where(source, outcome, agent, labelled)
        sql = ("SELECT t.trace_id, t.source_format, t.outcome, t.n_steps, t.agents, t.task, t.source_path, "
               "t.ingested_at, l.mistake_agent, l.mistake_step, t.metadata->>'subset' AS subset, t.tools "
               f"FROM traces t LEFT JOIN labels l USING (trace_id){where} ORDER BY t.trace_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if offset:
            sql += f" OFFSET {int(offset)}"
        cols = ["trace_id", "source_format", "outcome", "n_steps", "agents", "task", "source_path", "ingested_at",
                "mistake_agent", "mistake_step", "subset", "tools"]
        rows = [dict(zip(cols, r, strict=True)) for r in self.con.execute(sql, args).fetchall()]
        for r in rows:
            r["tools"] = list(_tools(r["tools"]))
        return rows

    def trace_tools(self, trace_id: str) -> tuple[str, ...]:
        """The agents of a stored trace that are tools (:func:`attrib.trace.tool_agents`, kept at ingest), in order
        of first step; () for an unknown id. :meth:`list_traces` gives them too (``tools``)."""
        return _tools(_scalar(self.con, "SELECT tools FROM traces WHERE trace_id = ?", [trace_id]))

    def trace_ids(self, source: str | None = None, outcome: str | None = None, agent: str | None = None,
                  limit: int | None = None, offset: int = 0, labelled: bool | None = None) -> list[str]:
        """Ids of the traces matching the filters (same meaning as :meth:`list_traces`)."""
        where, args = self._where(source, outcome, agent, labelled)
        sql = f"SELECT trace_id FROM traces t{where} ORDER BY trace_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if offset:
            sql += f" OFFSET {int(offset)}"
        return [r[0] for r in self.con.execute(sql, args).fetchall()]

    def count_traces(self, source: str | None = None, outcome: str | None = None, agent: str | None = None) -> int:
        """How many traces are stored, optionally only those of a source format, an outcome or with an agent."""
        where, args = self._where(source, outcome, agent)
        return int(_scalar(self.con, f"SELECT count(*) FROM traces t{where}", args))

    def page_traces(self, filters: TraceFilter | None = None, page: int = 0,
                    page_size: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page of traces joined with their label and ``filters.method``'s verdict, and the match count.

        Rows carry trace_id, source, outcome, n_steps, verdict_agent/step, confidence, truth_agent/step,
        agents, task; ``filters.agreement`` keeps traces whose verdict agrees/disagrees with the annotation.
        """
        from attrib.store.queries import page_traces

        return page_traces(self.con, filters or TraceFilter(), page, page_size)

    def facets(self) -> dict[str, list[str]]:
        """The distinct values each :class:`TraceFilter` field can take in this store."""
        from attrib.store.queries import facets

        return facets(self.con)

    def touched_last(self) -> str | None:
        """The id of the trace ingested or analyzed last (latest ingest or saved verdict), None when empty."""
        from attrib.store.queries import touched_last

        return touched_last(self.con)

    def count_steps(self) -> int:
        """How many steps are stored, over all traces."""
        return int(_scalar(self.con, "SELECT count(*) FROM steps"))

    def activations(self, trace_id: str) -> list[dict[str, Any]]:
        """The activation index of one trace: ``[{step, path, hooks, format}]``."""
        rows = self.con.execute("SELECT step, path, hooks, format FROM activations WHERE trace_id = ? ORDER BY step",
                                [trace_id]).fetchall()
        return [dict(zip(("step", "path", "hooks", "format"), r, strict=True)) for r in rows]

    # ------------------------------------------------------------------ batch selection
    def _selection(self, where: str | None, skip_method: str | None,
                   skip_ranker: str | None = None) -> tuple[str, str, list[Any]]:
        """(matched-count SQL, to-do row-id SQL, its args) for a ``where`` filter and the resume anti-join
        (``skip_ranker``: only verdicts whose ``evidence.ranker`` is this one count as done)."""
        cond = f"({where})" if where else "TRUE"
        todo = f"SELECT t.rowid FROM traces t WHERE {cond}"
        if skip_method is None:
            return f"SELECT count(*) FROM traces t WHERE {cond}", todo, []
        same = " AND json_extract_string(a.json, '$.evidence.ranker') = ?" if skip_ranker is not None else ""
        todo += (" AND NOT EXISTS (SELECT 1 FROM attributions a WHERE a.trace_id = t.trace_id AND a.method = ?"
                 f"{same})")
        return f"SELECT count(*) FROM traces t WHERE {cond}", todo, [skip_method, *([skip_ranker] if same else [])]

    def _run_filter(self, where: str | None, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        """Run a query built around a caller's ``where``; a bad filter is one :class:`InputError` line."""
        import duckdb

        try:
            return self.con.execute(sql, args).fetchall()
        except duckdb.Error as e:
            raise InputError(self.path, "where", f"{where!r} is not a valid filter over the traces "
                             f"table ({str(e).splitlines()[0]})") from None

    def count_selected(self, where: str | None = None, skip_method: str | None = None,
                       skip_ranker: str | None = None) -> tuple[int, int]:
        """(traces matching ``where``, of which have no verdict from ``skip_method`` yet).

        ``where`` is a SQL filter over the ``traces`` table (alias ``t``, ``rowid`` usable); None keeps
        every trace. With ``skip_method=None`` nothing is skipped and both numbers are equal.
        A filter DuckDB rejects raises :class:`InputError` (field ``where``).
        """
        count_sql, todo_sql, args = self._selection(where, skip_method, skip_ranker)
        matched = self._run_filter(where, count_sql, [])[0][0]
        todo = self._run_filter(where, f"SELECT count(*) FROM ({todo_sql})", args)[0][0]
        return int(matched), int(todo)

    def stream_trace_json(self, where: str | None = None, skip_method: str | None = None,
                          batch_size: int = 64, skip_ranker: str | None = None) -> Iterator[list[tuple[str, str]]]:
        """The selected traces' stored JSON, ``batch_size`` ``(trace_id, json)`` pairs at a time, in table order.

        Selection as in :meth:`count_selected`; it is fixed when this is called (a bad ``where``
        raises here, not at the first ``next``), so verdicts saved while iterating do not change it.
        Two steps, both measured to be the fast shapes for DuckDB: (1) the row ids to do, from a
        query over the small columns only; (2) one plain sequential scan of ``trace_json`` on a
        cursor of its own, as an Arrow stream (one batch in memory; DB-API ``fetchmany`` buffered
        and grew with the table), keeping the rows to do. A selective filter or point lookup on a
        table of large strings cost 5-50 ms per trace, a plain scan well under one. This
        connection may write meanwhile (DuckDB MVCC).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        _, todo_sql, args = self._selection(where, skip_method, skip_ranker)
        todo = {r[0] for r in self._run_filter(where, todo_sql, args)}
        return self._scan_json(todo, batch_size)

    def _scan_json(self, todo: set[int], size: int) -> Iterator[list[tuple[str, str]]]:
        if not todo:
            return
        cur = self.con.cursor()
        try:
            reader = cur.sql("SELECT rowid, trace_id, trace_json FROM traces").to_arrow_reader(max(size, 256))
            part: list[tuple[str, str]] = []
            left = len(todo)
            for batch in reader:
                rowids, tids, blobs = (batch.column(i).to_pylist() for i in range(3))
                for rowid, tid, js in zip(rowids, tids, blobs, strict=True):
                    if rowid in todo:
                        part.append((tid, js))
                        left -= 1
                        if len(part) == size:
                            yield part
                            part = []
                if not left:
                    break
            if part:
                yield part
        finally:
            cur.close()

    # ------------------------------------------------------------------ attributions
    def save_attribution(self, attr: Attribution) -> None:
        """Store (or replace) a method's verdict on a trace; clears that method's recorded error."""
        self.save_attributions([attr])

    def save_attributions(self, attrs: Iterable[Attribution]) -> int:
        """Store (or replace, per trace id + method) many verdicts in one transaction; returns how many were given.

        Clears the recorded errors of those (trace, method) pairs. One multi-row ``INSERT OR
        REPLACE ... VALUES`` per :data:`WRITE_CHUNK` rows: ``executemany`` runs one statement per
        row (several ms each on DuckDB, as much as attributing a trace). If a pair repeats, the
        last verdict wins.
        """
        given = list(attrs)
        rows = list({(a.trace_id, a.method): (a.trace_id, a.method, a.agent, a.step, a.confidence,
                                              a.to_json().decode()) for a in given}.values())
        if not rows:
            return 0
        ids = sorted({r[0] for r in rows})
        orphan = self.con.execute("SELECT u.x FROM unnest(?::VARCHAR[]) u(x) ANTI JOIN traces t ON t.trace_id = u.x "
                                  "LIMIT 1", [ids]).fetchone()
        if orphan is not None:  # a verdict on a trace the store does not hold: none of the batch is saved
            raise NotFoundError(f"{self.path}: no trace with id {orphan[0]!r} to attach a verdict to "
                                "(ingest the trace first)")
        with self.transaction():
            self._insert_rows("attributions", ("trace_id", "method", "agent", "step", "confidence", "json"), rows)
            self._clear_errors([(r[0], r[1]) for r in rows])
        return len(given)

    def _insert_rows(self, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """``INSERT OR REPLACE`` ``rows`` (unique keys) in multi-row statements of :data:`WRITE_CHUNK` rows, stamped
        ``created_at`` now: DuckDB's replace keeps the columns a statement leaves out, so a re-analysis
        (``--force``) kept its first verdict's time and the listings ordered by time put it among the old ones."""
        now = datetime.now()  # local time, as ingested_at and the column's default
        cols, rows = (*cols, "created_at"), [(*r, now) for r in rows]
        one = "(" + ", ".join("?" * len(cols)) + ")"
        for i in range(0, len(rows), WRITE_CHUNK):
            chunk = rows[i:i + WRITE_CHUNK]
            self.con.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES "
                             + ", ".join([one] * len(chunk)), [x for r in chunk for x in r])

    def _clear_errors(self, pairs: list[tuple[str, str]]) -> None:
        by_method: dict[str, list[str]] = {}
        for tid, method in pairs:
            by_method.setdefault(method, []).append(tid)
        for method, tids in by_method.items():
            self.con.execute("DELETE FROM analysis_errors WHERE method = ? AND list_contains(?, trace_id)",
                             [method, tids])

    def get_attributions(self, trace_id: str, method: str | None = None) -> list[Attribution]:
        """Every stored verdict on a trace (or just ``method``'s), oldest first."""
        sql = "SELECT json FROM attributions WHERE trace_id = ?"
        args: list[Any] = [trace_id]
        if method is not None:
            sql += " AND method = ?"
            args.append(method)
        rows = self.con.execute(sql + " ORDER BY created_at, method", args).fetchall()
        return [Attribution.from_json(r[0]) for r in rows]

    def analyzed_ids(self, method: str) -> set[str]:
        """Ids of traces that already have a verdict from ``method`` (to resume batch runs)."""
        return {r[0] for r in self.con.execute("SELECT trace_id FROM attributions WHERE method = ?", [method]).fetchall()}

    def save_error(self, trace_id: str, method: str, error: str) -> None:
        """Record that ``method`` failed on a trace (replaces an earlier error for the pair)."""
        self.save_errors([(trace_id, method, error)])

    def save_errors(self, errors: Iterable[tuple[str, str, str]]) -> int:
        """Record many ``(trace_id, method, error)`` failures in one transaction (replacing per pair, last wins)."""
        given = list(errors)
        rows = list({(t, m): (t, m, str(e)) for t, m, e in given}.values())
        if rows:
            with self.transaction():
                self._insert_rows("analysis_errors", ("trace_id", "method", "error"), rows)
        return len(given)

    def errors(self, method: str | None = None) -> list[dict[str, Any]]:
        """The recorded analysis failures (trace id, method, error, when), optionally of one method."""
        sql = "SELECT trace_id, method, error, created_at FROM analysis_errors"
        args: list[Any] = []
        if method is not None:
            sql += " WHERE method = ?"
            args.append(method)
        rows = self.con.execute(sql + " ORDER BY trace_id, method", args).fetchall()
        return [dict(zip(("trace_id", "method", "error", "created_at"), r, strict=True)) for r in rows]

    # ------------------------------------------------------------------ export
    def export_parquet(self, directory: str | Path) -> list[Path]:
        """Write every table to ``DIR/<table>.parquet``; returns the files written."""
        import duckdb

        out = Path(directory)
        if out.exists() and not out.is_dir():  # an output that cannot be written: exit 1, as for --otlp / --plot
            raise AttribError(f"{out}: is a file; --parquet wants a folder")
        out.mkdir(parents=True, exist_ok=True)
        for t in TABLES:  # refuse before writing anything, so no table is left half-exported
            if (out / f"{t}.parquet").is_dir():
                raise AttribError(f"{out / f'{t}.parquet'}: is a folder; cannot write the table there")
        written = []
        for t in TABLES:
            p = out / f"{t}.parquet"
            tmp = out / f".{t}.parquet.tmp"
            target = str(tmp).replace("'", "''")
            try:  # a store holding one huge trace needs more than the memory cap for a moment: given, then taken back
                self._roomy(functools.partial(self.con.execute,
                                              f"COPY (SELECT * FROM {t}) TO '{target}' (FORMAT parquet)"))
            except duckdb.Error as e:
                tmp.unlink(missing_ok=True)
                raise AttribError(f"{p}: cannot write ({str(e).splitlines()[0]})") from None
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            tmp.replace(p)  # each table appears whole or not at all
            written.append(p)
        return written

    def snapshot(self) -> dict[str, Any]:
        """Row counts and content hashes: what a test compares to prove a failed ingest left nothing."""
        counts = {t: int(_scalar(self.con, f"SELECT count(*) FROM {t}")) for t in TABLES}
        hashes = self.con.execute("SELECT trace_id, content_hash FROM traces ORDER BY trace_id").fetchall()
        return {"counts": counts, "hashes": hashes}


def open_store(path: str | os.PathLike[str] | None = None, read_only: bool = False, memory_limit: str | None = None,
               create: bool = True) -> Store:
    """Open (creating and migrating if needed) the store at ``path`` (default ``./attrib.duckdb``).

    ``memory_limit`` bounds DuckDB's page cache (default 256MB or ``$ATTRIB_STORE_MEMORY``); ``create=False``
    opens only a store that exists (NotFoundError otherwise), for work that reads traces from it.
    A store another process holds locked raises :class:`StoreLockedError` (an :class:`InputError`, exit 3).
    """
    return Store(path, read_only=read_only, memory_limit=memory_limit, create=create)


__all__ = ["DEFAULT_PATH", "Store", "StoreLockedError", "StoreWriteError", "Upserted", "check_store_file",
           "content_hash", "default_path", "is_interrupt", "matches_stored", "open_store"]
