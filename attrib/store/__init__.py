"""The embedded store: traces, steps, labels, activation index and attributions in one DuckDB file.

``open_store()`` opens ``./attrib.duckdb`` (or ``$ATTRIB_STORE``, or the path given), applying
schema migrations. Traces are upserted by id + content hash: identical content is a no-op,
changed content replaces the old rows (and drops the attributions computed from them). The full
trace JSON is kept beside the relational rows, so :meth:`Store.get_trace` returns exactly what was
stored, labels included. duckdb and pyarrow are imported on first use to keep ``attrib --help`` fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from attrib.errors import InputError, NotFoundError
from attrib.store.schema import LATEST, TABLES, current_version, migrate
from attrib.trace import Attribution, Trace

DEFAULT_PATH = "attrib.duckdb"
_ENC = msgspec.json.Encoder()


def default_path() -> Path:
    """``$ATTRIB_STORE`` or ``./attrib.duckdb``."""
    return Path(os.environ.get("ATTRIB_STORE", DEFAULT_PATH))


class Store:
    """A connection to one store file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path | None = None, read_only: bool = False) -> None:
        import duckdb

        self.path = Path(path) if path is not None else default_path()
        if read_only and not self.path.exists():
            raise NotFoundError(f"{self.path}: no store here (run `attrib ingest PATH` first, or pass --store)")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            raise InputError(self.path, None, f"cannot open the store ({str(e).splitlines()[0]})") from None
        except duckdb.Error as e:
            raise InputError(self.path, None, f"not a DuckDB store ({str(e).splitlines()[0]})") from None
        self._depth = 0
        if read_only:
            v = current_version(self.con)
            if v != LATEST:
                raise InputError(self.path, "schema_version", f"store is at version {v}, this attrib needs {LATEST}; "
                                 "open it once without read-only to migrate")
        else:
            migrate(self.con)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _has_table(self, name: str) -> bool:
        q = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
        return bool(self.con.execute(q, [name]).fetchone()[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together or not at all (re-entrant: inner blocks join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.con.begin()
        self._depth = 1
        try:
            yield self
        except BaseException:
            self.con.rollback()
            raise
        else:
            self.con.commit()
        finally:
            self._depth = 0

    # ------------------------------------------------------------------ traces
    def upsert_trace(self, trace: Trace, source_path: str | None = None) -> bool:
        """Insert or replace ``trace``; returns False when the same id with the same content is stored."""
        data = trace.to_json()
        digest = hashlib.sha256(data).hexdigest()
        with self.transaction():
            row = self.con.execute("SELECT content_hash FROM traces WHERE trace_id = ?", [trace.id]).fetchone()
            if row is not None and row[0] == digest:
                return False
            if row is not None:
                self._delete(trace.id, keep_results=False)
            self._insert(trace, data, digest, source_path)
        return True

    def _delete(self, trace_id: str, keep_results: bool) -> None:
        tables = ["steps", "labels", "activations", "traces"]
        if not keep_results:
            tables += ["attributions", "analysis_errors"]
        for t in tables:
            self.con.execute(f"DELETE FROM {t} WHERE trace_id = ?", [trace_id])

    def _insert(self, trace: Trace, data: bytes, digest: str, source_path: str | None) -> None:
        import pyarrow as pa

        con = self.con
        con.execute(
            "INSERT INTO traces (trace_id, source_format, source_path, task, outcome, final_answer, ground_truth, "
            "agents, n_steps, content_hash, metadata, trace_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [trace.id, trace.source_format, source_path, trace.task, trace.outcome, trace.final_answer,
             trace.ground_truth, list(trace.agents), trace.n_steps, digest, _ENC.encode(trace.metadata).decode(),
             data.decode()],
        )
        steps = trace.steps
        enc = _ENC.encode
        table = pa.table({
            "trace_id": pa.array([trace.id] * len(steps), pa.string()),
            "step": pa.array([s.index for s in steps], pa.int32()),
            "agent": pa.array([s.agent for s in steps], pa.string()),
            "role": pa.array([s.role for s in steps], pa.string()),
            "content": pa.array([s.content for s in steps], pa.string()),
            "tool_calls": pa.array([enc(s.tool_calls).decode() if s.tool_calls else None for s in steps], pa.string()),
            "tool_results": pa.array([enc(s.tool_results).decode() if s.tool_results else None for s in steps],
                                     pa.string()),
            "parents": pa.array([list(s.parents) for s in steps], pa.list_(pa.int32())),
            "start_time": pa.array([s.start_time for s in steps], pa.float64()),
            "end_time": pa.array([s.end_time for s in steps], pa.float64()),
            "tokens_in": pa.array([s.tokens_in for s in steps], pa.int64()),
            "tokens_out": pa.array([s.tokens_out for s in steps], pa.int64()),
            "metadata": pa.array([enc(s.metadata).decode() if s.metadata else None for s in steps], pa.string()),
        })
        con.register("_attrib_steps", table)
        try:
            con.execute("INSERT INTO steps SELECT * FROM _attrib_steps")
        finally:
            con.unregister("_attrib_steps")
        if trace.label is not None:
            lb = trace.label
            con.execute("INSERT INTO labels VALUES (?, ?, ?, ?)", [trace.id, lb.mistake_agent, lb.mistake_step, lb.reason])
        acts = [(trace.id, s.index, s.activation.path, list(s.activation.hooks), s.activation.format)
                for s in steps if s.activation is not None]
        if acts:
            con.executemany("INSERT INTO activations VALUES (?, ?, ?, ?, ?)", acts)

    def delete_trace(self, trace_id: str) -> bool:
        """Remove a trace and everything computed from it; False if it was not there."""
        with self.transaction():
            if not self.has_trace(trace_id):
                return False
            self._delete(trace_id, keep_results=False)
        return True

    def has_trace(self, trace_id: str) -> bool:
        return self.con.execute("SELECT 1 FROM traces WHERE trace_id = ?", [trace_id]).fetchone() is not None

    def get_trace(self, trace_id: str) -> Trace:
        """The stored trace, exactly as ingested (label included). Raises :class:`NotFoundError`."""
        row = self.con.execute("SELECT trace_json FROM traces WHERE trace_id = ?", [trace_id]).fetchone()
        if row is None:
            hint = self._suggest(trace_id)
            raise NotFoundError(f"{self.path}: no trace with id {trace_id!r}" + (f" (did you mean {hint}?)" if hint else ""))
        return Trace.from_json(row[0])

    def _suggest(self, trace_id: str) -> str | None:
        rows = self.con.execute("SELECT trace_id FROM traces WHERE trace_id ILIKE ? ORDER BY trace_id LIMIT 3",
                                [f"%{trace_id}%"]).fetchall()
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
        """Summaries (id, format, outcome, steps, agents, task, label, path, time), ordered by id.

        ``source`` matches the source format ('whowhen', 'otlp', 'chat') or the Who&When subset
        ('algorithm', 'hand'); ``agent`` keeps traces in which that agent speaks.
        """
        where, args = self._where(source, outcome, agent, labelled)
        sql = ("SELECT t.trace_id, t.source_format, t.outcome, t.n_steps, t.agents, t.task, t.source_path, "
               "t.ingested_at, l.mistake_agent, l.mistake_step, t.metadata->>'subset' AS subset "
               f"FROM traces t LEFT JOIN labels l USING (trace_id){where} ORDER BY t.trace_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if offset:
            sql += f" OFFSET {int(offset)}"
        cols = ["trace_id", "source_format", "outcome", "n_steps", "agents", "task", "source_path", "ingested_at",
                "mistake_agent", "mistake_step", "subset"]
        return [dict(zip(cols, r, strict=True)) for r in self.con.execute(sql, args).fetchall()]

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
        where, args = self._where(source, outcome, agent)
        return int(self.con.execute(f"SELECT count(*) FROM traces t{where}", args).fetchone()[0])

    def count_steps(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM steps").fetchone()[0])

    def activations(self, trace_id: str) -> list[dict[str, Any]]:
        """The activation index of one trace: ``[{step, path, hooks, format}]``."""
        rows = self.con.execute("SELECT step, path, hooks, format FROM activations WHERE trace_id = ? ORDER BY step",
                                [trace_id]).fetchall()
        return [dict(zip(("step", "path", "hooks", "format"), r, strict=True)) for r in rows]

    # ------------------------------------------------------------------ attributions
    def save_attribution(self, attr: Attribution) -> None:
        """Store (or replace) a method's verdict on a trace; clears that method's recorded error."""
        self.save_attributions([attr])

    def save_attributions(self, attrs: Iterable[Attribution]) -> int:
        rows = [(a.trace_id, a.method, a.agent, a.step, a.confidence, a.to_json().decode()) for a in attrs]
        if not rows:
            return 0
        with self.transaction():
            self.con.executemany("INSERT OR REPLACE INTO attributions (trace_id, method, agent, step, confidence, json) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.con.executemany("DELETE FROM analysis_errors WHERE trace_id = ? AND method = ?",
                                 [(r[0], r[1]) for r in rows])
        return len(rows)

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
        self.con.execute("INSERT OR REPLACE INTO analysis_errors (trace_id, method, error) VALUES (?, ?, ?)",
                         [trace_id, method, str(error)])

    def errors(self, method: str | None = None) -> list[dict[str, Any]]:
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
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for t in TABLES:
            p = out / f"{t}.parquet"
            target = str(p).replace("'", "''")
            self.con.execute(f"COPY (SELECT * FROM {t}) TO '{target}' (FORMAT parquet)")
            written.append(p)
        return written

    def snapshot(self) -> dict[str, Any]:
        """Row counts and content hashes: what a test compares to prove a failed ingest left nothing."""
        counts = {t: int(self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}
        hashes = self.con.execute("SELECT trace_id, content_hash FROM traces ORDER BY trace_id").fetchall()
        return {"counts": counts, "hashes": hashes}


def open_store(path: str | Path | None = None, read_only: bool = False) -> Store:
    """Open (creating and migrating if needed) the store at ``path`` (default ``./attrib.duckdb``)."""
    return Store(path, read_only=read_only)


__all__ = ["DEFAULT_PATH", "Store", "default_path", "open_store"]
