"""Store: migrations, idempotent upsert, lossless round trip, queries, attributions, transactions, Parquet."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from attrib.errors import NotFoundError
from attrib.readers import load_trace
from attrib.store import open_store
from attrib.store.schema import LATEST, MIGRATIONS
from attrib.trace import Attribution, StepBlame


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
