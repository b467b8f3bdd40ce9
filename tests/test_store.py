"""Store: migrations, idempotent upsert, lossless round trip, queries, attributions, transactions, Parquet."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest
from _store_lock import hold_write_lock

from attrib.errors import NotFoundError
from attrib.readers import load_trace
from attrib.store import open_store
from attrib.store.schema import LATEST, MIGRATIONS
from attrib.trace import Attribution, Step, StepBlame, Trace


def test_migrations_apply_once(tmp_path: Path) -> None:
    p = tmp_path / "s.duckdb"
    for _ in range(2):
        with open_store(p) as st:
            rows = st.con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
            assert [r[0] for r in rows] == [v for v, _ in MIGRATIONS] and rows[-1][0] == LATEST
    with open_store(p, read_only=True) as st:
        assert st.count_traces() == 0


def test_read_only_open_of_a_missing_store_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no store"):
        open_store(tmp_path / "absent.duckdb", read_only=True)
    assert not (tmp_path / "absent.duckdb").exists()


def test_upsert_is_idempotent_and_replaces_changed_content(bundled: Path, tmp_store) -> None:
    t = load_trace(bundled / "demo_whowhen.json")
    assert tmp_store.upsert_trace(t) is True
    before = tmp_store.snapshot()
    assert tmp_store.upsert_trace(t) is False
    assert tmp_store.snapshot() == before
    tmp_store.save_attribution(Attribution(trace_id=t.id, method="m", agent="x", step=0, confidence=0.1))
    changed = msgspec.structs.replace(t, steps=t.steps[:-1])
    assert tmp_store.upsert_trace(changed) is True
    assert tmp_store.get_trace(t.id) == changed
    snap = tmp_store.snapshot()
    assert snap["counts"]["steps"] == t.n_steps - 1 and snap["counts"]["traces"] == 1
    assert tmp_store.get_attributions(t.id) == []  # verdicts on the old content are gone


def test_upsert_traces_says_which_stored_ids_it_replaced(bundled: Path, tmp_store) -> None:
    """``upsert(...).replaced`` holds the ids whose stored content differed (new and unchanged ones not);
    ``source_path`` may give each trace its own file."""
    a, b = load_trace(bundled / "demo_whowhen.json"), load_trace(bundled / "otlp_agents.json")
    tmp_store.upsert_trace(a)
    changed = msgspec.structs.replace(a, steps=a.steps[:-1])
    assert tmp_store.upsert([changed, b], ["x.json", "y.json"]) == ([True, True], [a.id])
    rows = tmp_store.con.execute("SELECT trace_id, source_path FROM traces ORDER BY trace_id").fetchall()
    assert sorted(rows) == sorted([(a.id, os.path.abspath("x.json")), (b.id, os.path.abspath("y.json"))])
    assert tmp_store.upsert_traces([changed, b]) == [False, False]
    assert tmp_store.upsert([changed, b]).replaced == []
    tmp_store.upsert_traces([a], ["s3://bucket/runs/a.json"])  # a URL is no local path: kept as it is
    assert tmp_store.con.execute("SELECT source_path FROM traces WHERE trace_id = ?", [a.id]).fetchone() == (
        "s3://bucket/runs/a.json",)


def test_upsert_returns_what_changed_and_what_it_replaced(bundled: Path, tmp_store) -> None:
    """``Store.upsert`` hands back both results (no list to fill): per trace changed, and the ids replaced."""
    from attrib.store import Upserted

    a, b = load_trace(bundled / "demo_whowhen.json"), load_trace(bundled / "otlp_agents.json")
    assert tmp_store.upsert([a]) == Upserted([True], [])
    changed = msgspec.structs.replace(a, steps=a.steps[:-1])
    done = tmp_store.upsert([changed, b], ["x.json", "y.json"])
    assert done.changed == [True, True] and done.replaced == [a.id]
    assert tmp_store.upsert([changed, b]) == ([False, False], [])


def test_label_and_metadata_round_trip_losslessly(bundled: Path, tmp_store) -> None:
    for name in ("demo_whowhen.json", "otlp_agents.json", "chat_autogen.jsonl"):
        t = load_trace(bundled / name)
        tmp_store.upsert_trace(t, source_path=str(bundled / name))
        back = tmp_store.get_trace(t.id)
        assert back == t and back.label == t.label and back.to_json() == t.to_json()
    row = tmp_store.con.execute("SELECT mistake_agent, mistake_step FROM labels WHERE trace_id = ?",
                                ["whowhen-algorithm-demo_whowhen"]).fetchone()
    assert row == ("UnitConversion_Expert", 1)


def test_get_missing_trace_raises_not_found_with_a_hint(bundled: Path, tmp_store) -> None:
    tmp_store.upsert_trace(load_trace(bundled / "demo_whowhen.json"))
    with pytest.raises(NotFoundError, match="did you mean whowhen-algorithm-demo_whowhen"):
        tmp_store.get_trace("demo_whowhen")


def test_list_filters(bundled: Path, tmp_store) -> None:
    for name in ("demo_whowhen.json", "otlp_agents.json", "chat_autogen.jsonl"):
        tmp_store.upsert_trace(load_trace(bundled / name))
    assert tmp_store.count_traces() == 3
    assert [r["source_format"] for r in tmp_store.list_traces(source="otlp")] == ["otlp"]
    assert tmp_store.trace_ids(source="algorithm") == ["whowhen-algorithm-demo_whowhen"]
    assert tmp_store.trace_ids(agent="Researcher") == ["chat-chat_autogen"]
    assert len(tmp_store.trace_ids(outcome="failed")) == 2
    assert len(tmp_store.trace_ids(labelled=True)) == 2
    assert tmp_store.trace_ids(limit=1, offset=1) == sorted(tmp_store.trace_ids())[1:2]
    row = tmp_store.list_traces(source="whowhen")[0]
    assert row["n_steps"] == 10 and row["mistake_step"] == 1 and "Recipe_Expert" in row["agents"]


def test_attributions_and_errors(bundled: Path, tmp_store) -> None:
    t = load_trace(bundled / "demo_whowhen.json")
    tmp_store.upsert_trace(t)
    tmp_store.save_error(t.id, "judge", "timeout")
    assert tmp_store.errors("judge")[0]["error"] == "timeout"
    a = Attribution(trace_id=t.id, method="judge", agent="UnitConversion_Expert", step=1, confidence=0.8,
                    steps=(StepBlame(step=1, agent="UnitConversion_Expert", score=0.8),), evidence={"k": [1, 2]})
    tmp_store.save_attribution(a)
    assert tmp_store.errors("judge") == []  # a verdict clears the recorded failure
    b = msgspec.structs.replace(a, method="flow", confidence=0.3)
    assert tmp_store.save_attributions([b, msgspec.structs.replace(b, confidence=0.4)]) == 2
    got = {x.method: x for x in tmp_store.get_attributions(t.id)}
    assert got["judge"] == a and got["flow"].confidence == 0.4
    assert tmp_store.analyzed_ids("judge") == {t.id} and tmp_store.analyzed_ids("other") == set()


def test_a_failed_transaction_leaves_nothing(bundled: Path, tmp_store) -> None:
    t = load_trace(bundled / "demo_whowhen.json")
    before = tmp_store.snapshot()
    with pytest.raises(RuntimeError), tmp_store.transaction():
        tmp_store.upsert_trace(t)
        raise RuntimeError("boom")
    assert tmp_store.snapshot() == before


def test_export_parquet(bundled: Path, tmp_store, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    t = load_trace(bundled / "otlp_agents.json")
    tmp_store.upsert_trace(t)
    files = tmp_store.export_parquet(tmp_path / "pq")
    names = {f.stem for f in files}
    assert names == {"traces", "steps", "labels", "activations", "attributions", "analysis_errors"}
    steps = pq.read_table(tmp_path / "pq" / "steps.parquet")
    assert steps.num_rows == t.n_steps and steps.column("agent").to_pylist() == [s.agent for s in t.steps]


def test_stream_trace_json_selects_filters_resumes_and_batches(bundled: Path, tmp_store) -> None:
    from attrib.errors import InputError

    traces = [load_trace(bundled / n) for n in ("demo_whowhen.json", "otlp_agents.json", "chat_autogen.jsonl")]
    tmp_store.upsert_traces(traces)
    by_id = {t.id: t for t in traces}
    parts = list(tmp_store.stream_trace_json(batch_size=2))
    assert [len(p) for p in parts] == [2, 1]
    got = [pair for p in parts for pair in p]
    assert sorted(tid for tid, _ in got) == sorted(by_id)
    assert all(Trace.from_json(js) == by_id[tid] for tid, js in got)  # the stored JSON, label included
    assert tmp_store.count_selected() == (3, 3)
    otlp = "source_format = 'otlp'"
    assert [tid for p in tmp_store.stream_trace_json(otlp) for tid, _ in p] == [traces[1].id]
    assert tmp_store.count_selected(otlp, skip_method="m") == (1, 1)
    # a verdict from "m" takes a trace out of the selection for "m" only; saving while streaming is safe
    stream = tmp_store.stream_trace_json(skip_method="m", batch_size=1)
    tmp_store.save_attribution(Attribution(trace_id=traces[0].id, method="m", agent="a", step=0, confidence=1.0))
    assert sorted(tid for p in stream for tid, _ in p) == sorted(by_id)  # selection fixed when called
    left = {tid for p in tmp_store.stream_trace_json(skip_method="m") for tid, _ in p}
    assert left == set(by_id) - {traces[0].id}
    assert tmp_store.count_selected(skip_method="m") == (3, 2) and tmp_store.count_selected(skip_method="x") == (3, 3)
    assert list(tmp_store.stream_trace_json("trace_id = 'none'")) == []
    with pytest.raises(InputError, match="where: 'no_such_column > 1' is not a valid filter"):
        tmp_store.stream_trace_json("no_such_column > 1")
    with pytest.raises(InputError, match="no_such_column"):
        tmp_store.count_selected("no_such_column > 1")


def test_bulk_save_attributions_replaces_per_trace_and_method(bundled: Path, tmp_store) -> None:
    traces = [load_trace(bundled / n) for n in ("demo_whowhen.json", "otlp_agents.json", "chat_autogen.jsonl")]
    tmp_store.upsert_traces(traces)
    assert tmp_store.save_errors([(t.id, "m", f"boom {t.id}") for t in traces] + [(traces[0].id, "k", "x")]) == 4
    assert len(tmp_store.errors("m")) == 3
    first = [Attribution(trace_id=t.id, method=m, agent=t.steps[0].agent, step=0, confidence=0.1)
             for t in traces for m in ("m", "n")]
    assert tmp_store.save_attributions(iter(first)) == 6
    assert tmp_store.errors("m") == [] and len(tmp_store.errors("k")) == 1  # only the saved pairs are cleared
    again = [msgspec.structs.replace(a, step=1, confidence=0.7) for a in first if a.method == "m"]
    # a repeated pair within one call: the last one wins
    tmp_store.save_attributions([msgspec.structs.replace(again[0], confidence=0.2), *again])
    rows = tmp_store.con.execute("SELECT method, count(*), min(step), max(confidence) FROM attributions "
                                 "GROUP BY method ORDER BY method").fetchall()
    assert rows == [("m", 3, 1, 0.7), ("n", 3, 0, 0.1)]  # replaced, not duplicated
    assert tmp_store.get_attributions(traces[0].id, "m") == [again[0]]
    assert tmp_store.get_attributions(traces[1].id, "m") == [again[1]]
    assert tmp_store.analyzed_ids("n") == {t.id for t in traces}
    with pytest.raises(NotFoundError, match="no trace with id 'x0' to attach"):  # and nothing of the batch kept
        tmp_store.save_attributions([again[0], Attribution(trace_id="x0", method="m", agent="a", step=0,
                                                            confidence=0.5)])
    assert tmp_store.get_attributions(traces[0].id, "m") == [again[0]]
    n = 2 * 1000 + 5  # more rows than one INSERT statement takes
    tmp_store.upsert_traces([Trace(id=f"x{i}", source_format="attrib", steps=(Step(index=0, agent="a"),))
                             for i in range(n)])
    many = [Attribution(trace_id=f"x{i}", method="big", agent="a", step=i, confidence=0.5) for i in range(n)]
    with pytest.raises(RuntimeError), tmp_store.transaction():  # the caller's transaction covers the bulk write
        tmp_store.save_attributions(many)
        raise RuntimeError("boom")
    assert tmp_store.analyzed_ids("big") == set()
    assert tmp_store.save_attributions(many) == n and len(tmp_store.analyzed_ids("big")) == n


def test_page_traces_joins_verdicts_with_labels_and_facets_list_choices(bundled: Path, tmp_store) -> None:
    from attrib.store.queries import TraceFilter

    for name in ("demo_whowhen.json", "otlp_agents.json", "chat_autogen.jsonl"):
        tmp_store.upsert_trace(load_trace(bundled / name))
    demo = "whowhen-algorithm-demo_whowhen"
    right = Attribution(trace_id=demo, method="m", agent="UnitConversion_Expert", step=1, confidence=0.7)
    tmp_store.save_attribution(right)
    rows, total = tmp_store.page_traces(TraceFilter(method="m"), page=0, page_size=2)
    assert total == 3 and len(rows) == 2 and rows[0]["trace_id"] < rows[1]["trace_id"]
    rows, total = tmp_store.page_traces(TraceFilter(method="m"), page=1, page_size=2)
    assert total == 3 and len(rows) == 1
    rows, total = tmp_store.page_traces(TraceFilter(method="m", agreement="agrees"))
    assert total == 1 and rows[0]["trace_id"] == demo and rows[0]["verdict_step"] == rows[0]["truth_step"] == 1
    assert tmp_store.page_traces(TraceFilter(method="m", agreement="disagrees"))[1] == 0
    assert tmp_store.page_traces(TraceFilter(method="m", agreement="not analyzed"))[1] == 2
    tmp_store.save_attribution(msgspec.structs.replace(right, step=4))
    assert tmp_store.page_traces(TraceFilter(method="m", agreement="disagrees"))[1] == 1
    assert tmp_store.page_traces(TraceFilter(method="other", agreement="not analyzed"))[1] == 3
    with pytest.raises(ValueError, match="agreement must be one of"):
        tmp_store.page_traces(TraceFilter(agreement="maybe"))
    fac = tmp_store.facets()
    assert fac["method"] == ["m"] and "otlp" in fac["source"] and "Researcher" in fac["agent"]
    assert fac["truth_agent"] == sorted(fac["truth_agent"]) and "UnitConversion_Expert" in fac["truth_agent"]


def test_store_files_that_are_not_ours_are_refused_without_damage(bundled: Path, tmp_path: Path) -> None:
    import duckdb

    from attrib.errors import InputError, NotFoundError

    empty = tmp_path / "empty.duckdb"  # what mktemp makes: a new store, not a broken one
    empty.touch()
    with pytest.raises(NotFoundError):
        open_store(empty, read_only=True)
    with open_store(empty) as st:
        assert st.snapshot()["counts"]["traces"] == 0
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE traces (x INTEGER)")
    con.close()
    with pytest.raises(InputError, match=r"tables of its own \(traces\)"):
        open_store(foreign)
    sales = tmp_path / "sales.duckdb"  # any table of its own, whatever its name: not ours to add tables to
    con = duckdb.connect(str(sales))
    con.execute("CREATE TABLE sales (x INTEGER)")
    con.close()
    with pytest.raises(InputError, match="not an attrib store"):
        open_store(sales)
    con = duckdb.connect(str(sales))
    assert [r[0] for r in con.execute("SHOW TABLES").fetchall()] == ["sales"]
    con.close()
    con = duckdb.connect(str(foreign))
    assert [r[0] for r in con.execute("SHOW TABLES").fetchall()] == ["traces"]  # no schema_version left behind
    con.close()
    newer = tmp_path / "newer.duckdb"
    with open_store(newer) as st:
        st.con.execute("INSERT INTO schema_version (version) VALUES (99)")
    for ro in (False, True):
        with pytest.raises(InputError, match="newer attrib"):
            open_store(newer, read_only=ro)
    nested = tmp_path / "a" / "b" / "s.duckdb"
    with open_store(nested):
        pass
    assert nested.is_file()


@pytest.mark.parametrize(("value", "message"), [("1.5.5GB", "expected a size"), ("10KB", "expected a size"),
                                                ("15MB", "too small"), ("100000000", "expected a size")])
def test_memory_limit_is_checked_before_a_file_is_made(tmp_path: Path, value: str, message: str) -> None:
    from attrib.errors import InputError

    with pytest.raises(InputError, match=message):
        open_store(tmp_path / "m.duckdb", memory_limit=value)
    assert not (tmp_path / "m.duckdb").exists()


def test_export_refuses_a_folder_in_the_way_before_writing(bundled: Path, tmp_store, tmp_path: Path) -> None:
    from attrib.errors import EXIT_FAILURE, AttribError

    (tmp_path / "out" / "steps.parquet").mkdir(parents=True)
    with pytest.raises(AttribError, match="is a folder") as e:
        tmp_store.export_parquet(tmp_path / "out")
    assert e.value.exit_code == EXIT_FAILURE  # an output that cannot be written
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["steps.parquet"]
    (tmp_path / "afile").write_text("")
    with pytest.raises(AttribError, match="is a file; --parquet wants a folder"):
        tmp_store.export_parquet(tmp_path / "afile")


def test_memory_limits_duckdb_takes_are_taken(tmp_path: Path) -> None:
    for value in ("16MB", "2G", "256M", "300MiB"):
        with open_store(tmp_path / f"{value}.duckdb", memory_limit=value):
            pass


def test_an_old_orphan_verdict_does_not_block_new_saves(bundled: Path, tmp_store) -> None:
    t = load_trace(bundled / "demo_whowhen.json")
    tmp_store.upsert_trace(t)
    tmp_store.con.execute("INSERT INTO attributions (trace_id, method, json) VALUES ('gone', 'm', '{}')")
    tmp_store.save_attribution(Attribution(trace_id=t.id, method="m", agent=t.steps[0].agent, step=0, confidence=0.5))
    assert len(tmp_store.get_attributions(t.id, "m")) == 1


# ------------------------------------------------------------------- a store another process holds
def test_a_store_locked_by_another_process_is_a_store_locked_error(bundled: Path, tmp_path: Path) -> None:
    """Told once, where the store opens the file: a StoreLockedError (an InputError, exit 3, one line in words, no
    DuckDB text) with the holder's pid, read-only or not; DuckDB's own IOException stays its context. The CLI prints that
    line and exits 3; other unreadable stores stay plain InputErrors."""
    import pickle

    import duckdb
    from typer.testing import CliRunner

    from attrib.cli import app
    from attrib.errors import EXIT_BAD_INPUT, InputError
    from attrib.store import StoreLockedError

    p = tmp_path / "held.duckdb"
    with open_store(p) as st:
        st.upsert_trace(load_trace(bundled / "demo_whowhen.json"))
    proc = hold_write_lock(p)
    try:
        for ro in (True, False):
            with pytest.raises(StoreLockedError) as e:
                open_store(p, read_only=ro)
            assert isinstance(e.value, InputError) and e.value.exit_code == EXIT_BAD_INPUT
            assert e.value.pid == proc.pid and e.value.path == str(p) and e.value.field is None
            assert isinstance(e.value.__context__, duckdb.IOException)
            duck = str(e.value.__context__).splitlines()[0]
            assert str(e.value).startswith(f"{p}: the store is locked by another process (PID {proc.pid}), e.g. an "
                                           "`attrib ingest`") and "\n" not in str(e.value)
            assert duck.startswith("IO Error: Could not set lock on file") and f"(PID {proc.pid})" in duck
        back = pickle.loads(pickle.dumps(e.value))
        assert isinstance(back, StoreLockedError) and back.pid == proc.pid and str(back) == str(e.value)
        r = CliRunner().invoke(app, ["ingest", str(bundled / "demo_whowhen.json"), "--store", str(p), "--quiet"])
        assert r.exit_code == EXIT_BAD_INPUT, r.output
        assert str(e.value) in " ".join(r.output.split())  # the library's line, as rich may wrap it
    finally:
        proc.kill()
        proc.wait()
    with open_store(p, read_only=True) as st:  # the lock gone, the store opens again
        assert st.count_traces() == 1
    other = tmp_path / "other.duckdb"
    other.write_bytes(b"\0" * 8 + b"DUCK" + b"\0" * 4096)  # DuckDB's magic, not a database: its own I/O error
    with pytest.raises(InputError) as bad:
        open_store(other, read_only=True)
    assert not isinstance(bad.value, StoreLockedError)
    assert StoreLockedError(p, None, "cannot open the store (x)").pid is None  # DuckDB did not name the holder


def test_stored_ids_says_which_ids_the_store_holds(bundled: Path, tmp_store) -> None:
    t = load_trace(bundled / "demo_whowhen.json")
    tmp_store.upsert_trace(t)
    assert tmp_store.stored_ids([t.id, "nope", t.id]) == {t.id}
    assert tmp_store.stored_ids([]) == set() and tmp_store.stored_ids(["nope"]) == set()


def _big_trace(mib: int) -> Trace:
    """One run of ``mib`` MiB of JSON (a long log of one failed run), bigger than a 16MB memory cap."""
    text = "the planner asked again; " * 40  # 1000 characters
    return Trace(id="big", source_format="chat", agents=("a", "b"),
                 steps=tuple(Step(index=i, agent="ab"[i % 2], content=f"{i} {text}") for i in range(mib * 1050)))


def test_a_trace_bigger_than_the_memory_cap_goes_in_reads_back_and_exports(tmp_path: Path) -> None:
    """DuckDB failed with "could not allocate block" on one trace larger than the page-cache cap (a 200 MB log under
    the 256MB default): the cap is raised for that write or read, then put back."""
    t = _big_trace(24)
    assert len(t.to_json()) > 24 * 2**20
    with open_store(tmp_path / "s.duckdb", memory_limit="16MB") as st:
        cap = st.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert st.upsert_traces([t]) == [True]
        assert st.get_trace("big") == t
        files = st.export_parquet(tmp_path / "out")
        assert len(files) == 6 and st.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == cap
    import duckdb

    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'out' / 'steps.parquet'}'").fetchall() == [(t.n_steps,)]


def test_a_ctrl_c_duckdb_caught_in_a_transaction_is_the_users_keyboard_interrupt(bundled: Path, tmp_store) -> None:
    """DuckDB turns a Ctrl-C during a query into its own InterruptException (in COMMIT a RuntimeError): ingest
    then counted the file as failed ("internal error") and went on. The transaction rolls back and re-raises it
    as KeyboardInterrupt, so the command stops."""
    import duckdb

    from attrib.store import is_interrupt

    before = tmp_store.snapshot()
    with pytest.raises(KeyboardInterrupt), tmp_store.transaction():
        tmp_store.upsert_trace(load_trace(bundled / "demo_whowhen.json"))
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")
    assert tmp_store.snapshot() == before
    assert is_interrupt(RuntimeError("Query interrupted")) and not is_interrupt(RuntimeError("other"))


def test_a_raised_memory_cap_is_put_back_after_an_aborted_outer_transaction(tmp_path: Path) -> None:
    """`analyze --save` writes inside an outer transaction. A write that failed while the cap was raised aborted it,
    and putting the cap back then failed too: DuckDB's TransactionException hid the real error and the cap stayed
    raised. The cap is put back once the outermost transaction has ended now."""
    import duckdb

    with open_store(tmp_path / "s.duckdb", memory_limit="16MB") as st:
        cap = st.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        # a write that needs a raised cap fails inside the outer transaction: its own error comes out
        with pytest.raises(duckdb.CatalogException), st.transaction(), st._room_for(2**30, 2**20):
            st.con.execute("SELECT * FROM no_such_table")
        assert st.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == cap


def test_a_raised_cap_is_never_lowered_within_a_transaction_and_a_read_there_fails_by_name(tmp_path: Path) -> None:
    """Two huge writes in one transaction: the smaller one lowered the cap the first had raised, and the commit ran
    out of memory. A read that runs out of memory inside a transaction (which it aborts, so no retry can run) was a
    TransactionException hiding the real error; it is one InputError naming ATTRIB_STORE_MEMORY."""
    from attrib.errors import InputError

    def cap(st) -> str:  # type: ignore[no-untyped-def]
        return st.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    with open_store(tmp_path / "s.duckdb", memory_limit="16MB") as st:
        configured = cap(st)
        with st.transaction():
            st._set_cap(2**30)
            raised = cap(st)
            st._set_cap(2**25)
            assert cap(st) == raised != configured
        assert cap(st) == configured
        assert st.upsert_traces([_big_trace(24)]) == [True]
        with pytest.raises(InputError, match="ATTRIB_STORE_MEMORY"), st.transaction():
            st.get_trace("big")
        assert cap(st) == configured and st.get_trace("big").id == "big"  # outside a transaction it is retried


def test_a_store_whose_folder_cannot_be_made_is_bad_input(tmp_path: Path) -> None:
    """A store under a folder that cannot be made (here: a file stands where a folder should) ended with exit 1 and
    the OS's words, while a folder that exists but refuses the file gave exit 3: it is exit 3, one line, now."""
    from typer.testing import CliRunner

    from attrib.cli import app

    (tmp_path / "afile").write_text("not a folder")
    trace = Path(__file__).resolve().parents[1] / "traces" / "demo_whowhen.json"
    r = CliRunner().invoke(app, ["ingest", str(trace), "--store", str(tmp_path / "afile" / "sub" / "s.duckdb")])
    assert r.exit_code == 3, r.output
    assert "cannot open the store (cannot make its folder" in " ".join(r.output.split())


def _long_run(tid: str, n: int, label: bool = False) -> Trace:
    """A run of ``n`` steps using every step field: tool calls and results, parents, times, tokens, metadata, and an
    activation file on every third step."""
    from attrib.trace import ActivationRef, Label, ToolCall, ToolResult

    steps = tuple(
        Step(index=i, agent="ab"[i % 2], content=f"step {i} " + "x" * (i % 7), role="tool" if i % 5 == 4 else "assistant",
             tool_calls=(ToolCall(name="search", arguments=f'{{"q": {i}}}', id=f"c{i}"),) if i % 5 == 3 else (),
             tool_results=(ToolResult(content=f"r{i}", call_id=f"c{i - 1}", is_error=i % 10 == 9),) if i % 5 == 4 else (),
             parents=(i - 1,) if i % 4 else (), start_time=100.0 + i if i % 3 else None, end_time=101.0 + i,
             tokens_in=i, tokens_out=None if i % 2 else 2 * i, metadata={"k": i} if i % 6 == 0 else {},
             activation=ActivationRef(path=f"/acts/{tid}_{i}.npz", hooks=("blocks.0.hook_resid_post",), format="npz")
             if i % 3 == 0 else None)
        for i in range(n))
    return Trace(id=tid, source_format="attrib", steps=steps, task=f"task of {tid}", outcome="failed",
                 final_answer="a", ground_truth="b", metadata={"subset": "x"},
                 label=Label(mistake_agent="b", mistake_step=n - 1, reason="r") if label else None)


def test_an_ingest_builds_its_rows_in_batches_and_stores_each_trace_whole(tmp_store, monkeypatch) -> None:
    """A 240k-step trace peaked at 9x its file size: the insert built one Arrow table of every step, and the JSON
    decoded to a str and copied into Arrow beside the encoded bytes. Rows go in batches of STEP_BATCH now, traces'
    JSON at most JSON_BATCH_BYTES at a time (a larger trace alone), and every row still lands."""
    import pyarrow

    import attrib.store as store_mod

    runs = [_long_run("r1", 30, label=True), _long_run("r2", 1), _long_run("r3", 16), _long_run("r4", 2)]
    sizes = [len(t.to_json()) for t in runs]
    monkeypatch.setattr(store_mod, "STEP_BATCH", 7)
    monkeypatch.setattr(store_mod, "JSON_BATCH_BYTES", sizes[1] + sizes[2])  # r1 alone, r2 + r3, r4
    built: list[tuple[str, int]] = []
    real = pyarrow.table

    def spy(data, *a, **k):  # type: ignore[no-untyped-def]
        t = real(data, *a, **k)
        built.append(("traces" if "trace_json" in t.column_names else "rows", t.num_rows))
        return t

    monkeypatch.setattr(pyarrow, "table", spy)
    assert tmp_store.upsert_traces(runs) == [True] * 4
    assert max(n for kind, n in built if kind == "rows") == 7
    assert sizes[0] > sizes[1] + sizes[2] and [n for kind, n in built if kind == "traces"] == [1, 2, 1]
    for t in runs:
        assert tmp_store.get_trace(t.id) == t
        assert tmp_store.get_steps(t.id) == t.steps  # the step rows hold the same as the JSON
    counts = {t: tmp_store.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("traces", "steps", "labels", "activations")}
    assert counts == {"traces": 4, "steps": 49, "labels": 1, "activations": 10 + 1 + 6 + 1}


def test_a_trace_json_goes_to_duckdb_over_its_own_bytes() -> None:
    """The JSON column is an Arrow array over the encoded bytes (no decoded str, no Arrow copy of a 300 MB run)."""
    from attrib.store import _string_array

    blob = _long_run("r", 5).to_json()
    one = _string_array(blob, [len(blob)])
    import pyarrow as pa

    assert one.buffers()[2].address == pa.py_buffer(blob).address
    assert one.to_pylist() == [blob.decode()]
    assert _string_array(b"abcde", [2, 0, 3]).to_pylist() == ["ab", "", "cde"]


def test_a_few_steps_of_a_stored_trace_are_read_without_its_json(tmp_store) -> None:
    """`traces show` read a whole 240k-step run (300 MB of JSON, 90 s) to print a few steps. The trace's fields, a
    range of steps and the others' first parents come from their own rows: here the JSON is spoilt and all of them
    still read back as stored."""
    t = _long_run("long", 40, label=True)
    tmp_store.upsert_trace(t)
    tmp_store.con.execute("UPDATE traces SET trace_json = '{not json' WHERE trace_id = 'long'")
    with pytest.raises(msgspec.DecodeError):
        tmp_store.get_trace("long")
    head, n = tmp_store.get_trace_head("long")
    assert n == 40 and head == msgspec.structs.replace(t, steps=())
    assert tmp_store.get_steps("long", 10, 13) == t.steps[10:13]
    assert tmp_store.get_steps("long", 38) == t.steps[38:] and tmp_store.get_steps("long", 50) == ()
    assert tmp_store.step_outline("long", 9) == ([s.parents[0] if s.parents else None for s in t.steps[:9]], 101.0)
    with pytest.raises(NotFoundError, match="did you mean long"):
        tmp_store.get_trace_head("lon")


def test_a_store_holding_a_trace_over_the_cap_checkpoints_on_close_and_takes_later_writes(tmp_path: Path) -> None:
    """A trace larger than the memory cap went in, but its log was never checkpointed into the file (the checkpoint
    on closing ran under the cap and failed): every open replayed it (1 s and 1 GB of RSS for a 306 MiB run), and,
    at that size under the 256MB default, the next write's commit checkpointed, failed with DuckDB's FATAL error and
    invalidated the store for the session. Closing and committing get the room the store's largest trace needs now:
    the log is folded in on closing, later writes go in and the cap is put back after each."""
    p = tmp_path / "s.duckdb"
    big = _big_trace(24)
    with open_store(p, memory_limit="16MB") as st:
        assert st.upsert_traces([big]) == [True]
    wal = p.with_name(p.name + ".wal")
    assert not wal.exists() or wal.stat().st_size < 2**20
    with open_store(p, memory_limit="16MB") as st:
        cap = st.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        for i in range(3):  # small writes after it, each committed (and checkpointed once the log is long enough)
            assert st.upsert_traces([_long_run(f"small{i}", 3)]) == [True]
            assert st.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == cap
    with open_store(p, read_only=True, memory_limit="16MB") as st:
        assert st.count_traces() == 4 and st.get_trace("big") == big


def test_an_ingest_hands_its_traces_over_and_lets_each_go_before_its_json_goes_in(tmp_path: Path, monkeypatch) -> None:
    """`attrib ingest` held the run as objects while DuckDB copied its JSON (twice) and committed: with
    ``release=True`` the list is emptied and a trace is let go once its step rows are in, before its JSON row."""
    import sys

    from attrib.store import Store

    refs: list[int] = []
    real = Store._insert_traces

    def spy(self, rows, now):  # type: ignore[no-untyped-def]
        refs.append(sys.getrefcount(steps))  # the trace's own reference to its steps counts while it lives
        return real(self, rows, now)

    monkeypatch.setattr(Store, "_insert_traces", spy)
    for release in (False, True):
        with open_store(tmp_path / f"{release}.duckdb") as st:
            runs = [_long_run("a", 20, label=True), _long_run("b", 5)]
            steps = runs[0].steps
            want = [msgspec.json.decode(t.to_json(), type=Trace) for t in runs]
            assert st.upsert_traces(runs, release=release) == [True, True]
            assert (runs == []) is release
            assert [st.get_trace(t.id) for t in want] == want
    kept, released = refs
    assert released == kept - 1


def test_a_replaced_verdict_or_error_is_stamped_with_its_own_time(bundled: Path, tmp_store) -> None:
    """DuckDB's INSERT OR REPLACE keeps the columns a statement leaves out: a re-analysis (`--force`) kept its first
    verdict's created_at, so `get_attributions` (oldest first) and the inspector's "touched last" read it as old."""
    import time

    t = load_trace(bundled / "demo_whowhen.json")
    tmp_store.upsert_traces([t])
    a = Attribution(trace_id=t.id, method="m", agent=t.steps[0].agent, step=0, confidence=0.1)
    b = msgspec.structs.replace(a, method="n")
    tmp_store.save_attributions([a, b])
    tmp_store.save_error(t.id, "k", "first")
    time.sleep(0.01)
    tmp_store.save_attributions([msgspec.structs.replace(a, step=1)])  # m re-analysed after n
    tmp_store.save_error(t.id, "k", "again")
    assert [x.method for x in tmp_store.get_attributions(t.id)] == ["n", "m"]
    times = dict(tmp_store.con.execute("SELECT method, created_at FROM attributions").fetchall())
    assert times["m"] > times["n"]
    assert tmp_store.errors("k")[0]["created_at"] > times["n"]


def _as_version_1(path: Path) -> None:
    """Put a store back as version 1 wrote it: no ``traces.tools`` column, schema version 1."""
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE traces DROP COLUMN tools")
    con.execute("DELETE FROM schema_version WHERE version > 1")
    con.close()


def test_a_traces_tools_are_kept_at_ingest_and_filled_in_when_an_old_store_migrates(
        bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`traces list` grouped every step of every listed run (a JSON extract per tool step) to tell its tools; they
    are kept in the ``traces`` row at ingest now, and migration 2 fills them in for the rows stored before, by the
    same rule as :func:`attrib.trace.tool_agents`."""
    from attrib.errors import InputError
    from attrib.trace import ToolCall, ToolResult, tool_agents

    lg = Trace(id="lg", source_format="chat", steps=(
        Step(index=0, agent="order_lookup", tool_calls=(ToolCall(name="get_order", id="c"),)),
        Step(index=1, agent="get_order", role="tool", parents=(0,),
             tool_results=(ToolResult(content="{}", call_id="c", name="get_order"),)),
        Step(index=2, agent="calculator", content="30 USD")))
    traces = [load_trace(bundled / n) for n in ("demo_whowhen.json", "otlp_agents.json", "chat_autogen.jsonl")]
    traces.append(lg)
    want = {t.id: tool_agents(t.steps) for t in traces}
    assert want["lg"] == ("get_order",)
    p = tmp_path / "s.duckdb"
    with open_store(p) as st:
        st.upsert_traces(traces)
        assert {t: st.trace_tools(t) for t in want} == want and st.trace_tools("nope") == ()
        assert {r["trace_id"]: tuple(r["tools"]) for r in st.list_traces()} == want
    _as_version_1(p)
    with open_store(p) as st:  # migrates
        assert {t: st.trace_tools(t) for t in want} == want
    _as_version_1(p)
    with open_store(p, read_only=True) as st:  # `traces list` on a store of the attrib before: migrated, then read
        assert st.con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == LATEST
        assert {r["trace_id"]: tuple(r["tools"]) for r in st.list_traces()} == want
    _as_version_1(p)
    import duckdb

    real = duckdb.connect

    def read_only_file(path: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if not read_only:
            raise duckdb.IOException(f"Cannot open file {path!r}: Permission denied")
        return real(path, read_only=read_only)

    monkeypatch.setattr(duckdb, "connect", read_only_file)
    with pytest.raises(InputError, match="open it once for writing to migrate it"):
        open_store(p, read_only=True)  # cannot be written: left as it is, refused, saying how to migrate it


def test_migrating_a_store_holding_a_trace_over_the_cap_fills_its_tools_in_place(tmp_path: Path) -> None:
    """A list column is updated by rewriting the whole row, which for a trace bigger than the memory cap did not fit:
    the tools are JSON text, updated in place."""
    p = tmp_path / "s.duckdb"
    with open_store(p, memory_limit="16MB") as st:
        st.upsert_traces([_big_trace(24)])
    _as_version_1(p)
    with open_store(p, memory_limit="16MB") as st:
        assert st.trace_tools("big") == () and st.list_traces()[0]["tools"] == []
