"""`attrib ingest` on the real Who&When data, checked against values computed here from the raw JSON; traces/export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.readers import read_path
from attrib.store import open_store

runner = CliRunner()


def _agent(raw: str) -> str:
    """Independent of attrib's normaliser: Magentic-One display names fold onto their agent."""
    raw = raw.strip()
    if raw.lower().startswith("orchestrator"):
        return "Orchestrator"
    return {"websurfer": "WebSurfer", "filesurfer": "FileSurfer"}.get(raw.lower(), raw)


def _expected(whowhen_dir: Path) -> dict[str, dict]:
    out = {}
    for sub, tag in (("Algorithm-Generated", "algorithm"), ("Hand-Crafted", "hand")):
        for f in sorted((whowhen_dir / sub).glob("*.json")):
            d = json.loads(f.read_text(encoding="utf-8"))
            hist = d["history"]
            out[f"whowhen-{tag}-{f.stem}"] = {
                "subset": tag,
                "n_steps": len(hist),
                "agents": {_agent(m.get("name") or m["role"]) for m in hist},
                "mistake_step": int(d["mistake_step"]),
                "mistake_agent": _agent(d["mistake_agent"]),
                "question": d["question"],
            }
    return out


@pytest.fixture(scope="module")
def ingested(whowhen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    store = tmp_path_factory.mktemp("ww") / "ww.duckdb"
    # a relative path, as users type it (from the repo root: ../shared/data/who_and_when)
    r = runner.invoke(app, ["ingest", os.path.relpath(whowhen_dir), "--store", str(store)])
    return store, r


def test_ingest_all_of_who_and_when(ingested, whowhen_dir: Path) -> None:
    store, r = ingested
    assert r.exit_code == 0, r.output
    assert "184" in r.output  # the summary table's totals
    exp = _expected(whowhen_dir)
    with open_store(store, read_only=True) as st:
        assert st.count_traces() == len(exp) == 184
        assert st.count_traces(source="algorithm") == 126
        assert st.count_traces(source="hand") == 58
        rows = {r["trace_id"]: r for r in st.list_traces()}
        assert set(rows) == set(exp)
        for tid, e in exp.items():
            row = rows[tid]
            assert row["n_steps"] == e["n_steps"], tid
            assert set(row["agents"]) == e["agents"], tid
            assert (row["mistake_step"], row["mistake_agent"]) == (e["mistake_step"], e["mistake_agent"]), tid
            assert row["subset"] == e["subset"]
        assert st.count_steps() == sum(e["n_steps"] for e in exp.values())
        t = st.get_trace("whowhen-hand-1")
        assert t.task == exp["whowhen-hand-1"]["question"] and t.label is not None
        # lossless: what comes back from the store is exactly what the reader produced, label included
        for f in sorted((whowhen_dir / "Hand-Crafted").glob("*.json"))[:20]:
            direct = read_path(f)[0]
            assert st.get_trace(direct.id) == direct


def test_reingest_is_a_no_op(ingested, whowhen_dir: Path) -> None:
    store, _ = ingested
    with open_store(store) as st:
        before = st.snapshot()
    r = runner.invoke(app, ["ingest", str(whowhen_dir / "Hand-Crafted" / "*.json"), "--store", str(store)])
    assert r.exit_code == 0, r.output
    with open_store(store) as st:
        assert st.snapshot() == before
    from attrib.store.api import ingest

    rep = ingest([whowhen_dir / "Algorithm-Generated"], store=store)
    assert rep.ok and rep.n_traces == 126 and rep.n_unchanged == 126 and rep.n_new == 0


def test_traces_list_and_show(ingested, bundled: Path) -> None:
    store, _ = ingested
    r = runner.invoke(app, ["traces", "list", "--store", str(store), "--source", "hand", "-n", "3"])
    assert r.exit_code == 0 and "3 of 58" in r.output and "whowhen-hand-1" in r.output
    r = runner.invoke(app, ["traces", "list", "--store", str(store), "--agent", "WebSurfer", "--json", "-n", "0"])
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert rows and all("WebSurfer" in x["agents"] for x in rows)
    r = runner.invoke(app, ["traces", "show", "whowhen-algorithm-1", "--store", str(store)])
    assert r.exit_code == 0 and "annotated mistake" in r.output
    r = runner.invoke(app, ["traces", "show", "no-such-id", "--store", str(store)])
    assert r.exit_code == 4 and "no trace with id" in r.output
    # a file path works too, without a store
    r = runner.invoke(app, ["traces", "show", str(bundled / "otlp_agents.json"), "--width", "200"])
    assert r.exit_code == 0 and "search_flights" in r.output and "FlightSearcher" in r.output


def test_export_parquet_cli(ingested, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    store, _ = ingested
    r = runner.invoke(app, ["export", "--parquet", str(tmp_path / "out"), "--store", str(store)])
    assert r.exit_code == 0, r.output
    assert pq.read_table(tmp_path / "out" / "traces.parquet").num_rows == 184
    r = runner.invoke(app, ["export", "--parquet", str(tmp_path / "o2"), "--store", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 4


def test_schema_describes_what_attrib_writes(bundled: Path) -> None:
    import jsonschema

    for name in ("demo_whowhen.json", "chat_langgraph.json", "otlp_agents.json"):
        trace = runner.invoke(app, ["traces", "show", str(bundled / name), "--json"])
        verdict = runner.invoke(app, ["analyze", str(bundled / name), "--json"])
        assert trace.exit_code == verdict.exit_code == 0
        for cmd, out in ((["traces", "schema"], trace.output), (["traces", "schema", "--attribution"], verdict.output)):
            schema = json.loads(runner.invoke(app, cmd).output)
            jsonschema.validate(json.loads(out), schema)
    bad = json.loads(runner.invoke(app, ["traces", "show", str(bundled / "demo_whowhen.json"), "--json"]).output)
    bad["steps"][0]["index"] = "first"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(runner.invoke(app, ["traces", "schema"]).output))
    empty = {"id": "t1", "source_format": "attrib", "steps": []}  # the readers refuse it; the schema said fine
    with pytest.raises(jsonschema.ValidationError):  # (walkthrough w8 #11)
        jsonschema.validate(empty, json.loads(runner.invoke(app, ["traces", "schema"]).output))


def test_every_field_of_the_trace_model_is_documented_in_the_schema() -> None:
    import msgspec

    from attrib import trace as tm

    for name, fields in tm.FIELD_DOCS.items():
        assert {f.name for f in msgspec.structs.fields(getattr(tm, name))} == set(fields), name
    props = tm.json_schema("attribution")["$defs"]["Attribution"]["properties"]
    assert all(p.get("description") for p in props.values())


def test_a_store_path_that_is_not_a_duckdb_store_is_refused(tmp_path: Path) -> None:
    """DuckDB 2 opens an existing .json file as a throw-away in-memory database: the writes would vanish."""
    demo = str(Path(__file__).parent.parent / "traces" / "demo_whowhen.json")
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    r = runner.invoke(app, ["ingest", demo, "--store", str(notes)])
    assert r.exit_code == 3 and "not a DuckDB store" in r.output and "Traceback" not in r.output
    assert notes.read_text() == "{}"
    r = runner.invoke(app, ["ingest", demo, "--store", str(tmp_path)])
    assert r.exit_code == 3 and "is a folder" in r.output
    r = runner.invoke(app, ["ingest", demo, "--store", str(tmp_path / "new.json")])  # a new file is a new store
    assert r.exit_code == 0, r.output
    with open_store(tmp_path / "new.json", read_only=True) as st:
        assert st.trace_ids() == ["whowhen-algorithm-demo_whowhen"]


def test_two_files_with_one_trace_id_do_not_overwrite_each_other(bundled: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "chat.json").write_bytes((bundled / "chat_langgraph.json").read_bytes())
    (tmp_path / "b" / "chat.json").write_bytes((bundled / "chat_autogen.jsonl").read_bytes())
    store = tmp_path / "s.duckdb"
    r = runner.invoke(app, ["ingest", str(tmp_path / "a"), str(tmp_path / "b"), "--store", str(store), "-q"])
    assert r.exit_code == 3 and "'chat-chat' was already read from" in r.output
    with open_store(store, read_only=True) as st:  # the first file's trace is the one kept, whole
        assert st.get_trace("chat-chat") == read_path(tmp_path / "a" / "chat.json")[0]


def test_ingest_from_standard_input_and_delete(bundled: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    r = runner.invoke(app, ["ingest", "-", "--store", store, "-q"], input=(bundled / "demo_whowhen.json").read_bytes())
    assert r.exit_code == 0, r.output
    with open_store(store, read_only=True) as st:
        ids = st.trace_ids()
        assert len(ids) == 1 and ids[0].startswith("whowhen-algorithm-stdin-")  # named by its content
    r = runner.invoke(app, ["ingest", "-", "--store", store, "-q"], input=(bundled / "chat_autogen.jsonl").read_bytes())
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", "-", "--store", store, "-q"], input=(bundled / "chat_langgraph.json").read_bytes())
    with open_store(store, read_only=True) as st:  # two chat runs piped in one after the other: both kept
        assert len(st.trace_ids()) == 3
        tid = st.trace_ids()[0]
    r = runner.invoke(app, ["traces", "delete", tid, "nope", "--store", store])
    assert r.exit_code == 4 and "'nope'" in r.output
    r = runner.invoke(app, ["traces", "delete", tid, "--store", store])
    assert r.exit_code == 0
    with open_store(store, read_only=True) as st:
        assert len(st.trace_ids()) == 2


def test_a_bad_model_config_is_named_once(bundled: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"n_layers": 2}')
    r = runner.invoke(app, ["ingest", str(bundled / "recorded"), "--store", str(tmp_path / "s.duckdb"),
                            "--model-config", str(cfg)])
    assert r.exit_code == 3 and r.output.count("cfg.json") == 1 and "missing n_heads, d_model" in r.output


@pytest.mark.parametrize(("cfg", "said"), [
    ('{"n_layers": 30, "n_heads": 8, "d_model": 576}',
     "blocks.0.attn.hook_pattern:segment_mass: shape [9, "),  # the recorder's statistics are shape-checked
    ('{"n_layers": 30, "n_heads": 0, "d_model": 576}', "n_heads: must be a positive integer, got 0"),
    ('{"n_layers": 30.7, "n_heads": 9, "d_model": 576}', "n_layers: must be a positive integer, got 30.7"),
    (None, "is a folder"),
])
def test_model_config_is_validated_and_recorded_statistics_checked(bundled: Path, tmp_path: Path,
                                                                    cfg: str | None, said: str) -> None:
    path = tmp_path / "cfg"
    if cfg is None:
        path.mkdir()
    else:
        path.write_text(cfg)
    r = runner.invoke(app, ["ingest", str(bundled / "recorded" / "demo-vault-password.json"), "-q",
                            "--store", str(tmp_path / "s.duckdb"), "--model-config", str(path)])
    assert r.exit_code == 3 and said in r.output and "Traceback" not in r.output


def test_npz_of_objects_or_misspelled_hooks_is_refused_by_ingest(tmp_path: Path) -> None:
    import numpy as np

    np.savez(tmp_path / "obj.npz", **{"blocks.3.hook_resid_post": np.array([{"a": 1}], dtype=object)})
    np.savez(tmp_path / "typo.npz", **{"blocks.3.attn.hook_patern": np.zeros((9, 2, 2), np.float32)})
    for name, said in (("obj", "blocks.3.hook_resid_post: dtype object is not numeric"),
                       ("typo", "did you mean 'blocks.3.attn.hook_pattern'")):
        doc = {"id": name, "source_format": "attrib",
               "steps": [{"index": 0, "agent": "a", "activation": {"path": f"{name}.npz"}}]}
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
        r = runner.invoke(app, ["ingest", str(tmp_path / f"{name}.json"), "-q", "--store", str(tmp_path / "s.duckdb")])
        assert r.exit_code == 3 and said in r.output, r.output


def test_one_file_named_twice_is_read_once(bundled: Path, tmp_path: Path) -> None:
    rel = bundled / "demo_whowhen.json"
    link = tmp_path / "link.json"  # another name for the same file
    link.symlink_to(rel)
    twice = [str(rel), str(link)]
    r = runner.invoke(app, ["ingest", *twice, "--store", str(tmp_path / "s.duckdb"), "-q"])
    assert r.exit_code == 0, r.output


def test_traces_list_names_the_values_a_filter_can_take(bundled: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    assert runner.invoke(app, ["ingest", str(bundled / "demo_whowhen.json"), "--store", store, "-q"]).exit_code == 0
    r = runner.invoke(app, ["traces", "list", "--store", store, "--source", "nope"])
    assert r.exit_code == 2 and "'nope'" in r.output and "algorithm" in r.output
    r = runner.invoke(app, ["traces", "list", "--store", store, "--agent", "nope"])  # named as the flag, one line
    assert r.exit_code == 2 and r.output.startswith("error: --agent: no stored trace has 'nope'"), r.output
    r = runner.invoke(app, ["traces", "list", "--store", store, "--source", "algorithm"])
    assert r.exit_code == 0 and "1 of 1" in r.output


def test_no_progress_bar_when_nobody_watches(bundled: Path, tmp_path: Path) -> None:
    """Piped or logged (stderr not a terminal), the transient bar left a blank line on stderr, before any error."""
    store = str(tmp_path / "s.duckdb")
    r = runner.invoke(app, ["ingest", str(bundled / "demo_whowhen.json"), "--store", store])
    assert r.exit_code == 0 and r.stderr == "" and "ingested into" in r.stdout, r.stderr
    r = runner.invoke(app, ["ingest", str(bundled / "demo_whowhen.json"), "--store", store, "--max-bytes", "10"])
    assert r.exit_code == 3 and r.stderr.startswith("error: ") and "--max-bytes" in r.stderr, r.stderr


def test_the_library_draws_no_bar_when_stderr_is_no_terminal(bundled: Path, tmp_path: Path, capfd) -> None:
    """``ingest(progress=True)`` with stderr on a pipe or in a log: no bar (the library checks, not each caller)."""
    from attrib.store.api import ingest

    assert ingest([bundled / "demo_whowhen.json"], store=tmp_path / "s.duckdb", progress=True).ok
    assert capfd.readouterr().err == ""


def test_an_ingest_where_every_file_fails_leaves_no_new_store(bundled: Path, tmp_path: Path) -> None:
    """Every file failing (malformed JSON from a file or piped in) used to leave a new, empty store file behind;
    a store that existed before keeps its traces."""
    bad = tmp_path / "bad.json"
    bad.write_text("{bad")
    store = tmp_path / "new.duckdb"
    r = runner.invoke(app, ["ingest", str(bad), "--store", str(store)])
    assert r.exit_code == 3 and not store.exists() and not (tmp_path / "new.duckdb.wal").exists()
    r = runner.invoke(app, ["ingest", "-", "--store", str(store)], input="{bad")
    assert r.exit_code == 3 and not store.exists()
    deep = tmp_path / "sub" / "deeper" / "new.duckdb"  # nor the folders made for it
    r = runner.invoke(app, ["ingest", str(bad), "--store", str(deep)])
    assert r.exit_code == 3 and not (tmp_path / "sub").exists()
    r = runner.invoke(app, ["ingest", str(bundled / "demo_whowhen.json"), "--store", str(store)])
    assert r.exit_code == 0 and store.exists()
    r = runner.invoke(app, ["ingest", str(bad), "--store", str(store)])
    assert r.exit_code == 3 and store.exists()
    with open_store(store, read_only=True) as st:
        assert len(st.trace_ids()) == 1


def test_a_format_error_names_the_flag_the_user_typed(bundled: Path, tmp_path: Path) -> None:
    """When the format choice is the problem the CLI line names --format (the library's field is format), and a
    --format that does not fit the file says which format it looks like; nothing is stored."""
    odd = tmp_path / "odd.json"
    odd.write_text("[1, 2, 3]")
    store = tmp_path / "s.duckdb"
    r = runner.invoke(app, ["ingest", str(odd), "--store", str(store), "-q"])
    assert r.exit_code == 3
    # no format fits: the line says what the file holds and what each format looks for, and blames no flag
    assert f"error: {odd}: unknown format: it is a list whose first item is a number; attrib reads" in r.output
    chat = bundled / "chat_langgraph.json"
    r = runner.invoke(app, ["ingest", str(chat), "--format", "whowhen", "--store", str(store), "-q"])
    assert r.exit_code == 3
    (line,) = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert line.startswith(f"error: {chat}: --format: 'whowhen' does not fit this file (history: missing")
    assert "it looks like chat" in line
    assert not store.exists()


def test_library_ingest_keeps_the_library_spelling_and_refuses_an_unknown_format_once(bundled: Path,
                                                                                        tmp_path: Path) -> None:
    from attrib.errors import UsageError
    from attrib.store.api import ingest

    rep = ingest([bundled / "chat_langgraph.json"], store=tmp_path / "s.duckdb", format="otlp")
    (f,) = rep.failed
    assert f.error is not None and ": format: 'otlp' does not fit this file" in f.error
    with pytest.raises(UsageError, match="format: unknown format 'xml'"):
        ingest([bundled / "chat_langgraph.json"], store=tmp_path / "s.duckdb", format="xml")


def test_traces_show_reads_a_file_as_the_format_given(bundled: Path, tmp_path: Path) -> None:
    """The unknown-format line tells the user to give the format: `traces show FILE` takes --format too."""
    chat = bundled / "chat_langgraph.json"
    r = runner.invoke(app, ["traces", "show", str(chat), "--format", "chat", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["source_format"] == "chat"
    r = runner.invoke(app, ["traces", "show", str(chat), "--format", "otlp"])
    assert r.exit_code == 3 and "--format: 'otlp' does not fit this file" in r.output


def test_ctrl_c_counts_only_the_files_stored(tmp_path, monkeypatch):
    """After Ctrl-C, ingest said "N file(s) done and stored whole" counting files that had failed and stored
    nothing. (Ctrl-C is raised by a stand-in for the third file's read.)"""
    import shutil

    import attrib.store.api as api

    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "a_bad.json").write_text("{not json")
    shutil.copy(Path(__file__).resolve().parents[1] / "traces" / "demo_whowhen.json", runs / "b_good.json")
    (runs / "c_next.json").write_text("{}")
    real = api.ingest_file

    def ingest_file(store, path, *a, **k):
        if path.name == "c_next.json":
            raise KeyboardInterrupt
        return real(store, path, *a, **k)

    monkeypatch.setattr(api, "ingest_file", ingest_file)
    r = runner.invoke(app, ["ingest", str(runs), "--store", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 130, r.output
    assert "1 file(s) stored whole" in " ".join(r.output.split())


def test_a_relative_path_is_stored_absolute(tmp_path, monkeypatch):
    """`attrib ingest runs/x.json` stored "runs/x.json", which names nothing once the store is opened elsewhere."""
    import shutil

    (tmp_path / "runs").mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "traces" / "demo_whowhen.json", tmp_path / "runs" / "x.json")
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["ingest", "runs/x.json", "--store", "s.duckdb"])
    assert r.exit_code == 0, r.output
    with open_store(tmp_path / "s.duckdb", read_only=True) as st:
        assert [row["source_path"] for row in st.list_traces()] == [str(tmp_path / "runs" / "x.json")]


def test_traces_show_a_range_of_steps():
    """A verdict on a 130-step run names step 8; `traces show` printed all 130 steps, or one line each with --full
    off. --steps shows the steps around it."""
    log = str(Path(__file__).resolve().parents[1] / "traces" / "demo_whowhen.json")
    r = runner.invoke(app, ["traces", "show", log, "--steps", "2-4"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = [line.split()[0] for line in r.output.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert rows == ["2", "3", "4"] and "steps 2-4 of 10" in r.output
    assert runner.invoke(app, ["traces", "show", log, "--steps", "8-"]).exit_code == 0
    for bad in ("40", "5-2", "x"):
        r = runner.invoke(app, ["traces", "show", log, "--steps", bad])
        assert r.exit_code == 2 and "--steps" in r.output, (bad, r.output)
    assert "runs backwards: give the lower step first (2-5)" in runner.invoke(app, ["traces", "show", log, "--steps",
                                                                                    "5-2"]).output
    assert "step 3 of 10" in runner.invoke(app, ["traces", "show", log, "--steps", "3"], env={"COLUMNS": "200"}).output
    r = runner.invoke(app, ["traces", "show", log, "--steps", "2-4", "--json"])  # printed the whole trace silently
    assert r.exit_code == 2 and "--json prints the whole trace" in r.output


def test_traces_show_bounds_a_long_trace_and_reads_only_the_rows_it_shows(tmp_path: Path, monkeypatch) -> None:
    """`traces show` on a 240k-step run read its whole JSON (300 MB) and printed every step: 90 s. A trace of more
    than SHOW_STEPS steps shows its first ones and a line saying how many are hidden and how to see them (--steps,
    --all); from the store only the rows shown are read (the trace's JSON is not: get_trace fails here), and the
    timeline is the one the file gives, indents of steps whose parents are hidden included."""
    from attrib.cli.traces import SHOW_STEPS
    from attrib.store import Store
    from attrib.trace import Step, Trace

    n = SHOW_STEPS + 250
    steps = tuple(Step(index=i, agent="ab"[i % 2], content=f"message {i}", parents=(i - 1,) if i % 3 else (),
                       start_time=10.0 + i) for i in range(n))
    run = tmp_path / "long.json"
    run.write_bytes(Trace(id="long-run", source_format="attrib", steps=steps, outcome="failed").to_json())
    store = str(tmp_path / "s.duckdb")
    assert runner.invoke(app, ["ingest", str(run), "--store", store, "-q"]).exit_code == 0

    def get_trace(self, trace_id):  # type: ignore[no-untyped-def]
        raise AssertionError("traces show read the whole trace")

    monkeypatch.setattr(Store, "get_trace", get_trace)
    env = {"COLUMNS": "200"}

    def show(*args: str, ref: str = "long-run") -> tuple[list[int], str, str]:
        r = runner.invoke(app, ["traces", "show", ref, "--store", store, *args], env=env)
        assert r.exit_code == 0, r.output
        rows = [int(line.split()[0]) for line in r.output.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
        return rows, " ".join(r.output.split()), r.output

    rows, text, out = show()
    assert rows == list(range(SHOW_STEPS)) and f"steps 0-{SHOW_STEPS - 1} of {n}" in text
    assert (f"… 250 more steps not shown: --steps {SHOW_STEPS}-{2 * SHOW_STEPS - 1} shows the next ones, --all every "
            "step") in text
    assert out == show(ref=str(run))[2]  # the file's timeline, read whole: the same
    rows, text, out = show("--steps", "299-305")
    assert rows == list(range(299, 306)) and "not shown" not in text
    assert out == show("--steps", "299-305", ref=str(run))[2]
    rows, text, _ = show("--steps", f"{n - 10}-")
    assert rows == list(range(n - 10, n)) and "not shown" not in text
    rows, text, _ = show("--all")
    assert rows == list(range(n)) and "not shown" not in text and f"{n} steps" in text
    r = runner.invoke(app, ["traces", "show", "long-run", "--store", store, "--steps", "3", "--all"])
    assert r.exit_code == 2 and "--steps/--all" in r.output


def test_ingest_joins_one_otlp_trace_rotated_over_files(tmp_path: Path) -> None:
    """A collector's file exporter rotated mid-trace (children first): ingest stored the first file's part as a
    truncated run and refused the second. The parts are now stored as one run, the same as the whole file gives;
    a copy of a file is still refused (one trace per id)."""
    import shutil

    conv = Path(__file__).parent / "fixtures" / "otlp_conv"
    whole = {t.id: t for t in read_path(conv / "genai_run.json")}
    store = tmp_path / "s.duckdb"
    r = runner.invoke(app, ["ingest", str(conv / "rotated"), "--store", str(store)])
    assert r.exit_code == 0, r.output
    with open_store(store, read_only=True) as st:
        stored = {i: st.get_trace(i) for i in st.trace_ids()}
        assert stored == whole and not any(t.metadata.get("partial") for t in stored.values())
        assert st.count_traces() == 2
    from attrib.methods import analyze
    from attrib.store.api import ingest

    # re-ingesting the same files is a no-op that keeps the verdicts (the first file's part replaced the whole run,
    # dropping them, and the run came back with the second); each run counts once, under its root span's file
    with open_store(store) as st:
        for tid in whole:
            st.save_attribution(analyze(st.get_trace(tid), "flow-graph"))
    report = ingest([conv / "rotated"], store=store)
    assert report.summary() == {"files": 2, "failed": 0, "traces": 2, "steps": sum(t.n_steps for t in whole.values()),
                                "new_or_changed": 0, "unchanged": 2}, report.summary()
    with open_store(store, read_only=True) as st:
        assert all(st.get_attributions(tid) for tid in whole)
    # the parts ingested one at a time, either order: the later completes the run the earlier stored
    for order in (["traces-2025-06-15T10-00.jsonl", "traces-2025-06-15T10-05.jsonl"],
                  ["traces-2025-06-15T10-05.jsonl", "traces-2025-06-15T10-00.jsonl"]):
        one = tmp_path / f"one-{order[0]}.duckdb"
        for name in order:
            assert ingest([conv / "rotated" / name], store=one).ok
        with open_store(one, read_only=True) as st:
            assert {i: st.get_trace(i) for i in st.trace_ids()} == whole, order
    runs = tmp_path / "copies"
    runs.mkdir()
    for name in ("a.json", "b.json"):
        shutil.copy(conv / "genai_run.json", runs / name)
    r = runner.invoke(app, ["ingest", str(runs), "--store", str(tmp_path / "c.duckdb")])
    assert r.exit_code == 3 and "was already read from" in r.output, r.output


def test_ingest_help_names_the_refusal_and_the_exit_codes() -> None:
    """--help said nothing of a run of another file under a stored id being refused, nor of the exit codes."""
    text = " ".join(runner.invoke(app, ["ingest", "--help"], terminal_width=200).output.split())
    assert "already holds from another file, with other content, is refused (its file fails) unless --replace" in text
    assert "1 when the store cannot be written, 3 when some files failed" in text
