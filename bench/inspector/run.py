"""Inspector on a 10k-trace store: how long a trace-list page, the filter facets and a whole page render take.

Builds a store of N traces (the 184 Who&When logs repeated under new ids, each with a stored flow-graph verdict),
then times, in the same run:
* baseline: ``Store.list_traces(limit=50, offset=k)`` — the store's own paged listing (no verdict join);
* ``inspector_data.query_page`` — the app's page query (joins labels and the method's verdicts), first and last
  page, unfiltered and with verdict / annotation filters;
* ``inspector_data.facets`` — the filter choices;
* an AppTest run of the Traces page and of the Timeline page (cold: first run of a fresh AppTest).
Writes bench/results/inspector.json.  Usage: ``python bench/inspector/run.py [--n 10000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "apps"))


def _time(fn, repeat: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def build(path: Path, n: int) -> float:
    """Ingest the 184 Who&When logs and their verdicts through the store API, then replicate them in SQL.

    Replication copies every table's rows under new ids (``<id>-r<k>``, also inside the stored trace JSON),
    because upserting 10k traces one by one would dominate the benchmark without measuring the app.
    """
    from attrib.evaluate.data import load_subset
    from attrib.methods import analyze
    from attrib.store import open_store

    base = [t for s in ("algorithm", "hand") for t in load_subset(s)]
    t0 = time.perf_counter()
    with open_store(path) as s:
        with s.transaction():
            for t in base:
                s.upsert_trace(t)
        s.save_attributions(analyze(t, "flow-graph") for t in base)
        reps = max(0, -(-n // len(base)) - 1)
        con = s.con
        con.execute("CREATE TEMP TABLE reps AS SELECT range AS k FROM range(1, ?)", [reps + 1])
        with s.transaction():
            cols = {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()] for t in
                    ("traces", "steps", "labels", "attributions")}
            for table, c in cols.items():
                sel = ", ".join(
                    "t.trace_id || '-r' || reps.k" if x == "trace_id" else
                    "replace(t.trace_json, '\"id\":\"' || t.trace_id || '\"', '\"id\":\"' || t.trace_id || '-r' || reps.k || '\"')"
                    if x == "trace_json" else
                    "replace(t.json, '\"trace_id\":\"' || t.trace_id || '\"', '\"trace_id\":\"' || t.trace_id || '-r' || reps.k || '\"')"
                    if (table, x) == ("attributions", "json") else f"t.{x}"
                    for x in c)
                con.execute(f"INSERT INTO {table} SELECT {sel} FROM {table} t CROSS JOIN reps "
                            "WHERE t.trace_id NOT LIKE '%-r%'")
            con.execute("CREATE TEMP TABLE extra AS SELECT trace_id FROM traces ORDER BY trace_id DESC "
                        "LIMIT greatest((SELECT count(*) FROM traces) - ?, 0)", [n])
            for table in ("steps", "labels", "attributions", "traces"):
                con.execute(f"DELETE FROM {table} WHERE trace_id IN (SELECT trace_id FROM extra)")
        assert s.count_traces() == n, s.count_traces()
        probe = s.list_traces(limit=1, offset=n - 1)[0]["trace_id"]
        assert s.get_trace(probe).id == probe and s.get_attributions(probe)[0].trace_id == probe
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    import inspector_data as data

    from attrib.store import open_store

    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "big.duckdb"
        build_s = build(store, args.n)
        last = (args.n - 1) // data.PAGE_SIZE
        res: dict[str, object] = {"n_traces": args.n, "page_size": data.PAGE_SIZE, "build_s": round(build_s, 1)}
        with open_store(store, read_only=True) as s:
            res["open_store_ms"] = _time(lambda: open_store(store, read_only=True).close())
            res["baseline_list_traces_first_ms"] = _time(lambda: s.list_traces(limit=data.PAGE_SIZE))
            res["baseline_list_traces_last_ms"] = _time(
                lambda: s.list_traces(limit=data.PAGE_SIZE, offset=last * data.PAGE_SIZE))
            f = data.ListFilter(method="flow-graph")
            res["query_page_first_ms"] = _time(lambda: data.query_page(s, f, 0))
            res["query_page_last_ms"] = _time(lambda: data.query_page(s, f, last))
            fv = data.ListFilter(method="flow-graph", truth_agent="WebSurfer", agreement="disagrees")
            res["query_page_filtered_ms"] = _time(lambda: data.query_page(s, fv, 0))
            res["facets_ms"] = _time(lambda: data.facets(s))
            res["ratio_page_vs_baseline"] = round(res["query_page_last_ms"] / res["baseline_list_traces_last_ms"], 2)
        from streamlit.testing.v1 import AppTest

        os.environ["ATTRIB_STORE"] = str(store)
        sys.argv = ["inspector.py"]
        for page in ("Traces", "Timeline"):
            at = AppTest.from_file(str(REPO / "apps" / "inspector.py"), default_timeout=120)
            at.query_params.update({"page": page, "method": "flow-graph"})
            t0 = time.perf_counter()
            at.run()
            res[f"apptest_{page.lower()}_cold_s"] = round(time.perf_counter() - t0, 2)
            assert not at.exception, [e.value for e in at.exception]
            if page == "Traces":
                t0 = time.perf_counter()
                at.number_input(key="list_page").set_value(last + 1).run()
                res["apptest_traces_last_page_s"] = round(time.perf_counter() - t0, 2)
                assert at.dataframe[0].value.shape[0] == args.n - last * data.PAGE_SIZE
    for k, v in res.items():
        if isinstance(v, float):
            res[k] = round(v, 2)
    out = REPO / "bench" / "results" / "inspector.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
