"""The store's schema as an ordered list of migrations; :func:`migrate` applies the missing ones.

Add a migration by appending ``(next_version, sql)``; never edit one that has shipped. Each runs in
its own transaction and records itself in ``schema_version``.
"""

from __future__ import annotations

from typing import Any

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE traces (
            trace_id      VARCHAR PRIMARY KEY,
            source_format VARCHAR NOT NULL,
            source_path   VARCHAR,
            task          VARCHAR,
            outcome       VARCHAR NOT NULL,
            final_answer  VARCHAR,
            ground_truth  VARCHAR,
            agents        VARCHAR[] NOT NULL,
            n_steps       INTEGER NOT NULL,
            content_hash  VARCHAR NOT NULL,
            metadata      JSON,
            trace_json    VARCHAR NOT NULL,
            ingested_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE steps (
            trace_id     VARCHAR NOT NULL,
            step         INTEGER NOT NULL,
            agent        VARCHAR NOT NULL,
            role         VARCHAR,
            content      VARCHAR,
            tool_calls   JSON,
            tool_results JSON,
            parents      INTEGER[],
            start_time   DOUBLE,
            end_time     DOUBLE,
            tokens_in    BIGINT,
            tokens_out   BIGINT,
            metadata     JSON
        );
        CREATE TABLE labels (
            trace_id      VARCHAR NOT NULL,
            mistake_agent VARCHAR NOT NULL,
            mistake_step  INTEGER NOT NULL,
            reason        VARCHAR
        );
        CREATE TABLE activations (
            trace_id VARCHAR NOT NULL,
            step     INTEGER NOT NULL,
            path     VARCHAR NOT NULL,
            hooks    VARCHAR[],
            format   VARCHAR
        );
        CREATE TABLE attributions (
            trace_id   VARCHAR NOT NULL,
            method     VARCHAR NOT NULL,
            agent      VARCHAR,
            step       INTEGER,
            confidence DOUBLE,
            json       VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (trace_id, method)
        );
        CREATE TABLE analysis_errors (
            trace_id   VARCHAR NOT NULL,
            method     VARCHAR NOT NULL,
            error      VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (trace_id, method)
        );
        """,
    ),
    (
        # each trace's tools (attrib.trace.tool_agents: the agents every step of which is a tool result under the
        # tool's own name), kept beside its agents at ingest so `attrib traces list` reads them from the row instead
        # of grouping every step of every listed run; the rows stored before are filled here from their step rows,
        # by the same rule. JSON text rather than VARCHAR[]: DuckDB updates a list column by rewriting the whole row,
        # which for a 300 MB trace_json did not fit the store's memory cap; a text column is updated in place.
        2,
        """
        ALTER TABLE traces ADD COLUMN tools JSON;
        UPDATE traces SET tools = coalesce((
            SELECT to_json(list(agent ORDER BY first)) FROM (
                SELECT s.agent, min(s.step) AS first FROM steps s WHERE s.trace_id = traces.trace_id
                GROUP BY s.agent
                HAVING bool_and(coalesce(s.role = 'tool'
                                         AND json_extract_string(s.tool_results, '$[0].name') = s.agent, false))
            )
        ), '[]')
        """,
    ),
]

#: The tables :meth:`Store.export_parquet` writes, in dependency order.
TABLES = ("traces", "steps", "labels", "activations", "attributions", "analysis_errors")
LATEST = MIGRATIONS[-1][0]


def current_version(con: Any) -> int:
    """The schema version recorded in the database (0 for a new file)."""
    q = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    if not con.execute(q).fetchone()[0]:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: Any) -> int:
    """Apply every migration newer than the database's version; returns the resulting version."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
                "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
    version = current_version(con)
    for v, sql in MIGRATIONS:
        if v <= version:
            continue
        con.begin()
        try:
            for stmt in (s.strip() for s in sql.split(";")):
                if stmt:
                    con.execute(stmt)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [v])
            con.commit()
        except Exception:
            con.rollback()
            raise
        version = v
    return version
